"""PPO tests run torch single-threaded (Python's own SIGINT handling: tests/conftest.py).

The tests use tiny tensors, where a second intra-op thread gains nothing; on a shared 2-core
machine that is also running other work, every parallel region waits for a descheduled thread
and small ops take milliseconds instead of microseconds.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
