"""The cost model: the single place fills and PnL are defined (design.md §3).

All price *levels* (opens, closes, stops, targets) live in the bar series' price space. A fill
at level ``L`` in direction ``d`` pays half the spread plus slippage against the trader, and
each unit closed pays the commission::

    c = (spread_pips / 2 + slippage_pips) * pip        # per side, price units
    m = commission_pips * pip                          # per unit closed, price units
    entry fill   E = open[e] + d * c
    exit fill    X = L - d * c
    net PnL of closing q units at L   = q * (d * (X - E) - m) / E
    gross PnL (the price move)        = q * d * (L - open[e]) / E
    cost                              = q * (2c + m) / E        (= gross - net)

PnL is a fraction of the entry fill price (0.001 ~ 10 pips on EURUSD near 1.0). Breakeven is
the level whose net exit PnL is zero: ``E + d * (c + m)``. These formulas work on floats and
on tensors alike.
"""

from __future__ import annotations

from typing import Any

import attrs

from exitcore.config import CostConfig


@attrs.frozen
class CostModel:
    """Per-side cost ``half_spread_slip`` and per-unit ``commission``, both in price units."""

    half_spread_slip: float
    commission: float
    pip_size: float

    @classmethod
    def from_config(cls, costs: CostConfig, pip_size: float) -> CostModel:
        """Build from the experiment's cost section and the market's pip size."""
        return cls(
            half_spread_slip=(costs.spread_pips / 2 + costs.slippage_pips) * pip_size,
            commission=costs.commission_pips * pip_size,
            pip_size=pip_size,
        )

    def entry_fill(self, open_price: Any, direction: Any) -> Any:
        """Price paid at entry: the open plus half the spread and slippage, against the trader."""
        return open_price + direction * self.half_spread_slip

    def exit_fill(self, level: Any, direction: Any) -> Any:
        """Price received when closing at ``level``."""
        return level - direction * self.half_spread_slip

    def net_per_unit(self, level: Any, entry: Any, direction: Any) -> Any:
        """Net PnL fraction per unit closed at ``level`` (what a guard calls profit)."""
        return (direction * (self.exit_fill(level, direction) - entry) - self.commission) / entry

    def gross_per_unit(self, level: Any, entry_open: Any, entry: Any, direction: Any) -> Any:
        """Gross PnL fraction per unit: the price move from the entry open, before costs."""
        return direction * (level - entry_open) / entry

    def cost_per_unit(self, entry: Any) -> Any:
        """Cost fraction per unit closed: both half spreads, slippage and commission."""
        return (2 * self.half_spread_slip + self.commission) / entry

    def breakeven_level(self, entry: Any, direction: Any) -> Any:
        """The stop level at which closing yields zero net PnL."""
        return entry + direction * (self.half_spread_slip + self.commission)
