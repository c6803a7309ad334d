"""benchmarks/sim_significance.py still runs (tiny sizes; the figures themselves are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sim_significance.py"


def test_the_significance_simulation_runs_and_prints_its_table():
    out = subprocess.run([sys.executable, str(SCRIPT), "--reps", "4", "--psr-reps", "20", "--boot", "50", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "AR(1) rho=0.3" in out.stdout and "k =   1:" in out.stdout
    (row,) = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [m["model"] for m in row["models"]] == ["iid normal", "t(3)", "GARCH(1,1)", "AR(1) rho=0.3"]
    for m in row["models"]:
        assert 0 <= m["coverage"] <= 1 and 0 <= m["psr_false_positive"] <= 1
    assert [a["active_days"] for a in row["active_days"]] == [1, 2, 5, 20, 30, 100]
