"""The signals that stop exitcore as Ctrl-C does.

SIGTERM (``kill``, ``timeout``, a job scheduler) and SIGHUP (the terminal or SSH session that
started the command closed; absent on Windows) raise :class:`KeyboardInterrupt`: a run
checkpoints and is recorded ``interrupted`` with its resume command, a file being written is
removed, the status is 130. A signal already ignored when exitcore starts (``nohup`` ignores
SIGHUP, so a run started under it outlives its terminal) stays ignored.
"""

from __future__ import annotations

import signal

#: SIGTERM, and SIGHUP where the platform has it
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM,) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())
