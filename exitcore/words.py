"""English number agreement for messages: ``1 update``, ``2 updates`` (one place for it)."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` with thousands separators and ``word`` agreeing with it: ``plural(1, "trial")`` is
    ``1 trial``, ``plural(2048, "step")`` is ``2,048 steps``; ``many`` for irregular plurals."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
