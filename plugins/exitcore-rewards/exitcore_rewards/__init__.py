"""exitcore reward terms (design.md §3-§4, docs/environment.md "Rewards").

Each term returns reward units: percent of the entry price with the default
``env.reward_scale = 100``, so the research log's coefficients keep their meaning. The step's
reward is the weighted sum of the terms an experiment lists.

* ``pnl`` - realized gross PnL of the step, plus the change of the open position's
  mark-to-market when ``unrealized = true``.
* ``cost`` - minus the costs paid in the step (with ``pnl``: a reward net of costs).
* ``time_penalty`` - ``-time_coef * k / max_bars`` at decision ``k`` (grows with bars held).
* ``regret`` - at the end of an episode, ``-regret_coef * (best exit in the window - realized)``
  (hindsight: allowed in rewards only).
"""

from __future__ import annotations

import attrs

from exitcore import hookimpl
from exitcore.components import lazy
from exitcore.params import non_negative


@attrs.frozen
class PnlParams:
    """``unrealized``: also reward the change of the open position's mark-to-market."""

    unrealized: bool = False


@attrs.frozen
class TimePenaltyParams:
    """``time_coef``: penalty per decision at ``k = max_bars`` (linear in ``k``)."""

    time_coef: float = attrs.field(default=0.002, validator=non_negative)


@attrs.frozen
class RegretParams:
    """``regret_coef``: weight of (best exit available in the window - realized)."""

    regret_coef: float = attrs.field(default=0.8, validator=non_negative)


@hookimpl
def register_reward_terms(register):
    """Register the shipped reward terms."""
    register("pnl", lazy("exitcore_rewards.terms:pnl_term"), params=PnlParams, description="realized gross PnL (+ mark-to-market change if unrealized)")
    register("cost", lazy("exitcore_rewards.terms:cost_term"), description="minus spread, slippage and commission paid in the step")
    register("time_penalty", lazy("exitcore_rewards.terms:time_penalty_term"), params=TimePenaltyParams, description="-time_coef * k / max_bars")
    register("regret", lazy("exitcore_rewards.terms:regret_term"), params=RegretParams, description="-regret_coef * (best exit in window - realized), at episode end")
