"""The action ids: the single place they are defined (design.md §3).

Every module, plugin and test refers to actions through this enum, never through bare integers.
"""

from __future__ import annotations

import enum


class Action(enum.IntEnum):
    """What the agent can do with an open trade at a decision."""

    HOLD = 0  #: do nothing
    EXIT = 1  #: close the remaining position at the decision close
    TIGHTEN_SL = 2  #: new stop distance = tighten_factor x current distance (never loosens)
    TRAIL_BE = 3  #: move the stop to breakeven (entry +/- costs) when in profit, else no-op
    PARTIAL_EXIT = 4  #: close partial_fraction of the remaining position


N_ACTIONS = len(Action)
ACTION_NAMES: tuple[str, ...] = tuple(a.name for a in Action)

#: actions that close (part of) the position; the ones exit guards and the min-exit-bar mask target.
CLOSING_ACTIONS: tuple[Action, ...] = (Action.EXIT, Action.PARTIAL_EXIT)

# Plain-int ids for tensor code. Use these (not the enum members) in functions that may be
# compiled: torch.compile (2.13) evaluates `tensor == Action.EXIT` to a Python False instead
# of an elementwise comparison.
HOLD: int = int(Action.HOLD)
EXIT: int = int(Action.EXIT)
TIGHTEN_SL: int = int(Action.TIGHTEN_SL)
TRAIL_BE: int = int(Action.TRAIL_BE)
PARTIAL_EXIT: int = int(Action.PARTIAL_EXIT)
