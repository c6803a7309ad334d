"""Differential test: the batched ``VecExitEnv`` against the scalar reference, trade by trade.

Hypothesis draws whole scenarios - a random bar series (gaps at the open, holes in the data
that split it into stretches, flat bars, prices on a tick grid so that bars touch stops and
targets exactly), a few hundred random trades on it (including unfillable ones and ones with
stops so close that the entry bar closes them), a random configuration (costs, tighten factor,
partial fraction, max_bars, ``env.data_holes`` - trades held across holes or closed before
them -, reward terms and weights, guards, masks, features) and random action sequences. The batched environment plays every trade at once in sweep mode (one env per
trade) while :class:`reference.RefEpisode` plays each trade alone, fed the same action; at
every step they must agree on the reward (each term, in float64), the executed action, the
blocked flag, the stop, done, the exit reason, bars held, the realized net/gross/cost PnL and
the step's PnL pieces, and at every decision on the observation and the mask. At the end the
device-side episode statistics must match the reference's counts.

``test_differential_detects_*`` show the comparison can fail: each perturbs one rule in the
reference (e.g. the target first on ambiguous bars) and requires a disagreement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exitcore.actions import ACTION_NAMES, N_ACTIONS
from exitcore.data.bars import Bars, Trades
from exitcore.timeline import EXIT_REASON_NAMES, ExitReason

from .helpers import TIMEFRAME_NS, build, env_from, make_bars, make_trades, ref_market, trade_rows
from .reference import (
    AGENT,
    EXIT,
    HOLD,
    PARTIAL_EXIT,
    STOP,
    TARGET,
    TIGHTEN_SL,
    TIME,
    TRAIL_BE,
    V4_FEATURES,
    V4_GUARDS,
    V4_MASKS,
    V4_REWARDS,
    RefConfig,
    RefEpisode,
    RefMarket,
    Spec,
)

# Tolerances. PnL, stops and reward terms are float64 in both implementations and must agree
# to rounding; observations are float32 in the engine, so they are compared at float32 precision.
RTOL, ATOL = 1e-9, 1e-12
OBS_RTOL, OBS_ATOL = 1e-5, 1e-6


# --------------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    """One randomly drawn world: bars, trades, configuration and the agent's raw actions."""

    bars: Bars
    trades: Trades
    cfg: RefConfig
    max_gap_bars: int
    atr_period: int
    actions: np.ndarray  #: [max_bars, n_trades] the action the agent samples at each step
    respect_mask: bool  #: masked actions are replaced by HOLD (what a masked policy does)

    def only(self, trade: int) -> Scenario:
        """The same world with a single trade (trades are independent: a minimal reproducer)."""
        f = self.trades.frame.iloc[[trade]].reset_index(drop=True)
        return replace(self, trades=Trades(f), actions=self.actions[:, [trade]])


def random_bars(
    rng: np.random.Generator,
    n: int,
    pip: float,
    vol_pips: float,
    tick: float | None,
    p_flat: float,
    p_gap: float,
    p_hole: float,
    max_gap_bars: int,
) -> Bars:
    """A random bar series with gaps at the open, flat bars and holes; optionally on a tick grid."""
    base = 1.1 if pip < 0.001 else 150.0
    vol = vol_pips * pip
    o, h, l, c = (np.empty(n) for _ in range(4))
    prev = base
    for t in range(n):
        if rng.random() < p_flat:
            o[t] = h[t] = l[t] = c[t] = prev
            continue
        o[t] = prev + (rng.normal(0, 3 * vol) if rng.random() < p_gap else 0.0)
        c[t] = o[t] + rng.standard_t(4) * vol
        h[t] = max(o[t], c[t]) + rng.exponential(vol / 2)
        l[t] = min(o[t], c[t]) - rng.exponential(vol / 2)
        prev = c[t]
    if tick:  # rounding is monotone, so high >= open, close >= low survives it
        o, h, l, c = (np.round(x / tick) * tick for x in (o, h, l, c))
    steps = np.ones(n, dtype=np.int64)
    holes = rng.random(n) < p_hole
    steps[holes] += rng.integers(1, max_gap_bars + 4, size=int(holes.sum()))  # some split a stretch, some not
    steps[0] = 0
    ts = 1_704_067_200 * 10**9 + rng.integers(0, 96) * TIMEFRAME_NS + np.cumsum(steps) * TIMEFRAME_NS
    return make_bars(o, h, l, c, ts, pip_size=pip)


def random_trades(rng: np.random.Generator, n_bars: int, n_trades: int, vol: float, tick: float | None) -> Trades:
    """Trades at any signal bar (the last cannot be filled), stop and target distances from
    0.2x to 15x the bar volatility (log-uniform; on the tick grid when there is one)."""
    signal = np.sort(rng.integers(0, n_bars, n_trades))
    direction = rng.choice([-1, 1], n_trades)

    def distances() -> np.ndarray:
        dist = vol * np.exp(rng.uniform(math.log(0.2), math.log(15.0), n_trades))
        if tick:
            dist = np.maximum(np.round(dist / tick), 1) * tick
        return dist

    return make_trades(signal, direction, distances(), distances())


