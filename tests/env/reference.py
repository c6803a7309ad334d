"""A scalar reference implementation of one trade episode, for tests and benchmarks only.

Written from ``docs/environment.md`` and ``design.md`` §2-§4 alone, in plain Python floats, one
trade at a time, *without* looking at the batched transition in :mod:`exitcore.env.vec_env` or
at the tensor rule in :mod:`exitcore.timeline`: the differential test
(``tests/env/test_differential.py``) compares the two, and that comparison only means something
if they were written independently. The only things shared with the engine are the action and
exit-reason ids (:mod:`exitcore.actions`, :class:`exitcore.timeline.ExitReason`).

What is here:

* :class:`RefMarket` - the bar series with the causal Wilder ATR and the stretch ends (holes of
  more than ``max_gap_bars`` missing bars), both computed by scalar walks;
* :class:`RefEpisode` - one trade: entry fill, the entry-bar check, decisions with guards and
  the five actions, the forced close at ``last_bar``, the evolution through the next bar (gap
  fills, stop first on ambiguous bars), PnL (net, gross, cost), the shipped reward terms
  (``pnl`` with and without the unrealized part, ``cost``, ``time_penalty``, ``regret`` with its
  best exit found by a scalar walk), the shipped masks and guards, and the shipped features
  (``position``, ``price_window``, ``time_of_day``);
* :class:`ReferenceExitEnv` - a ``gymnasium.Env`` playing trades one after another, written
  the way such an environment usually is; the benchmark wraps it in
  ``gymnasium.vector.SyncVectorEnv`` as the per-env baseline.

Components are described by :class:`Spec` (name, params, weight), the same description the
test helpers turn into plugin components for ``VecExitEnv``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from exitcore.actions import N_ACTIONS, Action
from exitcore.timeline import ExitReason

HOLD, EXIT, TIGHTEN_SL, TRAIL_BE, PARTIAL_EXIT = (int(a) for a in Action)
OPEN, AGENT, STOP, TARGET, TIME, END_OF_DATA, GAP = (int(r) for r in ExitReason)

DAY_NS = 86_400 * 1_000_000_000
#: the shipped features divide by max(ATR, this) so that flat data cannot divide by zero
ATR_FLOOR = 1e-12


@dataclass(frozen=True)
class Spec:
    """One environment component as an experiment lists it: ``name``, ``params``, ``weight``."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0  # reward terms only

    def get(self, key: str, default: Any) -> Any:
        """A parameter, or the plugin's documented default."""
        return self.params.get(key, default)


@dataclass(frozen=True)
class RefConfig:
    """Everything one episode depends on (env, costs, data and the experiment's components).

    Defaults are design.md's: ``max_bars`` 96, ``tighten_factor`` 0.5, ``partial_fraction``
    0.5, ``reward_scale`` 100, spread 1 pip. The component tuples keep the experiment's order
    (the reward is summed in that order, the observation concatenated in that order).
    """

    max_bars: int = 96
    tighten_factor: float = 0.5
    partial_fraction: float = 0.5
    reward_scale: float = 100.0
    spread_pips: float = 1.0
    commission_pips: float = 0.0
    slippage_pips: float = 0.0
    #: ``env.data_holes``: "hold" keeps a trade open across a hole in the data, "close" ends it
    #: before the hole (``GAP``) and refuses a fill across one
    data_holes: str = "hold"
    rewards: tuple[Spec, ...] = ()
    guards: tuple[Spec, ...] = ()
    masks: tuple[Spec, ...] = ()
    features: tuple[Spec, ...] = ()

    def obs_dim(self) -> int:
        """Width of the observation the features produce."""
        return sum(feature_width(f) for f in self.features)


def feature_width(spec: Spec) -> int:
    """Columns of one shipped feature."""
    if spec.name == "position":
        return 8
    if spec.name == "price_window":
        return int(spec.get("window", 16)) + 1
    if spec.name == "time_of_day":
        return 2
    raise ValueError(f"the reference knows no feature {spec.name!r}")


