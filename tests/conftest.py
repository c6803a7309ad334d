"""Shared fixtures: hermetic plugin hosts, the shared real-data folder, the --full switch."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

SHARED_DATA_ENV = "EXITCORE_SHARED_DATA"
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="run slow tests and benchmarks at full size (default: the reduced CI size)",
    )


@pytest.fixture(scope="session")
def full_scale(request: pytest.FixtureRequest) -> bool:
    """True under --full: slow tests use their full size instead of the reduced CI size."""
    return bool(request.config.getoption("--full"))


def shared_data_dir() -> Path | None:
    """``$EXITCORE_SHARED_DATA`` or ``../shared/data`` next to the checkout, if it exists."""
    env = os.environ.get(SHARED_DATA_ENV)
    candidates = [Path(env)] if env else [Path(__file__).resolve().parents[2] / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real FX data folder; skip with a reason when absent, fail under CI (``$CI`` set)."""
    path = shared_data_dir()
    if path is None:
        msg = f"shared data not found (set {SHARED_DATA_ENV} or provide ../shared/data)"
        if os.environ.get("CI"):
            pytest.fail(msg + " - CI must have it")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def _inductor_probe() -> str | None:
    """Why ``torch.compile`` cannot build a kernel here (no C++ toolchain, say), or None."""
    import torch

    try:
        torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(3))
    except Exception as exc:  # any failure to build: the reason is reported by `needs_compile`
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


@pytest.fixture
def needs_compile(_inductor_probe) -> None:
    """Skip (with the reason) where torch.compile cannot build kernels; fail under CI.

    Tests that compile ask for this instead of catching exceptions around the compiled call,
    which would also hide real errors of the compiled path."""
    if _inductor_probe is not None:
        msg = f"torch.compile cannot build kernels here ({_inductor_probe})"
        if os.environ.get("CI"):
            pytest.fail(msg + " - CI must be able to")
        pytest.skip(msg)


@pytest.fixture
def make_host():
    """Build a hermetic plugin host: autoload off, only the given plugin modules/objects."""
    from exitcore.plugins import PluginHost

    def make(*plugins):
        return PluginHost.create(autoload=False, plugins=plugins)

    return make


@pytest.fixture(autouse=True)
def _sigint_handled():
    """Tests of stopping (tests/ppo, test_run.py's in-process Ctrl-C) test exitcore's handling
    of Ctrl-C, which leaves an *ignored* SIGINT ignored (as nohup wants). A suite started as a background job by a shell without job
    control (`( pytest & )`, `nohup ... &` in a script) inherits SIGINT ignored; give those
    tests the interpreter's usual handler, as in a terminal or CI, and put the inherited one back."""
    before = signal.getsignal(signal.SIGINT)
    if before is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
