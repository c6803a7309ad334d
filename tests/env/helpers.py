"""Shared helpers for environment tests and benchmarks: build a ``VecExitEnv`` in a few lines.

Everything is hermetic: the plugin host loads exactly the four shipped plugin modules (no entry
point discovery), components are described by :class:`reference.Spec` tuples in a
:class:`reference.RefConfig` (the same description the scalar reference reads), and bars are
plain arrays. Typical use::

    bars = synthetic_bars(5_000, seed=1)
    trades = synthetic_trades(bars, 500, seed=2)
    env = make_env(bars, trades, v4_config(max_bars=48))                  # sweep mode
    env = make_env(bars, trades, v4_config(), n_envs=4096, auto_reset=True)  # training mode
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from exitcore.components import BuildContext, ComponentKind
from exitcore.config import CostConfig, EnvConfig
from exitcore.costs import CostModel
from exitcore.data.bars import Bars, Trades
from exitcore.env.components import EnvComponents, build_components
from exitcore.env.vec_env import VecExitEnv
from exitcore.episodes import MarketTensors, TradeTable
from exitcore.experiments import ResolvedComponent

from .reference import RefConfig, RefMarket, Spec

TIMEFRAME = "15min"
TIMEFRAME_NS = 15 * 60 * 1_000_000_000


def plugin_host():
    """A hermetic host with only the shipped reward, guard, mask and feature plugins."""
    import exitcore_features
    import exitcore_guards
    import exitcore_masks
    import exitcore_rewards

    from exitcore.plugins import PluginHost

    return PluginHost.create(autoload=False, plugins=[exitcore_rewards, exitcore_guards, exitcore_masks, exitcore_features])


@dataclass
class _Resolved:
    """The four component lists of an experiment (what ``build_components`` reads)."""

    features: list[ResolvedComponent]
    rewards: list[ResolvedComponent]
    guards: list[ResolvedComponent]
    masks: list[ResolvedComponent]


def resolve(cfg: RefConfig, host: Any = None) -> _Resolved:
    """Turn the specs of ``cfg`` into resolved components with validated parameters."""
    host = host or plugin_host()

    def one(kind: ComponentKind, group: str, i: int, spec: Spec) -> ResolvedComponent:
        comp = host.get(kind, spec.name)
        params = comp.params(**dict(spec.params)) if comp.params else None
        return ResolvedComponent(comp, params, f"{group}[{i}]", spec.weight)

    return _Resolved(
        features=[one(ComponentKind.FEATURE, "features", i, s) for i, s in enumerate(cfg.features)],
        rewards=[one(ComponentKind.REWARD, "rewards", i, s) for i, s in enumerate(cfg.rewards)],
        guards=[one(ComponentKind.GUARD, "guards", i, s) for i, s in enumerate(cfg.guards)],
        masks=[one(ComponentKind.MASK, "masks", i, s) for i, s in enumerate(cfg.masks)],
    )


def env_config(cfg: RefConfig, atr_period: int = 14) -> EnvConfig:
    """The engine's env section for ``cfg``."""
    return EnvConfig(
        max_bars=cfg.max_bars,
        tighten_factor=cfg.tighten_factor,
        partial_fraction=cfg.partial_fraction,
        reward_scale=cfg.reward_scale,
        atr_period=atr_period,
        data_holes=cfg.data_holes,
    )


def cost_config(cfg: RefConfig) -> CostConfig:
    """The engine's cost section for ``cfg``."""
    return CostConfig(spread_pips=cfg.spread_pips, commission_pips=cfg.commission_pips, slippage_pips=cfg.slippage_pips)


# --------------------------------------------------------------------------------- data


def make_bars(
    open_: Sequence[float],
    high: Sequence[float],
    low: Sequence[float],
    close: Sequence[float],
    ts_ns: Sequence[int] | None = None,
    pip_size: float = 0.0001,
    start: str = "2024-01-01 00:00",
) -> Bars:
    """Canonical 15-minute bars from arrays (``ts_ns`` bar opens in ns; default: contiguous)."""
    n = len(close)
    if ts_ns is None:
        ts_ns = pd.Timestamp(start, tz="UTC").value + TIMEFRAME_NS * np.arange(n, dtype=np.int64)
    index = pd.DatetimeIndex(pd.to_datetime(np.asarray(ts_ns, dtype=np.int64), utc=True), name="ts")
    frame = pd.DataFrame(
        {c: np.asarray(v, dtype=np.float64) for c, v in (("open", open_), ("high", high), ("low", low), ("close", close))},
        index=index,
    )
    return Bars(frame, TIMEFRAME, pip_size)


def make_trades(signal_bar: Sequence[int], direction: Sequence[int], stop_dist: Sequence[float], target_dist: Sequence[float]) -> Trades:
    """Trades from columns (kept in the given order; the engine does not re-sort them)."""
    return Trades(
        pd.DataFrame(
            {
                "signal_bar": np.asarray(signal_bar, dtype=np.int64),
                "direction": np.asarray(direction, dtype=np.int64),
                "stop_dist": np.asarray(stop_dist, dtype=np.float64),
                "target_dist": np.asarray(target_dist, dtype=np.float64),
            }
        )
    )