# The v4_no_lookahead plugin set (experiments.toml, design.md §6).
V4_FEATURES = (Spec("position"), Spec("price_window", {"window": 16}), Spec("time_of_day"))
V4_REWARDS = (Spec("pnl"), Spec("cost"), Spec("time_penalty", {"time_coef": 0.002}), Spec("regret", {"regret_coef": 0.8}))
V4_GUARDS = (
    Spec("min_profit_for_exit", {"min_profit": 0.001}),
    Spec("min_bars_for_exit", {"min_bars": 2}),
    Spec("min_profit_for_partial", {"min_profit": 0.002}),
)
V4_MASKS = (Spec("min_exit_bar", {"n": 3}),)


def v4_config(**overrides: Any) -> RefConfig:
    """The v4 plugin set with design.md's default env and costs (``overrides`` replace fields)."""
    base = dict(rewards=V4_REWARDS, guards=V4_GUARDS, masks=V4_MASKS, features=V4_FEATURES)
    base.update(overrides)
    return RefConfig(**base)


# --------------------------------------------------------------------------------- the market


class RefMarket:
    """A bar series as Python lists, with the causal ATR and the stretch ends.

    ``ts`` are bar *opens* in integer nanoseconds; ``timeframe_ns`` the bar length. A hole of
    more than ``max_gap_bars`` missing bars (consecutive opens more than
    ``(max_gap_bars + 1)`` bars apart) ends a stretch. Only ``data_holes = "close"`` cares: a
    trade may then not be filled across it and is force-closed before it.
    """

    def __init__(
        self,
        open_: Sequence[float],
        high: Sequence[float],
        low: Sequence[float],
        close: Sequence[float],
        ts: Sequence[int],
        timeframe_ns: int,
        pip_size: float,
        atr_period: int = 14,
        max_gap_bars: int = 4,
    ):
        self.open = [float(x) for x in open_]
        self.high = [float(x) for x in high]
        self.low = [float(x) for x in low]
        self.close = [float(x) for x in close]
        self.ts = [int(x) for x in ts]
        self.n = len(self.close)
        self.timeframe_ns = int(timeframe_ns)
        self.pip_size = float(pip_size)
        self.atr = self._wilder_atr(atr_period)
        self.segment_end = self._segment_ends(max_gap_bars)

    def _wilder_atr(self, period: int) -> list[float]:
        # Wilder: ATR_0 = TR_0 = H_0 - L_0, then ATR_t = ATR_{t-1} + (TR_t - ATR_{t-1}) / period,
        # using bars <= t only.
        out: list[float] = []
        for t in range(self.n):
            if t == 0:
                tr = self.high[0] - self.low[0]
                out.append(tr)
                continue
            prev_close = self.close[t - 1]
            tr = max(self.high[t] - self.low[t], abs(self.high[t] - prev_close), abs(self.low[t] - prev_close))
            out.append(out[-1] + (tr - out[-1]) / period)
        return out

    def _segment_ends(self, max_gap_bars: int) -> list[int]:
        # Walk backwards: the stretch end is carried down until a hole separates two bars.
        ends = [0] * self.n
        end = self.n - 1
        for b in range(self.n - 1, -1, -1):
            if b < self.n - 1 and self.ts[b + 1] - self.ts[b] > (max_gap_bars + 1) * self.timeframe_ns:
                end = b
            ends[b] = end
        return ends

    def move(self, b: int) -> float:
        """Close-to-close move of bar ``b`` (0 for the first bar)."""
        return 0.0 if b <= 0 else self.close[b] - self.close[b - 1]


# --------------------------------------------------------------------------------- one step


@dataclass
class StepRecord:
    """What one decision step did (docs/environment.md "One environment step")."""

    k: int  #: the decision index the step was taken at
    bar: int  #: the decision bar
    sampled: int  #: the action the agent chose
    action: int  #: the action executed (HOLD when a guard blocked)
    blocked: bool
    guard_blocks: tuple[bool, ...]  #: per guard, in the experiment's order
    reward: float
    reward_terms: dict[str, float]
    step_gross: float
    step_cost: float
    step_mtm: float
    done: bool
    exit_reason: int
    stop_before: float  #: the stop at the decision
    stop: float  #: the stop after the step's action (the level that was hit, if a stop closed it)
    size: float  #: remaining size after the step (0 once closed)
    realized: float
    realized_gross: float
    costs_paid: float
    bars_held: int
    exit_bar: int  #: meaningful where done
    exit_level: float  #: meaningful where done
    ambiguous: bool
    gap_fill: bool  #: the bar after the decision opened through the stop or target
    partial_taken: bool
    at_breakeven: bool
    n_stop_moves: int  #: times the stop moved so far (ledger bookkeeping)
    n_partials: int
    n_blocked: int


