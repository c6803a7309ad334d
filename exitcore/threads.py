"""torch's intra-op thread count for work made of many tiny operations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread inside, its count restored after.

    For the evaluation's replays and the look-ahead audit: thousands of operations on a few
    thousand rows, which a second thread does not speed up on a quiet machine but makes several
    times slower on a busy one, where each operation waits for a descheduled thread
    (docs/benchmarks.md: replays 24 s against 1.9 s, the audit 50 s against 7.4 s). One
    thread gives the same results here: the work is split by rows, not within a sum."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