@st.composite
def scenarios(draw, max_trades: int = 300, max_bars_hi: int = 40) -> Scenario:
    """Hypothesis strategy: structure is drawn by hypothesis, bulk numbers by a seeded numpy RNG."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    pip = draw(st.sampled_from([1e-4, 1e-2]), label="pip")
    n_bars = draw(st.integers(2, 400), label="n_bars")
    vol_pips = draw(st.floats(0.5, 30.0), label="vol_pips")
    tick = draw(st.sampled_from([None, pip / 10, pip]), label="tick")
    max_gap_bars = draw(st.integers(0, 4), label="max_gap_bars")
    bars = random_bars(
        rng, n_bars, pip, vol_pips, tick,
        p_flat=draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]), label="p_flat"),
        p_gap=draw(st.sampled_from([0.0, 0.05, 0.3]), label="p_gap"),
        p_hole=draw(st.sampled_from([0.0, 0.02, 0.1]), label="p_hole"),
        max_gap_bars=max_gap_bars,
    )  # fmt: skip

    n_trades = draw(st.integers(1, max_trades), label="n_trades")
    trades = random_trades(rng, n_bars, n_trades, vol_pips * pip, tick)

    # configuration
    def some(options: list[Spec]) -> tuple[Spec, ...]:
        chosen = draw(st.lists(st.sampled_from(range(len(options))), unique=True, max_size=len(options)))
        return tuple(options[i] for i in chosen)  # random subset in random order

    weight = st.sampled_from([1.0, 0.5, 2.0])
    rewards = some([
        Spec("pnl", {"unrealized": draw(st.booleans(), label="unrealized")}, draw(weight)),
        Spec("cost", {}, draw(weight)),
        Spec("time_penalty", {"time_coef": draw(st.floats(0.0, 0.01), label="time_coef")}, draw(weight)),
        Spec("regret", {"regret_coef": draw(st.floats(0.0, 1.0), label="regret_coef")}, draw(weight)),
    ])  # fmt: skip
    min_profit = st.floats(-0.002, 0.004)
    guards = some([
        Spec("min_profit_for_exit", {"min_profit": draw(min_profit, label="min_profit_exit")}),
        Spec("min_bars_for_exit", {"min_bars": draw(st.integers(0, 5), label="min_bars")}),
        Spec("min_profit_for_partial", {"min_profit": draw(min_profit, label="min_profit_partial")}),
    ])  # fmt: skip
    masks = some([Spec("min_exit_bar", {"n": draw(st.integers(0, 5), label="min_exit_bar")})])
    features = some([Spec("position"), Spec("price_window", {"window": draw(st.integers(1, 20), label="window")}), Spec("time_of_day")])
    if not features:
        features = (Spec("position"),)
    cfg = RefConfig(
        max_bars=draw(st.integers(1, max_bars_hi), label="max_bars"),
        tighten_factor=draw(st.floats(0.05, 0.95), label="tighten_factor"),
        partial_fraction=draw(st.floats(0.05, 0.95), label="partial_fraction"),
        reward_scale=draw(st.sampled_from([100.0, 1.0, 37.5]), label="reward_scale"),
        spread_pips=draw(st.sampled_from([0.0, 0.2, 1.0, 2.5]), label="spread_pips"),
        commission_pips=draw(st.sampled_from([0.0, 0.3]), label="commission_pips"),
        slippage_pips=draw(st.sampled_from([0.0, 0.5]), label="slippage_pips"),
        data_holes=draw(st.sampled_from(["hold", "close"]), label="data_holes"),
        rewards=rewards, guards=guards, masks=masks, features=features,
    )  # fmt: skip

    # actions: a random preference over the five actions (some runs hold a lot, some exit a lot)
    weights = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=N_ACTIONS, max_size=N_ACTIONS), label="action_weights"))
    weights[HOLD] += 0.05
    actions = rng.choice(N_ACTIONS, size=(cfg.max_bars, n_trades), p=weights / weights.sum())
    return Scenario(bars, trades, cfg, max_gap_bars, draw(st.integers(1, 20), label="atr_period"), actions, draw(st.booleans(), label="respect_mask"))


# --------------------------------------------------------------------------------- comparison


class Disagreement(AssertionError):
    """The batched environment and the reference differ (the message says where and how)."""


class _Checker:
    """Collects mismatches with enough context to reproduce them."""

    def __init__(self, scenario: Scenario, label: Callable[[int], str]):
        self.scenario, self.label, self.problems = scenario, label, []

    def close(self, what: str, step: int, env_idx: np.ndarray, got, want, rtol=RTOL, atol=ATOL) -> None:
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        bad = ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        self._report(what, step, env_idx, bad, got, want)

    def equal(self, what: str, step: int, env_idx: np.ndarray, got, want) -> None:
        got, want = np.asarray(got), np.asarray(want)
        self._report(what, step, env_idx, got != want, got, want)

    def _report(self, what, step, env_idx, bad, got, want) -> None:
        if bad.ndim > 1:
            bad_rows = bad.any(axis=tuple(range(1, bad.ndim)))
        else:
            bad_rows = bad
        for row in np.flatnonzero(bad_rows)[:3]:
            self.problems.append(
                f"step {step}, {self.label(int(env_idx[row]))}: {what}: batched {got[row].tolist()} != reference {want[row].tolist()}"
            )

    def raise_if_any(self) -> None:
        if self.problems:
            cfg = self.scenario.cfg
            head = "\n  ".join(self.problems[:12])
            more = f"\n  ... and {len(self.problems) - 12} more" if len(self.problems) > 12 else ""
            raise Disagreement(
                f"batched env and reference disagree ({len(self.problems)} mismatch(es)):\n  {head}{more}\n"
                f"config: {cfg}\nmax_gap_bars={self.scenario.max_gap_bars} atr_period={self.scenario.atr_period} "
                f"respect_mask={self.scenario.respect_mask}\n"
                f"hypothesis prints the failing Scenario above; run_differential(scenario.only(trade)) replays one trade alone"
            )


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def new_episode(cls: type[RefEpisode], market: RefMarket, cfg: RefConfig, rows: list, trade: int) -> RefEpisode:
    """The reference episode of trade row ``trade`` (remembering which row it is)."""
    ep = cls(market, cfg, *rows[trade])
    ep.trade_id = trade
    return ep


def compare_decision(chk: _Checker, step: int, idx: np.ndarray, eps: list[RefEpisode], obs, mask, state) -> None:
    """At a decision: the mask, the observation and the state the components see."""
    chk.equal("mask", step, idx, _np(mask)[idx], np.array([e.mask() for e in eps]).reshape(len(eps), -1))
    ref_obs = np.array([e.observation() for e in eps], dtype=np.float64).astype(np.float32).reshape(len(eps), -1)
    chk.close("observation", step, idx, _np(obs)[idx], ref_obs, rtol=OBS_RTOL, atol=OBS_ATOL)
    chk.equal("trade", step, idx, _np(state.trade)[idx], [e.trade_id for e in eps])
    chk.equal("k", step, idx, _np(state.k)[idx], [e.k for e in eps])
    chk.close("upnl", step, idx, _np(state.upnl)[idx], [e.upnl for e in eps])
    chk.close("stop before", step, idx, _np(state.stop)[idx], [e.stop for e in eps])
    chk.equal("done before", step, idx, _np(state.done)[idx], np.zeros(len(eps), dtype=bool))
    chk.raise_if_any()


def compare_step(chk: _Checker, step: int, idx: np.ndarray, recs: list, before, after, reward, done, reward_fns) -> None:
    """After a step: everything it did, for the envs ``idx`` (one reference record each)."""

    def col(name):
        return np.array([getattr(r, name) for r in recs])

    chk.equal("executed action", step, idx, _np(after.action)[idx], col("action"))
    chk.equal("blocked", step, idx, _np(after.blocked)[idx], col("blocked"))
    chk.equal("done", step, idx, _np(done)[idx], col("done"))
    chk.equal("exit_reason", step, idx, _np(after.exit_reason)[idx], col("exit_reason"))
    chk.close("stop", step, idx, _np(after.stop)[idx], col("stop"))
    chk.equal("bars_held", step, idx, _np(after.bars_held)[idx], col("bars_held"))
    for name in ("realized", "realized_gross", "costs_paid", "step_gross", "step_cost", "step_mtm"):
        chk.close(name, step, idx, _np(getattr(after, name))[idx], col(name))
    chk.equal("partial_taken", step, idx, _np(after.partial_taken)[idx], col("partial_taken"))
    chk.equal("at_breakeven", step, idx, _np(after.at_breakeven)[idx], col("at_breakeven"))
    for name in ("n_stop_moves", "n_partials", "n_blocked"):
        chk.equal(name, step, idx, _np(getattr(after, name))[idx], col(name))
    # rewards: each term in float64 (the components' own functions on the env's states) ...
    for term in reward_fns:
        got = _np(term.fn(before, after.action, after))[idx] * term.weight
        chk.close(f"reward term {term.name}", step, idx, got, [term.weight * r.reward_terms[term.name] for r in recs])
    # ... and the float32 reward the step returned
    chk.close("reward", step, idx, _np(reward)[idx], col("reward"), rtol=1e-6, atol=1e-7)
    ended = np.flatnonzero(col("done"))
    if ended.size:
        chk.equal("exit_bar", step, idx[ended], _np(after.exit_bar)[idx[ended]], col("exit_bar")[ended])
        chk.close("exit_level", step, idx[ended], _np(after.exit_level)[idx[ended]], col("exit_level")[ended])
        chk.equal("ambiguous", step, idx[ended], _np(after.ambiguous)[idx[ended]], col("ambiguous")[ended])
    still = np.flatnonzero(~col("done"))
    if still.size:
        chk.close("size", step, idx[still], _np(after.size)[idx[still]], col("size")[still])
    chk.raise_if_any()


def run_differential(
    sc: Scenario, episode_cls: type[RefEpisode] = RefEpisode, market_cls: type[RefMarket] = RefMarket, compile: bool = False
) -> dict[str, int]:
    """Play ``sc`` in both implementations; raise :class:`Disagreement` on any difference.

    Returns counts of what was exercised (trades, steps, exits by reason, ...), so tests can
    check that a scenario covers what it is meant to.
    """
    cfg = sc.cfg
    market = ref_market(sc.bars, sc.atr_period, sc.max_gap_bars, cls=market_cls)
    rows = trade_rows(sc.trades)
    refs = [new_episode(episode_cls, market, cfg, rows, t) for t in range(len(rows))]
    n_trades = len(refs)
    # --- fills: validity, levels, last bar, the entry-bar outcome --------------------------
    ref_valid = np.array([r.valid for r in refs])
    built = build(sc.bars, sc.trades, cfg, sc.atr_period, sc.max_gap_bars)
    t = built.table
    all_idx = np.arange(n_trades)
    chk = _Checker(sc, lambda i: f"trade {i}")
    chk.equal("valid", -1, all_idx, _np(t.valid), ref_valid)
    chk.equal("invalid_reason", -1, all_idx, np.array(t.invalid_reason), np.array([r.invalid_reason for r in refs]))
    chk.raise_if_any()
    pool = np.flatnonzero(ref_valid)
    if pool.size == 0:
        return {"trades": n_trades, "valid": 0, "steps": 0}
    env = env_from(built, pool=torch.as_tensor(pool), compile=compile)
    vr = [refs[i] for i in pool]
    chk = _Checker(sc, lambda i: f"trade {int(pool[i])}")
    envs = np.arange(pool.size)
    chk.close("entry_price", -1, envs, _np(t.entry_price)[pool], [r.entry for r in vr])
    chk.close("stop0", -1, envs, _np(t.stop0)[pool], [r.stop0 for r in vr])
    chk.close("target0", -1, envs, _np(t.target0)[pool], [r.target0 for r in vr])
    chk.equal("last_bar", -1, envs, _np(t.last_bar)[pool], [r.last_bar for r in vr])
    chk.equal("last_reason", -1, envs, _np(t.last_reason)[pool], [r.last_reason for r in vr])
    chk.equal("entry_reason", -1, envs, _np(t.entry_reason)[pool], [r.exit_reason for r in vr])
    chk.equal("entry_ambiguous", -1, envs, _np(t.entry_ambiguous)[pool], [r.ambiguous for r in vr])

    # --- the initial state (entry-bar exits start finished in sweep mode) ----------------------
    obs, mask = env.reset()
    st0 = env.state
    chk.equal("done at reset", -1, envs, _np(st0.done), [r.done for r in vr])
    chk.equal("exit_reason at reset", -1, envs, _np(st0.exit_reason), [r.exit_reason for r in vr])
    chk.equal("bars_held at reset", -1, envs, _np(st0.bars_held), [r.bars_held for r in vr])
    chk.close("realized at reset", -1, envs, _np(st0.realized), [r.realized for r in vr])
    chk.close("realized_gross at reset", -1, envs, _np(st0.realized_gross), [r.realized_gross for r in vr])
    chk.close("costs_paid at reset", -1, envs, _np(st0.costs_paid), [r.costs_paid for r in vr])
    ended0 = np.array([r.done for r in vr])
    if ended0.any():
        e0 = np.flatnonzero(ended0)
        chk.close("exit_level at reset", -1, e0, _np(st0.exit_level)[e0], [vr[i].exit_level for i in e0])
    chk.raise_if_any()

    counts = {"trades": n_trades, "valid": int(pool.size), "entry_bar_exits": int(ended0.sum()), "steps": 0,
              "ambiguous": 0, "blocked": 0, "gap_fills": 0, "partials": 0, "stop_moves": 0, "at_breakeven": 0,
              # holes (data_holes = "hold"): fills after one, trades open across one, and gap
              # fills on the first bar after one (a weekend gap through the stop or target)
              "filled_after_hole": sum(market.segment_end[r.signal_bar] < r.e for r in vr),
              "held_across_hole": 0, "hole_gap_fills": 0}  # fmt: skip
    counts.update({name: 0 for name in EXIT_REASON_NAMES[1:]})
    ep_return = np.zeros(pool.size)
    sampled_count = np.zeros(N_ACTIONS)
    blocked_count = np.zeros(N_ACTIONS)
    guard_count = np.zeros(len(cfg.guards))
    reward_fns = env.components.rewards

    for step in range(cfg.max_bars + 1):
        live = np.flatnonzero([not r.done for r in vr])
        if live.size == 0:
            break
        assert step < cfg.max_bars, "an episode outlived max_bars decisions in the reference"
        # --- the decision: observation, mask, state the components see
        before = env.state
        compare_decision(chk, step, live, [vr[i] for i in live], obs, mask, before)

        # --- the action: the agent's sample, HOLD where masked if the policy respects masks
        action = sc.actions[step, pool].copy()
        if sc.respect_mask:
            allowed = _np(mask)[np.arange(pool.size), action]
            action[~allowed] = HOLD
        obs, mask, reward, done = env.step(torch.as_tensor(action, dtype=torch.int64))
        after = env.after
        recs = [vr[i].step(int(action[i])) for i in live]

        # --- the step
        compare_step(chk, step, live, recs, before, after, reward, done, reward_fns)
        ref_reward = np.array([r.reward for r in recs])
        frozen = np.setdiff1d(envs, live)
        chk.equal("reward of a finished env", step, frozen, _np(reward)[frozen], np.zeros(frozen.size, dtype=np.float32))
        chk.equal("done of a finished env", step, frozen, _np(done)[frozen], np.zeros(frozen.size, dtype=bool))
        chk.raise_if_any()

        # --- bookkeeping for the statistics and the coverage counts
        ep_return[live] += ref_reward
        for r in recs:
            sampled_count[r.sampled] += 1
            blocked_count[r.sampled] += r.blocked
            if r.sampled != HOLD:
                guard_count += np.array(r.guard_blocks, dtype=float)
            if r.done:
                counts[EXIT_REASON_NAMES[r.exit_reason]] += 1
                counts["ambiguous"] += r.ambiguous
                counts["gap_fills"] += r.gap_fill
                after_hole = r.exit_bar > 0 and market.segment_end[r.exit_bar - 1] == r.exit_bar - 1
                counts["hole_gap_fills"] += r.gap_fill and after_hole
        counts["steps"] += live.size
        counts["blocked"] += sum(r.blocked for r in recs)
        counts["partials"] += sum(r.action == PARTIAL_EXIT for r in recs)
        counts["stop_moves"] += sum(r.stop != r.stop_before for r in recs)
        counts["at_breakeven"] += sum(r.at_breakeven for r in recs)

    counts["held_across_hole"] = sum(r.exit_bar > market.segment_end[r.e] for r in vr)
    # every trade must have ended within max_bars decisions
    chk.equal("done at the end", cfg.max_bars, envs, _np(env.state.done), np.ones(pool.size, dtype=bool))

    # --- the device-side statistics against the reference's counts ------------------------
    stats = env.episode_stats()
    stepped = ~ended0
    n_eps = int(stepped.sum())
    chk.equal("stats episodes", -1, np.zeros(1, int), [stats["episodes"]], [n_eps])
    chk.equal("stats decisions", -1, np.zeros(1, int), [stats["decisions"]], [counts["steps"]])
    if n_eps:
        chk.close("stats ep_return_mean", -1, np.zeros(1, int), [stats["ep_return_mean"]], [ep_return[stepped].mean()])
        lengths = [vr[i].bars_held for i in np.flatnonzero(stepped)]
        chk.close("stats ep_length_mean", -1, np.zeros(1, int), [stats["ep_length_mean"]], [np.mean(lengths)])
        for reason in range(1, len(ExitReason)):
            n = sum(vr[i].exit_reason == reason for i in np.flatnonzero(stepped))
            chk.close(f"stats exit_reasons[{EXIT_REASON_NAMES[reason]}]", -1, np.zeros(1, int),
                      [stats["exit_reasons"][EXIT_REASON_NAMES[reason]]], [n / n_eps])  # fmt: skip
        amb = sum(vr[i].ambiguous for i in np.flatnonzero(stepped))
        chk.equal("stats ambiguous_exits", -1, np.zeros(1, int), [stats["ambiguous_exits"]], [amb])
    for a, name in enumerate(ACTION_NAMES):
        if a != HOLD:
            want = blocked_count[a] / sampled_count[a] if sampled_count[a] else math.nan  # none tried
            chk.close(f"stats blocked_rate[{name}]", -1, np.zeros(1, int), [stats["blocked_rate"][name]], [want])
    for g, spec in enumerate(cfg.guards):
        chk.equal(f"stats guard_blocks[{spec.name}]", -1, np.zeros(1, int), [stats["guard_blocks"][spec.name]], [int(guard_count[g])])
    chk.raise_if_any()
    return counts


def run_differential_training(sc: Scenario, n_envs: int, n_steps: int, seed: int, compile: bool = False) -> dict[str, int]:
    """Training mode: ``n_envs`` envs sampling decidable trades, auto-reset on the same step.

    The reference follows the env's own draws (``state.trade`` after every reset) and is
    compared at every step for every env: a value leaking from a finished episode into the
    next one, or a reset one step late, shows up here. Raises :class:`Disagreement`.
    """
    cfg = sc.cfg
    built = build(sc.bars, sc.trades, cfg, sc.atr_period, sc.max_gap_bars)
    if not bool(built.table.decidable.any()):
        return {"episodes": 0, "steps": 0}
    env = env_from(built, n_envs=n_envs, auto_reset=True, seed=seed, compile=compile)
    market, rows = ref_market(sc.bars, sc.atr_period, sc.max_gap_bars), trade_rows(sc.trades)
    obs, mask = env.reset(seed=seed)
    eps = [new_episode(RefEpisode, market, cfg, rows, int(t)) for t in _np(env.state.trade)]
    chk = _Checker(sc, lambda i: f"env {i} (trade {eps[i].trade_id})")
    idx = np.arange(n_envs)
    rng = np.random.default_rng(seed)
    returns = np.zeros(n_envs)
    ended_returns, ended_lengths, ended_reasons, ended_ambiguous = [], [], [], []
    sampled_count, blocked_count, executed_count = np.zeros(N_ACTIONS, int), np.zeros(N_ACTIONS, int), np.zeros(N_ACTIONS, int)
    guard_count = np.zeros(len(cfg.guards), int)
    for step in range(n_steps):
        assert all(e.decidable for e in eps), "training mode handed out a trade the agent cannot act on"
        before = env.state
        compare_decision(chk, step, idx, eps, obs, mask, before)
        action = rng.integers(0, N_ACTIONS, n_envs)
        if sc.respect_mask:
            action[~_np(mask)[idx, action]] = HOLD
        obs, mask, reward, done = env.step(torch.as_tensor(action))
        recs = [e.step(int(a)) for e, a in zip(eps, action)]
        compare_step(chk, step, idx, recs, before, env.after, reward, done, env.components.rewards)
        returns += [r.reward for r in recs]
        for r in recs:
            sampled_count[r.sampled] += 1
            executed_count[r.action] += 1
            blocked_count[r.sampled] += r.blocked
            guard_count += np.asarray(r.guard_blocks, dtype=int) * (r.sampled != HOLD)
        for i in np.flatnonzero(_np(done)):
            ended_returns.append(returns[i])
            ended_lengths.append(recs[i].bars_held)
            ended_reasons.append(recs[i].exit_reason)
            ended_ambiguous.append(eps[i].ambiguous)
            returns[i] = 0.0
            eps[i] = new_episode(RefEpisode, market, cfg, rows, int(env.state.trade[i]))
    stats = env.episode_stats()
    one = np.zeros(1, dtype=int)
    chk.equal("stats episodes", -1, one, [stats["episodes"]], [len(ended_returns)])
    chk.equal("stats decisions", -1, one, [stats["decisions"]], [n_envs * n_steps])
    if ended_returns:
        chk.close("stats ep_return_mean", -1, one, [stats["ep_return_mean"]], [np.mean(ended_returns)])
        chk.close("stats ep_length_mean", -1, one, [stats["ep_length_mean"]], [np.mean(ended_lengths)])
        for reason in range(1, len(ExitReason)):
            name = EXIT_REASON_NAMES[reason]
            chk.close(f"stats exit_reasons[{name}]", -1, one, [stats["exit_reasons"][name]], [np.mean(np.array(ended_reasons) == reason)])
    chk.equal("stats ambiguous_exits", -1, one, [stats["ambiguous_exits"]], [sum(ended_ambiguous)])
    for a, name in enumerate(ACTION_NAMES):
        chk.close(f"stats action_frac[{name}]", -1, one, [stats["action_frac"][name]], [executed_count[a] / (n_envs * n_steps)])
        if a != HOLD:
            want = blocked_count[a] / sampled_count[a] if sampled_count[a] else math.nan  # none tried
            chk.close(f"stats blocked_rate[{name}]", -1, one, [stats["blocked_rate"][name]], [want])
    for g, spec in enumerate(cfg.guards):
        chk.equal(f"stats guard_blocks[{spec.name}]", -1, one, [stats["guard_blocks"][spec.name]], [int(guard_count[g])])
    chk.raise_if_any()
    return {"episodes": len(ended_returns), "steps": n_envs * n_steps}


# --------------------------------------------------------------------------------- the tests

_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)


@settings(max_examples=40, **_SETTINGS)
@given(scenarios())
def test_batched_env_agrees_with_reference(sc: Scenario) -> None:
    """Thousands of trades in total (40 worlds x up to 300 trades): every step agrees."""
    run_differential(sc)


@settings(max_examples=15, **_SETTINGS)
@given(scenarios(max_trades=100), st.integers(1, 64), st.integers(1, 60), st.integers(0, 2**31 - 1))
def test_training_mode_agrees_with_reference(sc: Scenario, n_envs: int, n_steps: int, seed: int) -> None:
    """Auto-reset: every env, every step, across episode boundaries, against the reference."""
    run_differential_training(sc, n_envs, n_steps, seed)


@pytest.mark.slow
def test_batched_env_agrees_with_reference_at_scale(full_scale: bool) -> None:
    """More and longer worlds (``--full``: 500 worlds with episodes up to 96 bars)."""

    @settings(max_examples=500 if full_scale else 10, **_SETTINGS)
    @given(scenarios(max_trades=400, max_bars_hi=96 if full_scale else 40))
    def check(sc: Scenario) -> None:
        run_differential(sc)

    @settings(max_examples=100 if full_scale else 3, **_SETTINGS)
    @given(scenarios(max_trades=200), st.integers(1, 256), st.integers(1, 200), st.integers(0, 2**31 - 1))
    def check_training(sc: Scenario, n_envs: int, n_steps: int, seed: int) -> None:
        run_differential_training(sc, n_envs, n_steps, seed)

    check()
    check_training()


def fixed_scenario(seed: int = 7, n_bars: int = 400, n_trades: int = 400, respect_mask: bool = False, **cfg_overrides) -> Scenario:
    """A deterministic world rich in the cases the rules distinguish.

    JPY-like prices on a 0.1-pip grid with large bars against the stop distances (ambiguous
    bars, exact touches), gaps at the open, holes that split stretches and holes that do not,
    commission and slippage, every shipped component with the unrealized PnL term, and an
    agent that tries every action often.
    """
    rng = np.random.default_rng(seed)
    pip = 0.01
    bars = random_bars(rng, n_bars, pip, vol_pips=8.0, tick=pip / 10, p_flat=0.05, p_gap=0.3, p_hole=0.05, max_gap_bars=2)
    trades = random_trades(rng, n_bars, n_trades, vol=20.0 * pip, tick=pip / 10)
    base = dict(
        max_bars=16, tighten_factor=0.5, partial_fraction=0.5, reward_scale=100.0,
        spread_pips=1.0, commission_pips=0.3, slippage_pips=0.5,
        rewards=(Spec("pnl", {"unrealized": True}), Spec("cost"), Spec("time_penalty", {"time_coef": 0.002}),
                 Spec("regret", {"regret_coef": 0.8})),
        guards=(Spec("min_profit_for_exit", {"min_profit": 0.0001}), Spec("min_bars_for_exit", {"min_bars": 2}),
                Spec("min_profit_for_partial", {"min_profit": 0.0002})),
        masks=(Spec("min_exit_bar", {"n": 1}),),
        features=(Spec("position"), Spec("price_window", {"window": 8}), Spec("time_of_day")),
    )  # fmt: skip
    base.update(cfg_overrides)
    cfg = RefConfig(**base)
    actions = rng.choice(N_ACTIONS, size=(cfg.max_bars, n_trades), p=[0.4, 0.1, 0.15, 0.15, 0.2])
    return Scenario(bars, trades, cfg, max_gap_bars=2, atr_period=14, actions=actions, respect_mask=respect_mask)


def test_fixed_world_covers_every_rule() -> None:
    """The deterministic world agrees, and it exercises every rule the mutants below break
    (holes closing trades: ``data_holes = "close"``)."""
    counts = run_differential(fixed_scenario(data_holes="close"))
    for what in ("entry_bar_exits", "ambiguous", "blocked", "gap_fills", "partials", "stop_moves", "at_breakeven",
                 "agent", "stop", "target", "time", "gap"):  # fmt: skip
        assert counts[what] > 0, f"the fixed world never exercises {what}: {counts}"
    assert counts["valid"] < counts["trades"], "the fixed world has no unfillable trade"
    assert counts["held_across_hole"] == counts["filled_after_hole"] == 0, counts


def test_fixed_world_holds_across_holes() -> None:
    """``data_holes = "hold"`` (the default): both implementations fill after holes, carry trades
    across them and settle gaps through the stop or target at the open after a hole; no trade
    ends with GAP."""
    counts = run_differential(fixed_scenario())
    for what in ("filled_after_hole", "held_across_hole", "hole_gap_fills", "stop", "target", "time"):
        assert counts[what] > 0, f"the fixed world never exercises {what}: {counts}"
    assert counts["gap"] == 0, counts


def test_v4_plugin_set_agrees_with_reference() -> None:
    """The exact v4 plugin set (design.md section 6) with default env and costs, masks respected."""
    sc = fixed_scenario(seed=11, respect_mask=True, max_bars=96, spread_pips=1.0, commission_pips=0.0, slippage_pips=0.0,
                        rewards=V4_REWARDS, guards=V4_GUARDS, masks=V4_MASKS, features=V4_FEATURES)  # fmt: skip
    counts = run_differential(sc)
    assert counts["steps"] > 1000


def test_compiled_env_agrees_with_reference() -> None:
    """``compile=True`` (the fused inductor kernel runs from the second step on) in both modes."""
    sc = fixed_scenario(seed=3, n_trades=150)
    run_differential(sc, compile=True)
    run_differential_training(sc, n_envs=64, n_steps=40, seed=1, compile=True)


# --- the comparison can fail: one perturbed rule at a time must be detected -------------------


class TargetFirstOnAmbiguousBars(RefEpisode):
    """Wrong: a bar touching both stop and target closes at the target."""

    def _bar_outcome(self, b, stop, target, check_gap):
        hit = super()._bar_outcome(b, stop, target, check_gap)
        if hit is not None and hit[2]:
            return TARGET, target, False
        return hit


class NoGapFills(RefEpisode):
    """Wrong: a bar opening through the stop fills at the stop level, not at the open."""

    def _bar_outcome(self, b, stop, target, check_gap):
        return super()._bar_outcome(b, stop, target, check_gap=False)


class NoEntryBarCheck(RefEpisode):
    """Wrong: the entry bar is not checked (the first check is after decision 0)."""

    def _bar_outcome(self, b, stop, target, check_gap):
        return None if b == self.e else super()._bar_outcome(b, stop, target, check_gap)


class TimeStopOneBarEarly(RefEpisode):
    """Wrong: the time stop closes at ``e + M - 2``."""

    def __init__(self, *args):
        super().__init__(*args)
        if self.valid and self.last_reason == TIME and self.last_bar > self.e:
            self.last_bar -= 1


class BreakevenWithoutCosts(RefEpisode):
    """Wrong: breakeven is the entry fill, ignoring the exit's costs."""

    @property
    def breakeven(self) -> float:
        return self.entry


