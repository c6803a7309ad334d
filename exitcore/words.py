"""Words for messages and tables (one place for each rule): ``1 update``, ``2 updates``; a
statistic the data cannot give shown as ``undefined``; the program's name in a next command."""

from __future__ import annotations

import math
from typing import Any


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` with thousands separators and ``word`` agreeing with it: ``plural(1, "trial")`` is
    ``1 trial``, ``plural(2048, "step")`` is ``2,048 steps``; ``many`` for irregular plurals."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def share_percent(v: Any) -> str:
    """A share (a fraction) in percent to 0.1, without the sign; one above 0 but below 0.05 %
    as ``<0.1``: ``0.0`` read as "none" beside shares left out because they are exactly 0."""
    if isinstance(v, (int, float)) and math.isfinite(v) and 0 < v < 0.0005:
        return "<0.1"
    return statistic(100 * v, ".1f") if isinstance(v, (int, float)) else statistic(v)


def statistic(v: Any, fmt: str = ".3f") -> str:
    """A number for a table: ``-`` for missing (None), ``undefined`` for NaN (a statistic the
    data cannot give, e.g. a Sortino over one day: never printed as if it were a number),
    ``inf``/``-inf`` spelled out, anything else ``format(v, fmt)`` (text as it is)."""
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "undefined"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, (int, float)):
        return format(v, fmt)
    return str(v)


def command() -> str:
    """This program's name as a user can type it in a printed next command (``exitcore report
    RUN``): ``exitcore`` when it was started by name or by ``python -m exitcore``, or when
    ``exitcore`` on PATH is the script it was started from; otherwise the path it was started by
    (``.venv/bin/exitcore``, as the README's quick start types it), with ``exit`` spelled
    ``exitcore`` (the shell's builtin), quoted for the shell where needed."""
    import os
    import shlex
    import shutil
    import sys

    started = sys.argv[0] if sys.argv else ""
    if os.sep not in started or os.path.basename(started) not in ("exitcore", "exit"):
        return "exitcore"
    script = os.path.join(os.path.dirname(started), "exitcore")
    if not os.path.exists(script):
        script = started
    on_path = shutil.which("exitcore")
    try:
        if on_path and os.path.samefile(on_path, script):
            return "exitcore"
    except OSError:
        pass
    return shlex.quote(script)
