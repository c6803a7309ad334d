"""Small builders for environment tests: hand-written bars and trades -> an assembled env."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import attrs
import numpy as np
import pandas as pd

import exitcore_features
import exitcore_guards
import exitcore_masks
import exitcore_rewards
from exitcore.assembly import assemble
from exitcore.components import ComponentKind
from exitcore.config import CostConfig, DataConfig, EnvConfig, ExperimentConfig
from exitcore.data.bars import Bars, Trades
from exitcore.experiments import ResolvedComponent
from exitcore.plugins import PluginHost

ENV_PLUGINS = (exitcore_rewards, exitcore_guards, exitcore_masks, exitcore_features)


def bars_from(ohlc: list[tuple[float, float, float, float]], start: str = "2024-01-08 00:00", holes: dict[int, int] | None = None) -> Bars:
    """Bars from (open, high, low, close) rows, 15 minutes apart; ``holes[i] = n`` skips n bars before row i."""
    step = pd.Timedelta("15min")
    ts, t = [], pd.Timestamp(start, tz="UTC")
    for i in range(len(ohlc)):
        if holes and i in holes:
            t += step * holes[i]
        ts.append(t)
        t += step
    arr = np.asarray(ohlc, dtype=np.float64)
    frame = pd.DataFrame(arr, columns=["open", "high", "low", "close"], index=pd.DatetimeIndex(ts, name="ts"))
    return Bars(frame, "15min", 0.0001, source="test")


def random_bars(n: int, seed: int = 0, vol: float = 0.0005, start: str = "2024-01-08 00:00") -> Bars:
    """A random-walk EURUSD-like series with consistent OHLC."""
    rng = np.random.default_rng(seed)
    close = 1.1 + np.cumsum(rng.normal(0, vol, n))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) + rng.exponential(vol / 2, n)
    low = np.minimum(open_, close) - rng.exponential(vol / 2, n)
    idx = pd.date_range(start, periods=n, freq="15min", tz="UTC", name="ts")
    return Bars(pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=idx), "15min", 0.0001, source=f"random({seed})")


def trades_from(rows: list[tuple[int, int, float, float]]) -> Trades:
    """Trades from (signal_bar, direction, stop_dist, target_dist) rows."""
    return Trades(pd.DataFrame(rows, columns=["signal_bar", "direction", "stop_dist", "target_dist"]))


def resolved(
    features: list[tuple[str, dict]] = (("position", {}),),
    rewards: list[tuple[str, dict, float]] = (("pnl", {}, 1.0), ("cost", {}, 1.0)),
    guards: list[tuple[str, dict]] = (),
    masks: list[tuple[str, dict]] = (),
    env: EnvConfig | None = None,
    costs: CostConfig | None = None,
    max_gap_bars: int = 4,
    extra_plugins: tuple[Any, ...] = (),
) -> SimpleNamespace:
    """A stand-in for a ResolvedExperiment built from a hermetic plugin host."""
    host = PluginHost.create(autoload=False, plugins=(*ENV_PLUGINS, *extra_plugins))

    def rc(kind: ComponentKind, name: str, params: dict, weight: float = 1.0) -> ResolvedComponent:
        comp = host.get(kind, name)
        return ResolvedComponent(comp, comp.params(**params) if comp.params else None, f"test.{name}", weight)

    config = ExperimentConfig(
        name="test",
        env=env or EnvConfig(),
        costs=costs or CostConfig(),
        data=DataConfig(max_gap_bars=max_gap_bars),
    )
    return SimpleNamespace(
        config=config,
        features=[rc(ComponentKind.FEATURE, n, p) for n, p in features],
        rewards=[rc(ComponentKind.REWARD, n, p, w) for n, p, w in rewards],
        guards=[rc(ComponentKind.GUARD, n, p) for n, p in guards],
        masks=[rc(ComponentKind.MASK, n, p) for n, p in masks],
        host=host,
    )


V4_SET = dict(
    features=[("position", {}), ("price_window", {"window": 16}), ("time_of_day", {})],
    rewards=[("pnl", {}, 1.0), ("cost", {}, 1.0), ("time_penalty", {"time_coef": 0.002}, 1.0), ("regret", {"regret_coef": 0.8}, 1.0)],
    guards=[("min_profit_for_exit", {"min_profit": 0.001}), ("min_bars_for_exit", {"min_bars": 2}), ("min_profit_for_partial", {"min_profit": 0.002})],
    masks=[("min_exit_bar", {"n": 3})],
)


def sweep(res: Any, bars: Bars, trades: Trades, **env_kwargs: Any):
    """Assemble and return (assembled, sweep-mode env over every valid trade)."""
    import torch

    asm = assemble(res, bars, trades=trades)
    pool = torch.nonzero(asm.table.valid).flatten()
    return asm, asm.make_env(pool, auto_reset=False, **env_kwargs)


def evolve_config(cfg: Any, **changes: Any) -> Any:
    """attrs.evolve shortcut."""
    return attrs.evolve(cfg, **changes)
