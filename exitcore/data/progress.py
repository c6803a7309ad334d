"""Progress messages for long loads, shown by the CLI when stderr is a terminal.

Loaders call :func:`report` as they go; nothing is printed unless a caller installed a sink with
:func:`progress_to` (the CLI does, for an interactive stderr), so libraries and tests stay quiet.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator

_SINK: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("exitcore_progress", default=None)


def report(message: str) -> None:
    """Send a progress message to the installed sink, if any."""
    sink = _SINK.get()
    if sink is not None:
        sink(message)


@contextlib.contextmanager
def progress_to(sink: Callable[[str], None] | None) -> Iterator[None]:
    """Route :func:`report` messages to ``sink`` inside the ``with`` block."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


#: seconds between two progress lines of one long loop (:func:`counter`)
EVERY_S = 5.0


def counter(template: str, total: int, every_s: float | None = None) -> Callable[[int], None]:
    """``tick(done)`` for a loop over ``total`` items, called as each is done: reports
    ``template`` with ``{done}`` and ``{total}`` filled in (``"probed {done} of {total}
    decisions"``) at most every ``every_s`` seconds (default :data:`EVERY_S`), the first after
    ``every_s``, so a short loop says nothing. Once it has said something, the last tick
    (``done == total``) is always reported: the lines end on the final count, not on whichever
    tick the throttle let through last (``probed 28 of 32`` read as if 4 were skipped)."""
    every_s = EVERY_S if every_s is None else every_s
    shown = time.monotonic()
    said = False

    def tick(done: int) -> None:
        nonlocal shown, said
        if time.monotonic() - shown >= every_s or (said and done >= total):
            shown, said = time.monotonic(), True
            report(template.format(done=f"{done:,}", total=f"{total:,}"))

    return tick
