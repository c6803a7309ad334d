"""Fixtures for the evaluation tests."""

from __future__ import annotations

import pytest
from ledgerkit import build_ledger


@pytest.fixture
def make_ledger():
    """:func:`ledgerkit.build_ledger`: a valid ledger from a list of net PnLs, any column overridable."""
    return build_ledger


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A small finished v4 run directory, as ``exitcore run`` leaves it (:func:`evalkit.make_run`),
    shared by the audit, evaluate and report tests."""
    from evalkit import make_run

    return make_run(tmp_path_factory.mktemp("runs") / "20260101-000000-v4_no_lookahead-abcd")
