"""How pytest-xdist shares the suite (``-n auto`` in pyproject's addopts): how many workers,
their torch threads, and the long tests first. Here, at the root, so that it holds for
``pytest plugins/...`` too, not only where tests/ is collected."""

from __future__ import annotations

import os

import pytest

#: most pytest-xdist workers `-n auto` starts (pyproject's addopts): each one's runs start
#: processes of their own, so more would mostly add memory
MAX_WORKERS = 4


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core, at most MAX_WORKERS; none when benchmarks are timed
    (``--benchmark-enable``: a benchmark beside another test's work measures both)."""
    if config.getoption("benchmark_enable", False):
        return 0
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):  # xdist's own override, as without this hook
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    return max(1, min(_cores(), MAX_WORKERS))


def pytest_configure(config: pytest.Config) -> None:
    """Timed benchmarks beside other workers' tests would measure both: refuse ``-n N`` with them."""
    workers = config.getoption("numprocesses", None)
    if config.getoption("benchmark_enable", False) and isinstance(workers, int) and workers > 0:
        raise pytest.UsageError(f"--benchmark-enable times the benchmarks in one process: drop -n {workers} (or give -n 0)")


#: modules of long end-to-end tests (whole runs in subprocesses, compiled environments), started
#: first: the workers then finish on short tests instead of one waiting for the other's last run
LONG_MODULES = ("test_run.py", "test_cli_review.py", "test_json_outputs.py", "test_differential.py", "test_device.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put LONG_MODULES' tests first (in their own order), when xdist workers share the suite."""
    if config.getoption("numprocesses", None) or os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.path.name not in LONG_MODULES)  # stable: each module keeps its order


# A worker's torch (and the runs it starts, which inherit the variable) gets its share of the
# cores: two workers at torch's default of one thread per core wait for each other's threads
# (the audit measured several times slower on a busy machine). Set before any test imports torch.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, _cores() // max(1, _workers)))