class PartialOfInitialSize(RefEpisode):
    """Wrong: every partial closes ``p`` of the *initial* size."""

    def step(self, sampled):
        if sampled == PARTIAL_EXIT and self.partial_taken and not any(self.guard_blocks(sampled)):
            saved, self.cfg = self.cfg, replace(self.cfg, partial_fraction=min(0.99, self.cfg.partial_fraction / self.size))
            try:
                return super().step(sampled)
            finally:
                self.cfg = saved
        return super().step(sampled)


class MinBarsOffByOne(RefEpisode):
    """Wrong: EXIT is blocked through decision ``min_bars`` (``k <= min_bars``)."""

    def guard_blocks(self, action):
        out = list(super().guard_blocks(action))
        for i, g in enumerate(self.cfg.guards):
            if g.name == "min_bars_for_exit" and action == EXIT and self.k == g.get("min_bars", 2):
                out[i] = True
        return tuple(out)


class RegretWindowIgnoresInitialLevels(RefEpisode):
    """Wrong: the best exit is searched over every decision close up to ``last_bar``, even
    after the initial stop or target would have closed the position."""

    def best_exit(self):
        if self.entry_outcome is not None:
            return super().best_exit()
        return max(self.net_per_unit(self.market.close[b]) for b in range(self.e, self.last_bar + 1))


