"""The next commands a run prints must run when pasted: the README's quick start calls
`.venv/bin/exitcore`, which is not on PATH."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from exitcore.words import command


def _script(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("started", ["exitcore", "exit", "/somewhere/exitcore/__main__.py"])
def test_started_by_name_or_as_a_module(monkeypatch, started: str) -> None:
    monkeypatch.setattr(sys, "argv", [started, "run"])
    assert command() == "exitcore"


def test_a_script_not_on_path_is_named_by_the_path_it_was_started_by(monkeypatch, tmp_path: Path) -> None:
    venv = tmp_path / "my dir" / ".venv" / "bin"
    _script(venv / "exitcore")
    _script(venv / "exit")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "argv", [str(venv / "exitcore"), "run"])
    assert command() == f"'{venv / 'exitcore'}'"  # quoted: the path has a space
    monkeypatch.setattr(sys, "argv", [str(venv / "exit"), "run"])  # `exit` would be the shell's builtin
    assert command() == f"'{venv / 'exitcore'}'"


def test_a_script_that_is_the_one_on_path_is_named_by_name(monkeypatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir / "exitcore")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin")
    monkeypatch.setattr(sys, "argv", [str(bin_dir / "exitcore"), "run"])
    assert command() == "exitcore"
