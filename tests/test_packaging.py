"""What a wheel user gets: the shipped experiments (v1-v4, the budgets) are package data, so
`pip install exitcore` runs `exitcore run v4_no_lookahead --budget quick` from any directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import exitcore
from exitcore.experiments import SHIPPED_FILE

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_experiments_are_package_data() -> None:
    assert SHIPPED_FILE.parent == Path(exitcore.__file__).resolve().parent
    # no second copy or link at the top (a link is a text file in a Windows checkout)
    assert not (ROOT / "experiments.toml").exists()


def test_the_wheel_carries_the_shipped_experiments_and_no_tests(tmp_path: Path) -> None:
    # built from a copy (pip leaves build/ and rewrites the egg-info where it builds), in an
    # isolated environment with the build-system's setuptools, as a user's pip does
    source = tmp_path / "source"
    shutil.copytree(ROOT / "exitcore", source / "exitcore", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("exitcore-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert zf.read("exitcore/experiments.toml") == SHIPPED_FILE.read_bytes()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert not [n for n in names if n.startswith("tests/")]
    assert f"\nVersion: {exitcore.__version__}\n" in metadata  # one version, written in exitcore/__init__.py
