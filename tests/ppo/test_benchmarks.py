"""The PPO benchmark scripts still run (tiny sizes; the figures themselves are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args: str) -> list[dict]:
    out = subprocess.run([sys.executable, str(BENCH / name), "--json", "--threads", "1", *args],
                         capture_output=True, text=True, timeout=300, cwd=BENCH)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_compute_bound_benchmark_runs():
    rows = run_script("bench_ppo_compute.py", "--nets", "8,8", "--n-envs", "4", "--n-steps", "8", "--batch-size", "16",
                      "--n-epochs", "1", "--updates", "3")
    (row,) = rows
    assert row["hidden"] == [8, 8] and row["trainer_sps"] > 0 and row["bound_sps"] > 0


def test_sb3_comparison_runs():
    pytest.importorskip("sb3_contrib")
    pytest.importorskip("exitcore.env.gym_adapter")
    rows = run_script("bench_ppo_vs_sb3.py", "--nets", "8,8", "--n-envs", "4", "--n-steps", "8", "--batch-size", "16",
                      "--n-epochs", "1", "--updates", "3", "--years", "0.1")
    (row,) = rows
    assert row["exitcore_sps"] > 0 and row["sb3_sps"] > 0 and row["parameters"] > 0


def test_audit_replay_benchmark_runs():
    (row,) = run_script("bench_audit_replay.py", "--decisions", "2", "--rounds", "1")
    assert row["decisions"] == 2 and row["with_replay"] > 0 and row["without_replay"] > 0
