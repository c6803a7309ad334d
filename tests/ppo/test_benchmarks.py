"""The PPO benchmark scripts still run (tiny sizes; the figures themselves are not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> list[dict]:
    out = subprocess.run([sys.executable, str(BENCH / name), "--json", "--threads", "1", *args],
                         capture_output=True, text=True, timeout=300, cwd=BENCH, env=env)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_compute_bound_benchmark_runs():
    rows = run_script("bench_ppo_compute.py", "--nets", "8,8", "--n-envs", "4", "--n-steps", "8", "--batch-size", "16",
                      "--n-epochs", "1", "--updates", "3")
    (row,) = rows
    assert row["hidden"] == [8, 8] and row["trainer_sps"] > 0 and row["bound_sps"] > 0


def test_sb3_comparison_runs_and_leaves_no_log_folders(tmp_path):
    pytest.importorskip("sb3_contrib")
    pytest.importorskip("exitcore.env.gym_adapter")
    # sb3's default logger makes a TMPDIR/SB3-<time> folder on every learn() call
    rows = run_script("bench_ppo_vs_sb3.py", "--nets", "8,8", "--n-envs", "4", "--n-steps", "8", "--batch-size", "16",
                      "--n-epochs", "1", "--updates", "3", "--years", "0.1", env={**os.environ, "TMPDIR": str(tmp_path)})
    (row,) = rows
    assert row["exitcore_sps"] > 0 and row["sb3_sps"] > 0 and row["parameters"] > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("SB3-")] == []


def test_audit_replay_benchmark_runs():
    (row,) = run_script("bench_audit_replay.py", "--decisions", "2", "--rounds", "1")
    assert row["decisions"] == 2 and row["with_replay"] > 0 and row["without_replay"] > 0


def test_ledger_write_benchmark_runs_and_checks_the_bytes():
    out = subprocess.run([sys.executable, str(BENCH / "bench_ledger_write.py"), "--rows", "2000", "--rounds", "1",
                          "--json"], capture_output=True, text=True, timeout=300, cwd=BENCH)
    assert out.returncode == 0 and "same bytes" in out.stdout, out.stderr
    (row,) = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert row["rows"] == 2000 and len(row["seconds"]["pandas"]) == len(row["seconds"]["numpy"]) == 1


def test_evaluate_benchmark_runs_on_a_finished_run(tmp_path):
    runs = tmp_path / "runs"
    made = subprocess.run([sys.executable, "-m", "exitcore", "run", "v4", "--budget", "smoke", "--runs-dir", str(runs),
                           "-q"], capture_output=True, text=True, timeout=600, cwd=BENCH.parent)
    assert made.returncode == 0, made.stderr
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    out = subprocess.run([sys.executable, str(BENCH / "bench_evaluate.py"), str(run_dir), "--results",
                          str(tmp_path / "results.json")], capture_output=True, text=True, timeout=300, cwd=BENCH)
    assert out.returncode == 0 and "evaluation without the audit" in out.stdout, out.stderr
    recomputed = json.loads((tmp_path / "results.json").read_text())
    recorded = json.loads((run_dir / "results.json").read_text())
    assert recomputed["headline"]["sharpe"] == recorded["headline"]["sharpe"]  # the same evaluation, without the audit
