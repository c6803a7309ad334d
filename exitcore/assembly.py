"""Put an experiment together: bars + entry trades + components -> a ready environment.

The run orchestrator, the ledger, the look-ahead audit and the tests all assemble an
experiment the same way through :func:`assemble`, so "what the agent saw" is defined once.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import attrs
import numpy as np
import torch

from exitcore.components import BuildContext, EntryContext
from exitcore.costs import CostModel
from exitcore.data.bars import Bars, Trades
from exitcore.device import select_device
from exitcore.env.components import EnvComponents, build_components
from exitcore.env.vec_env import VecExitEnv
from exitcore.episodes import MarketTensors, TradeTable
from exitcore.errors import ExitcoreError, ExitcoreWarning, PluginError, describe_exception


@attrs.frozen(eq=False)
class Assembled:
    """One experiment on one data set, on one device."""

    resolved: Any  # exitcore.experiments.ResolvedExperiment
    bars: Bars
    trades: Trades
    market: MarketTensors
    table: TradeTable
    costs: CostModel
    ctx: BuildContext
    components: EnvComponents

    @property
    def device(self) -> torch.device:
        """The device the tensors live on."""
        return self.market.device

    def make_env(
        self,
        trade_pool: torch.Tensor,
        n_envs: int | None = None,
        seed: int = 0,
        auto_reset: bool = True,
        compile: bool = False,
    ) -> VecExitEnv:
        """A :class:`VecExitEnv` over ``trade_pool`` (training: decidable trades; sweep: valid)."""
        return VecExitEnv(
            self.market,
            self.table,
            self.components,
            self.resolved.config.env,
            self.costs,
            trade_pool,
            n_envs=n_envs,
            seed=seed,
            auto_reset=auto_reset,
            compile=compile,
        )


def build_entry(resolved: Any) -> Any:
    """The experiment's entry strategy built from its factory: ``strategy(bars) -> Trades``."""
    cfg = resolved.config
    return resolved.entry.build(EntryContext(experiment=cfg, env=cfg.env, costs=cfg.costs))


def run_entry(resolved: Any, bars: Bars) -> Trades:
    """Run the experiment's entry strategy on ``bars`` and check what it returned."""
    strategy = build_entry(resolved)
    where = f"{resolved.entry.path}: entry strategy {resolved.entry.name!r} from {resolved.entry.component.origin}"
    try:
        trades = strategy(bars)
    except ExitcoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported with the plugin that raised
        raise PluginError(f"{where} raised {describe_exception(exc)}") from exc
    if not isinstance(trades, Trades):
        raise PluginError(f"{where} returned {type(trades).__name__}, expected exitcore.data.bars.Trades")
    problems = check_trades(trades, len(bars))
    if problems:
        raise PluginError(f"{where} returned bad trades: " + "; ".join(problems))
    return trades


#: a stop or target farther than this fraction of the price is taken for pips, not price units
PIPS_SUSPECT_FRACTION = 0.2


def warn_if_pips(trades: Trades, bars: Bars, where: str, hint: str = "") -> None:
    """Warn when stop or target distances look like pips rather than price units: farther from
    the fill than :data:`PIPS_SUSPECT_FRACTION` of the signal bar's close (20 pips written as
    ``20.0`` on EURUSD at 1.1 is 1,800 % of the price). Not an error: a strategy may mean it."""
    f = trades.frame
    if len(f) == 0:
        return
    close = bars.frame["close"].to_numpy(np.float64)[f["signal_bar"].to_numpy()]
    for col in ("stop_dist", "target_dist"):
        ratio = f[col].to_numpy(np.float64) / np.abs(close)
        far = ratio > PIPS_SUSPECT_FRACTION
        if far.any():
            i = int(np.argmax(far))
            warnings.warn(
                f"{where}: {int(far.sum()):,} of {len(f):,} trades have a {col} above "
                f"{PIPS_SUSPECT_FRACTION:.0%} of the price (row {i}: {f[col].iloc[i]:g} at a close of {close[i]:g}); "
                f"distances are in price units, not pips: 20 pips is {20 * bars.pip_size:g} here (pip size "
                f"{bars.pip_size:g}){hint}", ExitcoreWarning, stacklevel=2)


def check_trades(trades: Trades, n_bars: int) -> list[str]:
    """What is wrong with an entry strategy's trades (empty when nothing is)."""
    f = trades.frame
    s = f["signal_bar"].to_numpy()
    d = f["direction"].to_numpy()
    problems = []
    if len(f) == 0:
        return problems
    if not np.issubdtype(s.dtype, np.integer):
        problems.append(f"signal_bar must be integer bar positions, got dtype {s.dtype}")
    elif ((s < 0) | (s >= n_bars)).any():
        problems.append(f"{int(((s < 0) | (s >= n_bars)).sum())} signal_bar value(s) outside 0..{n_bars - 1}")
    elif (np.diff(s) < 0).any():
        problems.append("rows are not sorted by signal_bar")
    if not np.issubdtype(d.dtype, np.integer):
        # as signal_bar: an id, not a quantity (a float 1.0 passing would let 0.5 pass as well)
        problems.append(f"direction must be an integer column (+1 long, -1 short), got dtype {d.dtype}: "
                        "cast it with .astype('int64')")
    elif not np.isin(d, (-1, 1)).all():
        problems.append(f"direction must be +1 or -1, got {sorted(set(np.unique(d).tolist()) - {-1, 1})[:5]}")
    for col in ("stop_dist", "target_dist"):
        v = f[col].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(v) | (v <= 0)
        if bad.any():
            problems.append(f"{int(bad.sum())} {col} value(s) not finite and > 0 (first at row {int(np.argmax(bad))})")
    return problems


