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


#: a round trip cheaper than this, in basis points of the price, is flagged: a major FX pair at
#: 1 pip of spread costs ~0.8-0.9 bp, while the default 1 pip on gold (pip 0.01 at ~1,400) is
#: 0.07 bp, a tenth of a real gold spread, which a pip-denominated default hides
LOW_ROUND_TRIP_BP = 0.2


@attrs.frozen
class CostSummary:
    """What a round trip of one unit costs on some bars, in price units and basis points."""

    round_trip: float  #: full spread + 2 x slippage + commission, price units
    median_price: float  #: median close of the bars
    pip_size: float

    @property
    def round_trip_bp(self) -> float:
        """The round trip in basis points of the median close."""
        return 1e4 * self.round_trip / self.median_price if self.median_price > 0 else float("nan")

    def describe(self) -> str:
        """``round trip 1 pip = 0.0001 = 0.86 bp of the median close 1.1612``."""
        pips = self.round_trip / self.pip_size if self.pip_size > 0 else float("nan")
        return (f"round trip {pips:g} pip{'s' if pips != 1 else ''} = {self.round_trip:.6g} = {bp_words(self.round_trip_bp)} bp "
                f"of the median close {self.median_price:,.6g} (pip size {self.pip_size:g})")

    def warning(self) -> str | None:
        """A sentence when the round trip is implausibly cheap for a real market, else ``None``."""
        if self.round_trip_bp >= LOW_ROUND_TRIP_BP:
            return None
        if self.round_trip == 0:
            return "costs are zero: every result is frictionless (set costs.spread_pips, costs.commission_pips)"
        return (f"costs look too low: a {self.describe()}, under {LOW_ROUND_TRIP_BP:g} bp, where major FX pairs cost "
                f"~0.8 bp at 1 pip; check the pip size (data.pip_size; inferred from the price level when 0) and set "
                f"costs.spread_pips to what you pay")

    def to_dict(self) -> dict[str, float]:
        """Plain data for run.json."""
        return {"round_trip": self.round_trip, "round_trip_bp": self.round_trip_bp,
                "median_price": self.median_price, "pip_size": self.pip_size}

    @classmethod
    def from_dict(cls, data: Any) -> CostSummary | None:
        """Back from :meth:`to_dict` (run.json); ``None`` when absent (older runs) or malformed."""
        try:
            return cls(float(data["round_trip"]), float(data["median_price"]), float(data["pip_size"]))
        except (KeyError, TypeError, ValueError):
            return None


def account_currency(config: Any) -> str | None:
    """The currency of a run's ``pnl_ccy`` (PnL x ``costs.notional``): ``costs.account_currency``
    of its frozen configuration (a ``config.toml``'s experiment table); None when not known."""
    costs = config.get("costs") if isinstance(config, dict) else None
    currency = costs.get("account_currency") if isinstance(costs, dict) else None
    return currency if isinstance(currency, str) and currency else None


def bp_words(bp: float) -> str:
    """Basis points to two significant figures below 10 (``0.071``, ``0.86``), whole above (``140``)."""
    return f"{bp:.2g}" if abs(bp) < 10 else f"{bp:,.0f}"


def summarize_costs(costs: CostConfig, pip_size: float, close: Any) -> CostSummary:
    """:class:`CostSummary` of ``costs`` on bars whose closes are ``close`` (array-like)."""
    import numpy as np

    model = CostModel.from_config(costs, pip_size)
    closes = np.asarray(close, dtype=np.float64)
    finite = closes[np.isfinite(closes)]
    median = float(np.median(finite)) if finite.size else float("nan")
    return CostSummary(2 * model.half_spread_slip + model.commission, median, pip_size)
