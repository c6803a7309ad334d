"""exitcore exit guards (the research log's v2).

A guard sees the action the policy sampled and may block it; a blocked action is executed as
HOLD and counted in ``blocked_rate``. Thresholds are net PnL fractions per unit if the position
were closed at the decision close (``state.upnl``; 0.001 ~ 10 pips on EURUSD near 1.0).

* ``min_profit_for_exit`` - block EXIT while ``upnl < min_profit``.
* ``min_bars_for_exit`` - block EXIT before decision ``min_bars`` (``k < min_bars``).
* ``min_profit_for_partial`` - block PARTIAL_EXIT while ``upnl < min_profit``.
"""

from __future__ import annotations

import attrs

from exitcore import hookimpl
from exitcore.params import finite, non_negative_int


@attrs.frozen
class MinProfitParams:
    """``min_profit``: the net PnL fraction per unit required (0.001 ~ 10 pips)."""

    min_profit: float = attrs.field(default=0.001, validator=finite)


@attrs.frozen
class MinBarsParams:
    """``min_bars``: the first decision index at which EXIT is allowed."""

    min_bars: int = attrs.field(default=2, validator=non_negative_int)


def _min_profit_for(action_name: str):
    def build(params, ctx):
        from exitcore import actions

        action_id = getattr(actions, action_name)  # a plain int: safe under torch.compile
        threshold = params.min_profit

        def guard(state, action):
            return (action == action_id) & (state.upnl < threshold)

        return guard

    return build


def _min_bars_for_exit(params, ctx):
    from exitcore.actions import EXIT

    min_bars = params.min_bars

    def guard(state, action):
        return (action == EXIT) & (state.k < min_bars)

    return guard


@hookimpl
def register_exit_guards(register):
    """Register the shipped exit guards."""
    register("min_profit_for_exit", _min_profit_for("EXIT"), params=MinProfitParams,
             description="block EXIT while net upnl < min_profit")
    register("min_bars_for_exit", _min_bars_for_exit, params=MinBarsParams,
             description="block EXIT before decision min_bars")
    register("min_profit_for_partial", _min_profit_for("PARTIAL_EXIT"), params=MinProfitParams,
             description="block PARTIAL_EXIT while net upnl < min_profit")
