"""CLI usability fixes from a user review: messages, exit codes and output of each one."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from exitcore.cli import cli


def test_compare_csv_keeps_the_warnings_on_stderr(monkeypatch, tmp_path):
    """--csv lost the DIFFERENT DATA / SPLITS warnings the table and --json show."""
    from exitcore import compare as cmp
    from exitcore.registry import Registry

    Registry(tmp_path / "runs").close()
    monkeypatch.setattr(cmp, "collect", lambda refs, registry, file: list(refs))
    monkeypatch.setattr(cmp, "warnings", lambda views: ["DIFFERENT DATA: not comparable"])
    monkeypatch.setattr(cmp, "as_csv", lambda views: "metric,a,b\n")
    result = CliRunner().invoke(cli, ["compare", "a", "b", "--csv", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert result.stdout == "metric,a,b\n"
    assert "warning: DIFFERENT DATA: not comparable" in result.stderr
