"""Fixtures for the evaluation tests."""

from __future__ import annotations

import pytest
from ledgerkit import build_ledger


@pytest.fixture
def make_ledger():
    """:func:`ledgerkit.build_ledger`: a valid ledger from a list of net PnLs, any column overridable."""
    return build_ledger
