"""The action ids: the single place they are defined (design.md §3).

Every module, plugin and test refers to actions through :class:`Action`, never through bare
integers. ``Action.EXIT`` is a plain ``int``, not an ``enum.IntEnum`` member: torch.compile
(2.13) evaluates ``tensor == SomeIntEnum.MEMBER`` (or any ``int`` subclass) to a Python
``False`` instead of an elementwise comparison, so an exit guard written as
``action == Action.EXIT`` silently blocked nothing in every compiled run. With plain ints the
natural spelling is also the correct one, eager or compiled.
"""

from __future__ import annotations

from collections.abc import Iterator


class _ActionIds(type):
    """Lets :class:`Action` be iterated, counted and called like an enum of plain ints."""

    def __iter__(cls) -> Iterator[int]:
        return iter(range(len(cls.names)))

    def __len__(cls) -> int:
        return len(cls.names)

    def __call__(cls, value: int) -> int:  # type: ignore[override]
        """``Action(3)`` -> 3 after checking that 3 is an action id (ValueError otherwise)."""
        if isinstance(value, bool) or int(value) != value or not 0 <= int(value) < len(cls.names):
            raise ValueError(f"{value!r} is not an action id (valid: 0..{len(cls.names) - 1})")
        return int(value)


class Action(metaclass=_ActionIds):
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


assert all(getattr(Action, name) == i for i, name in enumerate(Action.names))

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