class RefEpisode:
    """One trade, stepped decision by decision (docs/environment.md is the specification).

    Construction fills the trade and runs its entry bar; ``valid`` is false when it cannot be
    filled (no bar after the signal, or, with ``data_holes = "close"``, the fill would cross a
    hole) and ``done`` is true when the entry bar already closed it. Otherwise call :meth:`observation` and :meth:`mask` at the
    current decision and :meth:`step` with the agent's action until ``done``.
    """

    trade_id: int = -1  #: the trade's row in the trade table, where the creator records it

    def __init__(self, market: RefMarket, cfg: RefConfig, signal_bar: int, direction: int, stop_dist: float, target_dist: float):
        self.market, self.cfg = market, cfg
        self.d = float(direction)
        self.signal_bar = s = int(signal_bar)
        self.e = e = s + 1
        self.c = (cfg.spread_pips / 2 + cfg.slippage_pips) * market.pip_size  # per side
        self.m = cfg.commission_pips * market.pip_size  # per unit closed
        # position state
        self.k = 0
        self.size = 1.0
        self.realized = self.realized_gross = self.costs_paid = 0.0
        self.partial_taken = self.at_breakeven = False
        self.n_stop_moves = self.n_partials = self.n_blocked = 0
        self.done = False
        self.exit_reason = OPEN
        self.exit_bar = -1
        self.exit_level = math.nan
        self.ambiguous = False
        self._best: float | None = None

        if s < 0 or e >= market.n:
            self.valid, self.invalid_reason = False, "no bar after the signal"
        elif cfg.data_holes == "close" and market.segment_end[s] < e:
            self.valid, self.invalid_reason = False, "fill would cross a data hole"
        else:
            self.valid, self.invalid_reason = True, ""
        if not self.valid:
            self.done = True
            return

        self.entry_open = market.open[e]
        self.entry = self.entry_open + self.d * self.c  # the fill pays half the spread and slippage
        self.stop = self.stop0 = self.entry - self.d * stop_dist
        self.target = self.target0 = self.entry + self.d * target_dist
        time_bar = e + cfg.max_bars - 1
        # "hold": a hole is just a bar further on (the next open settles any gap through the
        # stop or target), so only the data's end can come before the time stop
        stretch_end = market.segment_end[e] if cfg.data_holes == "close" else market.n - 1
        if time_bar <= stretch_end:
            self.last_bar, self.last_reason = time_bar, TIME
        else:
            self.last_bar = stretch_end
            self.last_reason = END_OF_DATA if stretch_end == market.n - 1 else GAP

        # The entry bar runs before any decision, as any bar: a stop closer than the entry's
        # costs already lies beyond the open and fills there.
        hit = self._bar_outcome(e, self.stop0, self.target0, check_gap=True)
        self.entry_outcome = hit
        if hit is not None:
            reason, level, ambiguous = hit
            self._close(self.size, level)
            self._finish(reason, e, level, ambiguous)

    # ------------------------------------------------------------------ the rules

    def _bar_outcome(self, b: int, stop: float, target: float, check_gap: bool) -> tuple[int, float, bool] | None:
        """How bar ``b`` ends a position with ``stop``/``target``: ``(reason, level, ambiguous)`` or None."""
        mk = self.market
        long = self.d > 0
        o, adverse, favourable = mk.open[b], (mk.low[b] if long else mk.high[b]), (mk.high[b] if long else mk.low[b])

        def through_stop(x: float) -> bool:  # at or on the losing side of the stop
            return x <= stop if long else x >= stop

        def through_target(x: float) -> bool:  # at or on the winning side of the target
            return x >= target if long else x <= target

        if check_gap:
            if through_stop(o):
                return STOP, o, False
            if through_target(o):
                return TARGET, o, False
        stop_hit, target_hit = through_stop(adverse), through_target(favourable)
        if stop_hit:
            return STOP, stop, target_hit  # both touched: the stop is taken first (conservative)
        if target_hit:
            return TARGET, target, False
        return None

    def net_per_unit(self, level: float) -> float:
        """Net PnL fraction per unit closed at ``level``: exit fill minus entry fill, minus commission."""
        return (self.d * (level - self.d * self.c - self.entry) - self.m) / self.entry

    def _close(self, q: float, level: float) -> tuple[float, float]:
        """Close ``q`` units at ``level``; returns the (gross, cost) of the close."""
        net = q * (self.d * (level - self.d * self.c - self.entry) - self.m) / self.entry
        gross = q * self.d * (level - self.entry_open) / self.entry
        cost = q * (2 * self.c + self.m) / self.entry
        self.realized += net
        self.realized_gross += gross
        self.costs_paid += cost
        return gross, cost

    def _finish(self, reason: int, bar: int, level: float, ambiguous: bool = False) -> None:
        self.done = True
        self.exit_reason = reason
        self.exit_bar = bar
        self.exit_level = level
        self.ambiguous = ambiguous
        self.size = 0.0

    # ------------------------------------------------------------------ the decision state

    @property
    def bar(self) -> int:
        """The current decision bar ``e + k``."""
        return self.e + self.k

    @property
    def price(self) -> float:
        """The decision price: the close of the decision bar."""
        return self.market.close[self.bar]

    @property
    def upnl(self) -> float:
        """Net PnL per unit if the position were closed at the decision close."""
        return self.net_per_unit(self.price)

    @property
    def bars_held(self) -> int:
        """Bars the position was exposed to: through the decision bar, or through the exit bar."""
        return (self.exit_bar if self.done else self.bar) - self.e + 1

    @property
    def decidable(self) -> bool:
        """A valid trade still open after its entry bar (the agent gets to act on it)."""
        return self.valid and not self.done

    @property
    def breakeven(self) -> float:
        """The stop level whose net exit is zero."""
        return self.entry + self.d * (self.c + self.m)

    # ------------------------------------------------------------------ components

    def guard_blocks(self, action: int) -> tuple[bool, ...]:
        """Which of the experiment's guards block ``action`` at the current decision."""
        out = []
        for g in self.cfg.guards:
            if g.name == "min_profit_for_exit":
                out.append(action == EXIT and self.upnl < g.get("min_profit", 0.001))
            elif g.name == "min_bars_for_exit":
                out.append(action == EXIT and self.k < g.get("min_bars", 2))
            elif g.name == "min_profit_for_partial":
                out.append(action == PARTIAL_EXIT and self.upnl < g.get("min_profit", 0.001))
            else:
                raise ValueError(f"the reference knows no guard {g.name!r}")
        return tuple(out)

    def mask(self) -> list[bool]:
        """Allowed actions at the current decision (AND of the masks; HOLD always allowed)."""
        allowed = [True] * N_ACTIONS
        for mk in self.cfg.masks:
            if mk.name == "min_exit_bar":
                if self.k < mk.get("n", 3):
                    allowed[EXIT] = allowed[PARTIAL_EXIT] = False
            else:
                raise ValueError(f"the reference knows no mask {mk.name!r}")
        allowed[HOLD] = True
        return allowed

    def observation(self) -> list[float]:
        """The experiment's features at the current decision, concatenated (plain floats)."""
        mk, b, d = self.market, self.bar, self.d
        atr = max(mk.atr[b], ATR_FLOOR)
        out: list[float] = []
        for f in self.cfg.features:
            if f.name == "position":
                out += [
                    100.0 * self.upnl,
                    self.k / self.cfg.max_bars,
                    self.size,
                    float(self.partial_taken),
                    float(self.at_breakeven),
                    d,
                    d * (self.price - self.stop) / atr,
                    d * (self.target - self.price) / atr,
                ]
            elif f.name == "price_window":
                window = int(f.get("window", 16))
                out += [mk.move(max(b - i, 0)) * d / atr for i in range(window)]
                out.append((mk.high[b] - mk.low[b]) / atr)
            elif f.name == "time_of_day":
                close_ns = mk.ts[b] + mk.timeframe_ns
                phase = (close_ns % DAY_NS) * (2 * math.pi / DAY_NS)
                out += [math.sin(phase), math.cos(phase)]
            else:
                raise ValueError(f"the reference knows no feature {f.name!r}")
        return out

    def best_exit(self) -> float:
        """The regret term's best net exit per unit in the episode window (hindsight).

        Walk the decision closes ``C[e + j]`` of the untouched position from ``j = 0``: each is
        a candidate; stop after ``last_bar`` or after the first bar on which the *initial*
        stop or target would have closed the position (a target hit adds its fill as a
        candidate). A trade closed on its entry bar had only that outcome.
        """
        if self._best is not None:
            return self._best
        if self.entry_outcome is not None:
            self._best = self.net_per_unit(self.entry_outcome[1])
            return self._best
        best = -math.inf
        b = self.e
        while True:
            best = max(best, self.net_per_unit(self.market.close[b]))
            if b >= self.last_bar:
                break
            hit = self._bar_outcome(b + 1, self.stop0, self.target0, check_gap=True)
            if hit is not None:
                if hit[0] == TARGET:
                    best = max(best, self.net_per_unit(hit[1]))
                break
            b += 1
        self._best = best
        return best

    # ------------------------------------------------------------------ one step

    def step(self, sampled: int) -> StepRecord:
        """Decision ``k`` with the agent's ``sampled`` action, then the evolution through bar ``b + 1``."""
        if self.done:
            raise RuntimeError("step() on a finished episode")
        cfg, mk, d = self.cfg, self.market, self.d
        k, b, price, upnl = self.k, self.bar, self.price, self.upnl
        size_before, stop_before = self.size, self.stop

        # 1. guards: any guard blocking turns the action into HOLD
        blocks = self.guard_blocks(sampled)
        blocked = any(blocks)
        action = HOLD if blocked else sampled
        self.n_blocked += blocked

        # 2. execute at the decision close
        step_gross = step_cost = 0.0
        if action == EXIT:
            g, c = self._close(self.size, price)
            step_gross, step_cost = step_gross + g, step_cost + c
            self._finish(AGENT, b, price)
        elif action == TIGHTEN_SL:
            dist = d * (price - self.stop)
            if dist > 0:
                candidate = price - d * cfg.tighten_factor * dist
                if d * (candidate - self.stop) > 0:
                    self.stop = candidate
                    self.n_stop_moves += 1
        elif action == TRAIL_BE:
            if upnl > 0:
                be = self.breakeven
                if d * (be - self.stop) > 0:
                    self.stop = be
                    self.n_stop_moves += 1
        elif action == PARTIAL_EXIT:
            q = cfg.partial_fraction * self.size
            g, c = self._close(q, price)
            step_gross, step_cost = step_gross + g, step_cost + c
            self.size -= q
            self.partial_taken = True
            self.n_partials += 1
        stop_after_action = self.stop
        # at_breakeven means "the stop is at or beyond breakeven" (exitcore/env/state.py), whichever
        # action put it there: a TIGHTEN_SL past breakeven sets it too. docs/environment.md states
        # the rule under TRAIL_BE only; the engine (and this reference) apply it after any action.
        if d * (self.stop - self.breakeven) >= 0:
            self.at_breakeven = True

        # 3. forced close at last_bar (TIME, GAP or END_OF_DATA)
        if not self.done and b == self.last_bar:
            g, c = self._close(self.size, price)
            step_gross, step_cost = step_gross + g, step_cost + c
            self._finish(self.last_reason, b, price)

        # 4. evolve bar b + 1 (gap fills, stop first on ambiguous bars)
        gap_fill = False
        if not self.done:
            hit = self._bar_outcome(b + 1, self.stop, self.target, check_gap=True)
            if hit is not None:
                reason, level, ambiguous = hit
                gap_fill = level != (self.stop if reason == STOP else self.target)
                g, c = self._close(self.size, level)
                step_gross, step_cost = step_gross + g, step_cost + c
                self._finish(reason, b + 1, level, ambiguous)

        # 5. the next decision
        if not self.done:
            self.k += 1

        # mark-to-market of the open position, decision close to next decision close
        mtm_before = size_before * d * (price - self.entry_open) / self.entry
        mtm_after = 0.0 if self.done else self.size * d * (mk.close[b + 1] - self.entry_open) / self.entry
        step_mtm = mtm_after - mtm_before

        terms = self._reward_terms(k, step_gross, step_cost, step_mtm)
        reward = 0.0
        for spec in cfg.rewards:
            reward += spec.weight * terms[spec.name]
        return StepRecord(
            k=k, bar=b, sampled=sampled, action=action, blocked=blocked, guard_blocks=blocks,
            reward=reward, reward_terms=terms, step_gross=step_gross, step_cost=step_cost, step_mtm=step_mtm,
            done=self.done, exit_reason=self.exit_reason, stop_before=stop_before, stop=stop_after_action, size=self.size,
            realized=self.realized, realized_gross=self.realized_gross, costs_paid=self.costs_paid,
            bars_held=self.bars_held, exit_bar=self.exit_bar, exit_level=self.exit_level, ambiguous=self.ambiguous,
            gap_fill=gap_fill, partial_taken=self.partial_taken, at_breakeven=self.at_breakeven,
            n_stop_moves=self.n_stop_moves, n_partials=self.n_partials, n_blocked=self.n_blocked,
        )  # fmt: skip

    def _reward_terms(self, k: int, step_gross: float, step_cost: float, step_mtm: float) -> dict[str, float]:
        cfg = self.cfg
        scale = cfg.reward_scale
        terms: dict[str, float] = {}
        for spec in cfg.rewards:
            if spec.name == "pnl":
                terms["pnl"] = scale * step_gross + (scale * step_mtm if spec.get("unrealized", False) else 0.0)
            elif spec.name == "cost":
                terms["cost"] = -scale * step_cost
            elif spec.name == "time_penalty":
                terms["time_penalty"] = -spec.get("time_coef", 0.002) * k / cfg.max_bars
            elif spec.name == "regret":
                if self.done:
                    terms["regret"] = -spec.get("regret_coef", 0.8) * scale * max(0.0, self.best_exit() - self.realized)
                else:
                    terms["regret"] = 0.0
            else:
                raise ValueError(f"the reference knows no reward term {spec.name!r}")
        return terms


