"""The prepared device check (benchmarks/bench_gpu.py) keeps working: run it small on the CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


def test_device_check_script_runs_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--device", "cpu", "--small", "--json", str(tmp_path / "r.json")])
    assert report["deterministic"] is True
    assert [row["envs"] for row in report["env"]] == [128]
    assert all(isinstance(row["eager"], float) and row["eager"] > 0 for row in report["env"])
    assert report["train"]["steps"] == 3 * 256 * 16
    last = report["train"]["last_update"]
    assert set(last) == {"sps", "sps_rollout", "sps_update", "time_rollout", "time_update"}
    assert all(isinstance(v, float) and v > 0 for v in last.values())
    assert (tmp_path / "r.json").is_file()