class ClosesAtHolesWhenHolding(RefEpisode):
    """Wrong: ``data_holes = "hold"`` still closes trades before a hole and refuses fills across
    one (the engine's behaviour before the option existed)."""

    def __init__(self, market, cfg, *trade):
        super().__init__(market, replace(cfg, data_holes="close"), *trade)
        self.cfg = cfg


class HoldsWhenClosing(RefEpisode):
    """Wrong: ``data_holes = "close"`` carries trades across holes."""

    def __init__(self, market, cfg, *trade):
        super().__init__(market, replace(cfg, data_holes="hold"), *trade)
        self.cfg = cfg


class HolesOneBarLonger(RefMarket):
    """Wrong: a hole of exactly ``max_gap_bars + 1`` missing bars does not split the data."""

    def _segment_ends(self, max_gap_bars):
        return super()._segment_ends(max_gap_bars + 1)


MUTANTS = [TargetFirstOnAmbiguousBars, NoGapFills, NoEntryBarCheck, TimeStopOneBarEarly, BreakevenWithoutCosts,
           PartialOfInitialSize, MinBarsOffByOne, RegretWindowIgnoresInitialLevels, ClosesAtHolesWhenHolding]  # fmt: skip


@pytest.fixture(scope="module")
def world() -> Scenario:
    return fixed_scenario()