# --------------------------------------------------------------------------------- gymnasium


try:  # gymnasium is an optional extra; the scalar reference itself does not need it
    import gymnasium as _gym
    import numpy as _np

    class ReferenceExitEnv(_gym.Env):
        """One environment = trades played one after another, in the usual per-env style.

        Each episode is a trade drawn uniformly (with the env's ``np_random``) from the
        decidable trades in ``trades`` (rows ``(signal_bar, direction, stop_dist,
        target_dist)``; the others are skipped). Observations are the features as a float32
        ``Box``; actions are ``Discrete(5)``; :meth:`action_masks` returns the current mask
        (the convention sb3-contrib's MaskablePPO uses). Stops, targets and time stops end the episode
        (``terminated``); nothing truncates. The observation returned with
        ``terminated=True`` is the last decision's (there is no next decision).
        """

        metadata = {"render_modes": []}

        def __init__(self, market: RefMarket, trades: Sequence[tuple[int, int, float, float]], cfg: RefConfig):
            super().__init__()
            self.market, self.cfg, self.trades = market, cfg, list(trades)
            if not self.trades:
                raise ValueError("no trade to play")
            self.observation_space = _gym.spaces.Box(-_np.inf, _np.inf, (cfg.obs_dim(),), _np.float32)
            self.action_space = _gym.spaces.Discrete(N_ACTIONS)
            self.episode: RefEpisode | None = None

        def _obs(self):
            return _np.asarray(self.episode.observation(), dtype=_np.float32)

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed)
            # Uniform over the decidable trades by rejection: trades closed on their entry bar
            # (or unfillable) are drawn again, so no env has to filter the whole list up front.
            for _ in range(10_000):
                trade = self.trades[int(self.np_random.integers(len(self.trades)))]
                self.episode = RefEpisode(self.market, self.cfg, *trade)
                if self.episode.decidable:
                    return self._obs(), {}
            raise ValueError("no decidable trade found in 10,000 draws")

        def step(self, action):
            rec = self.episode.step(int(action))
            info = {"exit_reason": rec.exit_reason, "realized": rec.realized} if rec.done else {}
            return self._obs(), rec.reward, rec.done, False, info

        def action_masks(self):
            """Allowed actions at the current decision, bool ``[5]``."""
            return _np.asarray(self.episode.mask(), dtype=bool)

except ImportError:  # pragma: no cover - gymnasium is in the dev extra
    ReferenceExitEnv = None  # type: ignore[assignment,misc]
