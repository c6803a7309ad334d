"""scripts/bootstrap's refusals of an old Python, which must come before pip's unrelated errors
("no matching distribution for torch")."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: run the code bootstrap passes (its stdin script, or ``-c CODE``) in this Python posing as 3.10.13
_POSE = ('import sys, platform; sys.version_info = (3, 10, 13, "final", 0); sys.version = "3.10.13 (posing)"; '
         'platform.python_version = lambda: "3.10.13"; ')


def _python_310(path: Path, stdin_script: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    run = "sys.argv = sys.argv[1:]; exec(sys.stdin.read())" if stdin_script else "exec(sys.argv[2])"
    path.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(_POSE + run)} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _checkout(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap", project / "scripts" / "bootstrap")
    return project


def _bootstrap(project: Path, python: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "scripts/bootstrap"], cwd=project, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": str(python)})


def test_an_old_interpreter_is_refused_saying_how_to_pick_another(tmp_path: Path) -> None:
    project = _checkout(tmp_path)
    _python_310(tmp_path / "bin" / "python3", stdin_script=True)
    out = _bootstrap(project, tmp_path / "bin" / "python3")
    assert out.returncode == 1
    assert out.stderr.strip() == (f"exitcore needs Python 3.11+, found 3.10.13 ({tmp_path / 'bin' / 'python3'}): "
                                  "run PYTHON=/path/to/python3.11 scripts/bootstrap")
    assert not (project / ".venv").exists()


def test_an_older_existing_venv_is_named_not_reused(tmp_path: Path) -> None:
    project = _checkout(tmp_path)
    _python_310(project / ".venv" / "bin" / "python", stdin_script=False)
    out = _bootstrap(project, sys.executable)  # a good interpreter: only the .venv is old
    assert out.returncode == 1
    assert out.stderr.strip() == ("bootstrap: .venv holds Python 3.10.13; exitcore needs 3.11+: remove it "
                                  "(rm -rf .venv) and run scripts/bootstrap again")
    assert not (project / ".venv" / "bootstrap.log").exists()  # refused before pip ran
