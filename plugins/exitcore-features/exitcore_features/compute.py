"""The features' tensor code (imported when a feature is built, never at start-up)."""

from __future__ import annotations

import math

import torch

from exitcore.components import BuildContext, FeatureSpec

_TINY = 1e-12


def _per_atr(x: torch.Tensor, atr: torch.Tensor) -> torch.Tensor:
    return x / torch.clamp(atr, min=_TINY)


def position(_params, ctx: BuildContext) -> FeatureSpec:
    """Position state: everything is known at the decision close."""
    max_bars = float(ctx.env.max_bars)

    def compute(market, state):
        d = state.direction
        cols = [
            100.0 * state.upnl,
            state.k.to(torch.float64) / max_bars,
            state.size,
            state.partial_taken.to(torch.float64),
            state.at_breakeven.to(torch.float64),
            d,
            _per_atr(d * (state.price - state.stop), state.atr),
            _per_atr(d * (state.target - state.price), state.atr),
        ]
        return torch.stack(cols, dim=1).to(torch.float32)

    names = ("upnl_pct", "bars_held_frac", "size", "partial_taken", "at_breakeven", "direction", "stop_dist_atr", "target_dist_atr")
    return FeatureSpec(names=names, lookback=0, compute=compute)


def price_window(params, ctx: BuildContext) -> FeatureSpec:
    """The last ``window`` moves ``C[b-i] - C[b-i-1]`` and the range ``H[b] - L[b]``, per ATR[b]."""
    w = params.window
    # Row b holds the moves C[b-i] - C[b-i-1] (i = 0..w-1, zero before the first bar) and the
    # range H[b] - L[b]: all known at the close of bar b. A step then reads one contiguous row
    # per environment. float32: an observation needs no more precision.
    close = ctx.market.close
    move = torch.zeros_like(close)
    move[1:] = close[1:] - close[:-1]
    # row b of the windows over [w - 1 zeros, moves] read backwards is C[b] - C[b-1], ...: one
    # copy into the table (w shifted copies stacked took 0.23 s per build on 745,000 M1 bars,
    # and the audit builds it hundreds of times); the same float32 values
    padded = torch.cat([torch.zeros(w - 1, dtype=torch.float32, device=move.device), move.to(torch.float32)])
    lagged = padded.unfold(0, w, 1).flip(1) if move.numel() else padded.new_zeros(0, w)
    table = torch.cat([lagged, (ctx.market.high - ctx.market.low).to(torch.float32)[:, None]], dim=1)
    sign = torch.ones(w + 1, dtype=torch.float32, device=ctx.device)

    def compute(market, state):
        per_atr = (1.0 / torch.clamp(state.atr, min=_TINY)).to(torch.float32)
        direction = state.direction.to(torch.float32)
        # moves are signed by the trade direction (positive = in its favour); the range is not
        signs = torch.where(torch.arange(w + 1, device=per_atr.device) < w, direction[:, None], sign[None, :])
        return table[state.bar] * (signs * per_atr[:, None])

    names = tuple(f"move_{i}" for i in range(w)) + ("range_0",)
    return FeatureSpec(names=names, lookback=w, compute=compute)


def time_of_day(_params, ctx: BuildContext) -> FeatureSpec:
    """sin/cos of the decision bar's close time of day (UTC)."""
    day_ns = 86_400 * 1_000_000_000
    # one row per bar, from the bar's own timestamp (known at its close): a gather per step
    close_ns = ctx.market.ts + ctx.market.timeframe_ns
    phase = (close_ns % day_ns).to(torch.float64) * (2 * math.pi / day_ns)
    table = torch.stack([torch.sin(phase), torch.cos(phase)], dim=1).to(torch.float32)

    def compute(market, state):
        return table[state.bar]

    return FeatureSpec(names=("tod_sin", "tod_cos"), lookback=0, compute=compute)


def leaky_next_move(_params, ctx: BuildContext) -> FeatureSpec:
    """LEAKY: ``d * (C[b+1] - C[b]) / ATR[b]`` - the next bar's move, unknown at the decision."""
    last = ctx.market.n_bars - 1

    def compute(market, state):
        nxt = torch.clamp(state.bar + 1, max=last)
        return _per_atr(state.direction * (market.close[nxt] - market.close[state.bar]), state.atr)[:, None].to(torch.float32)

    return FeatureSpec(names=("next_move_atr",), lookback=0, compute=compute)
