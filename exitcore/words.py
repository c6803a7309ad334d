"""Numbers in words for messages and tables (one place for each rule): ``1 update``, ``2 updates``;
a statistic the data cannot give shown as ``undefined``."""

from __future__ import annotations

import math
from typing import Any


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` with thousands separators and ``word`` agreeing with it: ``plural(1, "trial")`` is
    ``1 trial``, ``plural(2048, "step")`` is ``2,048 steps``; ``many`` for irregular plurals."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


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
