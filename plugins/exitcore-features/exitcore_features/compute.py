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
    lags = torch.arange(w, device=ctx.device)
    # Per-bar close-to-close move, known at the close of each bar (move[0] = 0).
    close = ctx.market.close
    move = torch.zeros_like(close)
    move[1:] = close[1:] - close[:-1]

    def compute(market, state):
        idx = torch.clamp(state.bar[:, None] - lags[None, :], min=0)
        moves = _per_atr(move[idx] * state.direction[:, None], state.atr[:, None])
        rng = _per_atr(market.high[state.bar] - market.low[state.bar], state.atr)
        return torch.cat([moves, rng[:, None]], dim=1).to(torch.float32)

    names = tuple(f"move_{i}" for i in range(w)) + ("range_0",)
    return FeatureSpec(names=names, lookback=w, compute=compute)


def time_of_day(_params, ctx: BuildContext) -> FeatureSpec:
    """sin/cos of the decision bar's close time of day (UTC)."""
    day_ns = 86_400 * 1_000_000_000
    tf_ns = ctx.market.timeframe_ns

    def compute(market, state):
        close_ns = market.ts[state.bar] + tf_ns
        phase = (close_ns % day_ns).to(torch.float64) * (2 * math.pi / day_ns)
        return torch.stack([torch.sin(phase), torch.cos(phase)], dim=1).to(torch.float32)

    return FeatureSpec(names=("tod_sin", "tod_cos"), lookback=0, compute=compute)


def leaky_next_move(_params, ctx: BuildContext) -> FeatureSpec:
    """LEAKY: ``d * (C[b+1] - C[b]) / ATR[b]`` - the next bar's move, unknown at the decision."""
    last = ctx.market.n_bars - 1

    def compute(market, state):
        nxt = torch.clamp(state.bar + 1, max=last)
        return _per_atr(state.direction * (market.close[nxt] - market.close[state.bar]), state.atr)[:, None].to(torch.float32)

    return FeatureSpec(names=("next_move_atr",), lookback=0, compute=compute)
