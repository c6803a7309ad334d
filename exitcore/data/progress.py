"""Progress messages for long loads, shown by the CLI when stderr is a terminal.

Loaders call :func:`report` as they go; nothing is printed unless a caller installed a sink with
:func:`progress_to` (the CLI does, for an interactive stderr), so libraries and tests stay quiet.
"""

from __future__ import annotations

import contextlib
import contextvars
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
