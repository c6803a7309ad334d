"""The action ids: the single place they are defined (design.md §3).

Every module, plugin and test refers to actions through :class:`Action`, never through bare
integers. ``Action.EXIT`` is a plain ``int``, not an ``enum.IntEnum`` member (see
:mod:`exitcore.ids`): an exit guard written as ``action == Action.EXIT`` silently blocked
nothing in every compiled run while Action was an IntEnum. With plain ints the natural
spelling is also the correct one, eager or compiled.
"""

from __future__ import annotations

from exitcore.ids import IntIds


class Action(metaclass=IntIds):
    """What the agent can do with an open trade at a decision (ids are plain ints).

    ``for a in Action`` yields the ids in order, ``len(Action)`` counts them,
    ``Action.names[a]`` names one and ``Action(a)`` validates one.
    """

    HOLD = 0  #: do nothing
    EXIT = 1  #: close the remaining position at the decision close
    TIGHTEN_SL = 2  #: new stop distance = tighten_factor x current distance (never loosens)
    TRAIL_BE = 3  #: move the stop to breakeven (entry +/- costs) when in profit, else no-op
    PARTIAL_EXIT = 4  #: close partial_fraction of the remaining position

    #: the action names, indexed by id
    names: tuple[str, ...] = ("HOLD", "EXIT", "TIGHTEN_SL", "TRAIL_BE", "PARTIAL_EXIT")


N_ACTIONS = len(Action)
ACTION_NAMES: tuple[str, ...] = Action.names

#: actions that close (part of) the position; the ones exit guards and the min-exit-bar mask target.
CLOSING_ACTIONS: tuple[int, ...] = (Action.EXIT, Action.PARTIAL_EXIT)

# Module-level aliases (``from exitcore.actions import EXIT``), the same plain ints.
HOLD: int = Action.HOLD
EXIT: int = Action.EXIT
TIGHTEN_SL: int = Action.TIGHTEN_SL
TRAIL_BE: int = Action.TRAIL_BE
PARTIAL_EXIT: int = Action.PARTIAL_EXIT