@pytest.fixture(scope="module")
def closing_world() -> Scenario:
    return fixed_scenario(data_holes="close")


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.__name__)
def test_differential_detects_a_perturbed_rule(world: Scenario, mutant: type[RefEpisode]) -> None:
    with pytest.raises(Disagreement):
        run_differential(world, episode_cls=mutant)


@pytest.mark.parametrize("mutant", [HoldsWhenClosing, TimeStopOneBarEarly], ids=lambda m: m.__name__)
def test_differential_detects_a_perturbed_rule_when_closing(closing_world: Scenario, mutant: type[RefEpisode]) -> None:
    with pytest.raises(Disagreement):
        run_differential(closing_world, episode_cls=mutant)


def test_differential_detects_a_perturbed_market(closing_world: Scenario) -> None:
    """Stretch ends matter only where holes close trades."""
    with pytest.raises(Disagreement):
        run_differential(closing_world, market_cls=HolesOneBarLonger)


def test_differential_detects_a_perturbed_batched_env(world: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same perturbation on the engine's side: its bar rule takes the target on ambiguous bars."""
    import exitcore.env.vec_env as vec_env_module

    original = vec_env_module.bar_outcome

    def target_first(open_, high, low, stop, target, direction):
        reason, level, ambiguous = original(open_, high, low, stop, target, direction)
        reason = torch.where(ambiguous, torch.full_like(reason, TARGET), reason)
        level = torch.where(ambiguous, torch.as_tensor(target, dtype=level.dtype).expand_as(level), level)
        return reason, level, torch.zeros_like(ambiguous)

    monkeypatch.setattr(vec_env_module, "bar_outcome", target_first)
    with pytest.raises(Disagreement, match="exit_reason|exit_level|realized"):
        run_differential(world)


# --- exact ties: the inclusive/strict choices of the spec, on exactly representable prices -----


def hand_world(rows: list[tuple[float, float, float, float]], trade: tuple[int, int, float, float], actions: list[int],
               **cfg_overrides) -> Scenario:  # fmt: skip
    """One trade on hand-written bars (dyadic prices and zero costs, so levels are exact)."""
    o, h, l, c = (np.array(x, dtype=np.float64) for x in zip(*rows))
    bars = make_bars(o, h, l, c, pip_size=0.0001)
    base = dict(max_bars=10, spread_pips=0.0, rewards=V4_REWARDS, guards=(), masks=(), features=V4_FEATURES)
    base.update(cfg_overrides)
    cfg = RefConfig(**base)
    return Scenario(bars, make_trades(*([v] for v in trade)), cfg, max_gap_bars=4, atr_period=14,
                    actions=np.array(actions, dtype=np.int64)[:, None], respect_mask=False)  # fmt: skip


FLAT = (1.0, 1.0625, 0.9375, 1.0)  # a bar that touches nothing below (0.75, 1.5)
TIES = {
    # name: (bars after the two warm-up bars, direction, actions, expected (reason, level, ambiguous, bars_held), cfg)
    "low exactly at the stop on the entry bar": ([(1.0, 1.0625, 0.75, 1.0)], 1, [HOLD], (STOP, 0.75, False, 1), {}),
    "high exactly at the target on the entry bar": ([(1.0, 1.5, 0.9375, 1.0)], 1, [HOLD], (TARGET, 1.5, False, 1), {}),
    "short: high exactly at the stop": ([(1.0, 1.25, 0.9375, 1.0)], -1, [HOLD], (STOP, 1.25, False, 1), {}),
    "both touched exactly on the entry bar": ([(1.0, 1.5, 0.75, 1.0)], 1, [HOLD], (STOP, 0.75, True, 1), {}),
    "open exactly at the stop, high through the target": ([FLAT, (0.75, 1.625, 0.625, 1.0)], 1, [HOLD], (STOP, 0.75, False, 2), {}),
    "open exactly at the target": ([FLAT, (1.5, 1.5625, 1.4375, 1.5)], 1, [HOLD], (TARGET, 1.5, False, 2), {}),
    "tightened stop touched exactly": ([(1.0, 1.3125, 0.9375, 1.25), (1.25, 1.3125, 1.0, 1.0625)], 1, [TIGHTEN_SL, HOLD],
                                       (STOP, 1.0, False, 2), {}),  # stop 0.75 -> 1.25 - 0.5 * 0.5 = 1.0
    "exit exactly at the profit threshold": ([(1.0, 1.3125, 0.9375, 1.25), FLAT], 1, [EXIT, HOLD], (AGENT, 1.25, False, 1),
                                             {"guards": (Spec("min_profit_for_exit", {"min_profit": 0.25}),)}),
    "trail to breakeven at zero profit is a no-op": ([FLAT, (1.0, 1.0625, 0.9375, 1.0), FLAT], 1, [TRAIL_BE, HOLD, HOLD],
                                                     (TIME, 1.0, False, 3), {"max_bars": 3}),
}


@pytest.mark.parametrize("case", TIES, ids=list(TIES))
def test_exact_ties(case: str) -> None:
    """Touches are inclusive, a gap exactly at a level fills there without ambiguity, a guard
    threshold is met at equality, zero profit is not profit - and both implementations agree."""
    after, direction, actions, expected, cfg = TIES[case]
    rows = [FLAT, FLAT, *after]  # signal bar 1, entry bar 2
    sc = hand_world(rows, (1, direction, 0.25, 0.5), actions, **cfg)  # long: stop 0.75, target 1.5; short: 1.25, 0.5
    run_differential(sc)
    ep = RefEpisode(ref_market(sc.bars), sc.cfg, *trade_rows(sc.trades)[0])
    for a in actions:
        if ep.done:
            break
        ep.step(a)
    assert (ep.exit_reason, ep.exit_level, ep.ambiguous, ep.bars_held) == expected