def trade_rows(trades: Trades) -> list[tuple[int, int, float, float]]:
    """``(signal_bar, direction, stop_dist, target_dist)`` per trade, for the reference."""
    f = trades.frame
    return [
        (int(s), int(d), float(sd), float(td))
        for s, d, sd, td in zip(f["signal_bar"], f["direction"], f["stop_dist"], f["target_dist"])
    ]


def ref_market(bars: Bars, atr_period: int = 14, max_gap_bars: int = 4, cls: type[RefMarket] = RefMarket) -> RefMarket:
    """The reference's view of ``bars``."""
    f = bars.frame
    return cls(
        f["open"].to_numpy(), f["high"].to_numpy(), f["low"].to_numpy(), f["close"].to_numpy(),
        f.index.asi8, TIMEFRAME_NS, bars.pip_size, atr_period=atr_period, max_gap_bars=max_gap_bars,
    )  # fmt: skip


def synthetic_bars(n: int, seed: int = 0, pip_size: float = 0.0001, weekends: bool = True) -> Bars:
    """A seeded random-walk EURUSD-like series (about 5 pips a bar), with weekend holes.

    Good enough to exercise every code path at benchmark sizes; it is not a market model.
    """
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.standard_t(4, n) * 3e-4)
    open_ = np.r_[close[0], close[:-1]] + rng.normal(0, 2e-5, n)
    high = np.maximum(open_, close) + rng.exponential(2e-4, n)
    low = np.minimum(open_, close) - rng.exponential(2e-4, n)
    steps = np.full(n, TIMEFRAME_NS, dtype=np.int64)
    if weekends:
        steps[::480] += 2 * 86_400 * 1_000_000_000  # a two-day hole every five trading days
    ts = pd.Timestamp("2020-01-06", tz="UTC").value + np.cumsum(steps) - steps[0]
    return make_bars(open_, high, low, close, ts, pip_size=pip_size)


def synthetic_trades(bars: Bars, n: int, seed: int = 0, atr_period: int = 14) -> Trades:
    """``n`` random trades on ``bars``: stop 1.5 x ATR and target 3 x ATR at the signal bar."""
    rng = np.random.default_rng(seed)
    market = MarketTensors.from_bars(bars, atr_period=atr_period)
    signal = np.sort(rng.choice(np.arange(atr_period, len(bars) - 1), size=n, replace=n > len(bars) - 1 - atr_period))
    atr = market.atr.numpy()[signal]
    return make_trades(signal, rng.choice([-1, 1], n), 1.5 * atr, 3.0 * atr)


# --------------------------------------------------------------------------------- environments


@dataclass
class Built:
    """A market, its trade table and an experiment's built components."""

    market: MarketTensors
    table: TradeTable
    components: EnvComponents
    env_cfg: EnvConfig
    costs: CostModel


def build(
    bars: Bars, trades: Trades, cfg: RefConfig, atr_period: int = 14, max_gap_bars: int = 4, device: Any = "cpu"
) -> Built:
    """Market tensors, trade table and components for ``cfg`` (every hook has run on return)."""
    market = MarketTensors.from_bars(bars, atr_period=atr_period, max_gap_bars=max_gap_bars, device=device)
    costs = CostModel.from_config(cost_config(cfg), market.pip_size)
    ecfg = env_config(cfg, atr_period)
    table = TradeTable.build(trades, market, costs, cfg.max_bars, cfg.data_holes)
    ctx = BuildContext(experiment=None, env=ecfg, costs=cost_config(cfg), market=market, trades=table, device=torch.device(device))
    return Built(market, table, build_components(resolve(cfg), ctx), ecfg, costs)


def make_env(
    bars: Bars,
    trades: Trades,
    cfg: RefConfig,
    *,
    n_envs: int | None = None,
    auto_reset: bool = False,
    pool: torch.Tensor | None = None,
    seed: int = 0,
    compile: bool = False,
    atr_period: int = 14,
    max_gap_bars: int = 4,
    device: Any = "cpu",
) -> VecExitEnv:
    """A ``VecExitEnv`` for ``cfg`` on ``bars``/``trades`` (see :func:`env_from`)."""
    built = build(bars, trades, cfg, atr_period, max_gap_bars, device)
    return env_from(built, n_envs=n_envs, auto_reset=auto_reset, pool=pool, seed=seed, compile=compile)


def env_from(
    built: Built,
    *,
    n_envs: int | None = None,
    auto_reset: bool = False,
    pool: torch.Tensor | None = None,
    seed: int = 0,
    compile: bool = False,
) -> VecExitEnv:
    """A ``VecExitEnv`` on already built pieces.

    Sweep mode (default): one env per trade in ``pool`` (default: every valid trade, in
    order). Training mode (``auto_reset=True``): ``n_envs`` envs sampling from ``pool``
    (default: every decidable trade).
    """
    if pool is None:
        pool = torch.nonzero(built.table.decidable if auto_reset else built.table.valid).flatten()
    return VecExitEnv(
        built.market, built.table, built.components, built.env_cfg, built.costs, pool,
        n_envs=n_envs, seed=seed, auto_reset=auto_reset, compile=compile,
    )  # fmt: skip