def assemble(
    resolved: Any,
    bars: Bars,
    trades: Trades | None = None,
    device: Any = "cpu",
    market: MarketTensors | None = None,
    exact_write_check: bool = True,
) -> Assembled:
    """Build market tensors, the trade table and every env component for ``resolved``.

    ``trades`` defaults to running the experiment's entry strategy on ``bars``; ``market``
    may be passed when it was already built for these bars (the audit passes poisoned ones).
    ``exact_write_check=False`` (the audit's many rebuilds) checks the factories' writes into
    the bars and trades by the tensors' write counters only, not by comparing their values.
    """
    # a name ("cuda", "auto") is checked as --device is: no CUDA is one clear error, not torch's assertion
    # (a torch.device that can exist is taken as it is: the audit rebuilds on it many times)
    usable = isinstance(device, torch.device) and (device.type == "cpu" or torch.cuda.is_available())
    device = device if usable else select_device(str(device))
    cfg = resolved.config
    if trades is None:
        trades = run_entry(resolved, bars)
        # the entry table, not the last of its params a layer wrote (`--set entry.params.path`)
        table = re.sub(r"\.params(\.|\[).*$", "", resolved.entry.path)
        unit = getattr(resolved.entry.params, "distance_unit", None)
        warn_if_pips(trades, bars, f"{table}: entry strategy {resolved.entry.name!r}",
                     hint='; if they are pips, set entry.params.distance_unit = "pips"' if unit == "price" else "")
    if market is None:
        market = MarketTensors.from_bars(bars, atr_period=cfg.env.atr_period, max_gap_bars=cfg.data.max_gap_bars, device=device)
    costs = CostModel.from_config(cfg.costs, market.pip_size)
    table = TradeTable.build(trades, market, costs, cfg.env.max_bars, cfg.env.data_holes)
    ctx = BuildContext(experiment=cfg, env=cfg.env, costs=cfg.costs, market=market, trades=table, device=device)
    components = build_components(resolved, ctx, exact_write_check)
    return Assembled(resolved, bars, trades, market, table, costs, ctx, components)


def split_pools(assembled: Assembled) -> tuple[list[Any], dict[str, dict[str, torch.Tensor]]]:
    """The experiment's time splits and, per split, its trade rows: what a run trains and
    evaluates on.

    Returns ``(splits, pools)``: ``splits`` the :class:`~exitcore.data.splits.Split` objects
    (their spans bound the daily series), ``pools["valid"][name]`` every trade of split ``name``
    (what evaluation replays: :func:`~exitcore.evaluation.ledger.make_ledger` and the baselines
    take these) and ``pools["decidable"][name]`` those still open after their entry bar (what
    training samples: ``make_env(pools["decidable"]["train"], n_envs=...)``), as int64 tensors on
    the assembled device. A split with fewer trades than the experiment needs is a
    :class:`~exitcore.errors.DataError` naming the entry strategy.
    """
    from exitcore.data.splits import assign_trades, make_splits, minimum_trades, require_trades

    cfg = assembled.resolved.config
    lookback = assembled.components.lookback
    splits = make_splits(assembled.bars.frame.index, cfg.split, cfg.env.max_bars + lookback,
                         origins=assembled.resolved.split_origins)
    rows = assign_trades(splits, assembled.table, lookback)
    decidable = assembled.table.decidable.cpu().numpy()
    pools: dict[str, dict[str, torch.Tensor]] = {"valid": {}, "decidable": {}}
    for name, idx in rows.items():
        pools["valid"][name] = torch.as_tensor(idx, device=assembled.device)
        pools["decidable"][name] = torch.as_tensor(idx[decidable[idx]], device=assembled.device)
    counts = {name: int(p.numel()) for name, p in pools["decidable"].items()}
    minimum, why = minimum_trades(cfg, list(counts))
    for name, need in minimum.items():  # most trades gone on their entry bar: the stops, not the data
        valid = int(pools["valid"][name].numel()) if name in pools["valid"] else 0
        closed = valid - counts.get(name, 0)
        if counts.get(name, 0) < need and 2 * closed > valid:
            said = f"{closed:,} of its {valid:,} trades closed on their entry bar, leaving no decision: a stop or " \
                   "target inside the entry bar's range (too tight for these bars?)"
            why[name] = f"{why[name]}; {said}" if why.get(name) else said
    entry = assembled.resolved.entry
    require_trades(counts, minimum, why, f"entry strategy {entry.name!r} from {entry.component.origin}", cfg.ppo)
    return splits, pools
