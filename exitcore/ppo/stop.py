"""Ctrl-C, SIGTERM and SIGHUP during training, honoured at points where stopping is safe.

By default Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when
Ctrl-C arrives, including inside a library's threading code: TensorBoard's event writer hands
records to its own thread through a queue, and an interrupt landing there left the writer
waiting forever in ``close()`` (about 1 in 30 SIGTERMs hung an ``exitcore run``). While a
:class:`StopRequests` is active the signal only sets a flag; the trainer calls :meth:`check`
between rollout steps and between minibatches, which raises ``KeyboardInterrupt`` from the
trainer's own code, so the usual path (roll back to the last complete update, write the
checkpoint, report "interrupted") runs with every library in a consistent state.

A second signal raises at once: whoever presses Ctrl-C twice wants out now. A signal that
arrives after the last check is delivered again when the context ends.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from exitcore.stop_signals import STOP_SIGNALS as COMMAND_STOP_SIGNALS

#: the signals that ask a training to stop: Ctrl-C, and SIGTERM (a job scheduler or ``kill``)
#: and SIGHUP (the terminal closed) as :mod:`exitcore.stop_signals` lists them
STOP_SIGNALS = (signal.SIGINT, *COMMAND_STOP_SIGNALS)


class StopRequests:
    """A context manager turning :data:`STOP_SIGNALS` into a flag while it is active.

    Signal handlers can only be installed from the main thread; elsewhere (a notebook running
    training in a thread) nothing is installed and interrupts behave as Python's default. A
    signal whose handler was *ignored* (``SIG_IGN``: a background job without job control)
    stays ignored.
    """

    def __init__(self) -> None:
        self.received: int | None = None  # the first stop signal, while active
        self._honoured = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        self.received, self._honoured = None, False
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                # None: a handler installed outside Python, which could not be put back
                if previous is not signal.SIG_IGN and previous is not None:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        if self.received is not None and not self._honoured and exc_type is None:
            # asked for after the last check: deliver it again, to whoever handles it now
            signal.raise_signal(self.received)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            self._honoured = True
            raise KeyboardInterrupt  # the second request: stop wherever we are
        self.received = signum

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if a stop was requested (call where stopping is safe)."""
        if self.received is not None:
            self._honoured = True
            raise KeyboardInterrupt
