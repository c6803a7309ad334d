"""benchmarks/bench_gym_adapter_checks.py keeps working: run it tiny, and it restores the adapter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gym_adapter_checks.py"


def test_the_adapter_checks_benchmark_runs_small():
    out = subprocess.run([sys.executable, str(SCRIPT), "--envs", "16", "--steps", "5", "--reps", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].lstrip().startswith("as shipped") and lines[2].lstrip().startswith("without the host checks")
    assert lines[3].lstrip().startswith("the checks: ") and "us/step" in lines[3]
