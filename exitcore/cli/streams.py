"""Output that outlives its reader: for commands whose job is a side effect (``exitcore run``).

``exitcore plugins | head`` should stop when ``head`` has read enough (the CLI's generic
``BrokenPipeError`` handling). ``exitcore run ... | head -1`` must not: the command's job is the
run, not its output, and it used to end with status 0 having done nothing (the pipe closed
before the run was registered) or, later, to stop the run half-way. Inside
:func:`output_discarded_when_closed`, a write to stdout or stderr whose reader has gone points
that file descriptor at ``os.devnull`` (as ``nohup`` would have) and the command goes on.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any


class _DiscardWhenClosed(io.BufferedIOBase):
    """The binary layer of a standard stream: writes go to ``inner`` until they fail with
    EPIPE (the reader has gone); then file descriptor ``fd`` is pointed at ``os.devnull`` and
    this write and every later one succeed, unseen. The descriptor is never closed here."""

    def __init__(self, inner: Any, fd: int):
        super().__init__()
        self._inner, self._fd = inner, fd
        self.reader_gone = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return self._inner.isatty()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        try:
            done = 0
            while done < len(view):  # an unbuffered (python -u) raw stream may write part
                n = self._inner.write(view[done:])
                done += len(view) - done if n is None else n
        except BrokenPipeError:
            self._discard()
        return len(view)

    def flush(self) -> None:
        if self.closed:
            return
        try:
            self._inner.flush()
        except BrokenPipeError:
            self._discard()

    def _discard(self) -> None:
        self.reader_gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._fd)
        finally:
            os.close(devnull)
        with contextlib.suppress(OSError):
            self._inner.flush()  # what the stream still held goes to /dev/null too


def _guarded(stream: Any) -> Any:
    """``stream`` (a text stream on a file descriptor) with its binary layer guarded, or
    ``stream`` itself when it has no descriptor (a test runner's capture)."""
    try:
        fd = stream.fileno()
        buffer = stream.buffer
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return stream
    with contextlib.suppress(OSError):
        stream.flush()
    return io.TextIOWrapper(
        _DiscardWhenClosed(buffer, fd),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
        write_through=getattr(stream, "write_through", False),
    )


@contextlib.contextmanager
def output_discarded_when_closed() -> Iterator[None]:
    """Within the block, a closed stdout or stderr (``| head``) discards what is written to it
    instead of raising ``BrokenPipeError``; the original streams are restored afterwards."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _guarded(sys.stdout), _guarded(sys.stderr)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            if stream is None:  # started with the descriptor closed (`>&-`): Python gives None
                continue
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        sys.stdout, sys.stderr = saved


def terminal_progress(quiet: bool = False) -> Any:
    """A progress sink (:func:`exitcore.data.progress.progress_to`) for a long load or probe
    (``probed 1,200 of 20,000 decisions``): indented lines on stderr when it is a terminal and
    not ``quiet``; nothing in a pipe or a log."""
    import click

    from exitcore.data.progress import progress_to

    if not quiet and sys.stderr.isatty():
        return progress_to(lambda msg: click.echo(f"  {msg}", err=True))
    return progress_to(None)
