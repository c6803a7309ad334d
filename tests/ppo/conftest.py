"""PPO tests run torch single-threaded, with Python's own SIGINT handling.

The tests use tiny tensors, where a second intra-op thread gains nothing; on a shared 2-core
machine that is also running other work, every parallel region waits for a descheduled thread
and small ops take milliseconds instead of microseconds.
"""

from __future__ import annotations

import signal

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _sigint_handled():
    """The stop-signal tests test exitcore's handling of Ctrl-C, which leaves an *ignored*
    SIGINT ignored (as nohup wants). A suite started as a background job by a shell without job
    control (`( pytest & )`, `nohup ... &` in a script) inherits SIGINT ignored; give those
    tests the interpreter's usual handler, as in a terminal or CI, and put the inherited one back."""
    before = signal.getsignal(signal.SIGINT)
    if before is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
