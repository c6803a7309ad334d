"""The timeline contract's mechanics: how a bar ends a position (design.md §2, §3).

One place for the rule every simulator shares (the environment, baseline exits, the ledger):

* a position open into bar ``b`` with stop ``S`` and target ``T`` is checked against bar ``b``;
* **gap at the open**: if the open is already through the stop the stop fills at the open;
  else if the open is through the target the target fills at the open;
* **intrabar**: the low/high touching the stop fills at the stop, touching the target fills at
  the target; a bar that touches both is **ambiguous** and the stop is taken (conservative)
  and counted;
* the entry bar is checked the same way: its open is the entry's fill, so only a stop closer
  than the entry's costs can be through it, and then it fills at that open.

Works on tensors of any (equal) shape, so it serves one trade and a million alike.
"""

from __future__ import annotations

from typing import Any

from exitcore.ids import IntIds


class ExitReason(metaclass=IntIds):
    """Why a trade ended (``OPEN`` while it has not); plain-int ids (:mod:`exitcore.ids`), so
    ``after.exit_reason == ExitReason.STOP`` works in compiled code too."""

    names = ("OPEN", "AGENT", "STOP", "TARGET", "TIME", "END_OF_DATA", "GAP")

    OPEN = 0
    AGENT = 1  #: EXIT action (a PARTIAL never closes everything: 0 < partial_fraction < 1)
    STOP = 2  #: stop hit (initial, tightened or at breakeven)
    TARGET = 3  #: target hit
    TIME = 4  #: max_bars reached
    END_OF_DATA = 5  #: no further bar in the data
    GAP = 6  #: the next bar lies beyond a hole longer than data.max_gap_bars (env.data_holes = "close")


EXIT_REASON_NAMES: tuple[str, ...] = tuple(name.lower() for name in ExitReason.names)


def bar_outcome(open_: Any, high: Any, low: Any, stop: Any, target: Any, direction: Any) -> tuple[Any, Any, Any]:
    """Evaluate one bar against a position's stop and target: an open at or through the stop
    (target) fills there at the open; otherwise a touch of the stop (target) fills at its level,
    and a bar touching both takes the stop.

    Returns ``(reason, level, ambiguous)``: ``reason`` is ``ExitReason.STOP``/``TARGET`` or
    ``OPEN`` (int64 tensor), ``level`` the fill level in bar-price space (meaningful where
    ``reason != OPEN``), ``ambiguous`` whether the bar touched both without a gap deciding.
    ``direction`` is +1 (long) or -1 (short), as a float tensor broadcastable to the rest.
    """
    import torch

    d = direction
    # "through" means on the losing side of the stop / the winning side of the target
    stop_gap = d * (open_ - stop) <= 0
    target_gap = ~stop_gap & (d * (open_ - target) >= 0)
    low_side = torch.where(d > 0, low, high)  # the adverse extreme
    high_side = torch.where(d > 0, high, low)  # the favourable extreme
    stop_touch = d * (low_side - stop) <= 0
    target_touch = d * (high_side - target) >= 0
    gapped = stop_gap | target_gap
    ambiguous = ~gapped & stop_touch & target_touch
    stop_hit = stop_gap | (~gapped & stop_touch)
    target_hit = target_gap | (~gapped & ~stop_touch & target_touch)
    level = torch.where(gapped, open_, torch.where(stop_hit, stop, target))
    reason = torch.where(
        stop_hit,
        torch.full_like(stop_hit, int(ExitReason.STOP), dtype=torch.int64),
        torch.where(
            target_hit,
            torch.full_like(stop_hit, int(ExitReason.TARGET), dtype=torch.int64),
            torch.full_like(stop_hit, int(ExitReason.OPEN), dtype=torch.int64),
        ),
    )
    return reason, level, ambiguous
