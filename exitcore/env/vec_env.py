"""``VecExitEnv``: thousands of open trades stepped at once, on CPU or GPU.

One step is one decision for every environment plus the evolution of each position through
the next bar (docs/environment.md). The step is batched tensor code only: no Python loop over
environments, no hook dispatch (components were built beforehand, see
:mod:`exitcore.env.components`), and no host-device synchronisation (statistics accumulate in
device tensors and are read once per update by :meth:`VecExitEnv.episode_stats`).

Two modes:

* **training** (``auto_reset=True``): each environment plays trades sampled uniformly from
  ``trade_pool`` (trades the agent can act on); a finished episode is replaced at once.
* **sweep** (``auto_reset=False``): environment ``i`` plays trade ``trade_pool[i]`` once;
  finished environments stay frozen. Trades that end on their entry bar start finished.
  Evaluation (the ledger) and the look-ahead audit use this mode.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import torch

from exitcore import actions as A
from exitcore.actions import N_ACTIONS
from exitcore.config import EnvConfig
from exitcore.costs import CostModel
from exitcore.env import sampling
from exitcore.env.blame import blamed, component_codes, plugin_failure
from exitcore.env.compile_check import COMPILE_CHECK_STEPS, check_compiled_step
from exitcore.env.components import (
    EnvComponents,
    Named,
    check_actions,
    check_mask_rows,
    check_tensor,
    check_untouched,
    snapshot,
)
from exitcore.env.state import EnvState
from exitcore.env.step_graph import StepGraph
from exitcore.env.statistics import StepStatistics, step_codes, step_sums
from exitcore.episodes import MarketTensors, TradeTable
from exitcore.errors import ExitcoreError, ExitcoreWarning, PluginError
from exitcore.timeline import ExitReason, bar_outcome


def _compile_options() -> dict[str, Any] | None:
    """Inductor options for the compiled step.

    The CPU code generator vectorises the innermost dimension and handles a remainder shorter
    than a vector ("tail") with masked loads and stores; for the narrow ``[N, 5]`` mask and
    ``[N, obs_dim]`` observation that path costs ~80 ns per row (the mask alone: 0.35 ms at 4096
    envs), while the plain scalar remainder costs ~8 ns. The option only affects CPU kernels.
    """
    import torch._inductor.config as inductor_config

    return {"cpp.enable_loop_tail_vec": False} if hasattr(inductor_config.cpp, "enable_loop_tail_vec") else None


def _k_range(before: Any, env: Any) -> str:
    """``min..max`` of the decision index ``k`` over the envs (for messages; host sync)."""
    try:
        state = EnvState.unpack(before, env._state_layout) if isinstance(before, tuple) else before
        lo, hi = int(state.k.min()), int(state.k.max())
    except Exception:  # noqa: BLE001 - e.g. a CUDA device-side assert poisons every later read
        return "?"
    return str(lo) if lo == hi else f"{lo}..{hi}"


#: compiled environments one process may build before torch.compile stops compiling new ones
MAX_COMPILED_ENVS = 64


def _allow_recompiles() -> None:
    """Every env instance is a new compilation of the same step function (its guards match on
    ``self``), and past ``recompile_limit`` (8 in torch 2.13) torch.compile silently runs the
    step eagerly: several times slower. Raise the limit for processes that build many envs
    (tests, sweeps in a notebook)."""
    import torch._dynamo.config as dynamo_config

    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, MAX_COMPILED_ENVS)


def _invalid_ids(action: torch.Tensor) -> torch.Tensor | None:
    """Whether any action id is out of range, computed in the compiled step only: the eager
    step has checked the ids before it started (`check_actions`)."""
    if not torch.compiler.is_compiling():
        return None
    return ((action < 0) | (action >= N_ACTIONS)).any()


def _trade_ids(pool: Any, n_trades: int, device: torch.device) -> torch.Tensor:
    """``pool`` as an int64 tensor of trade ids on ``device``, refused unless every id is a whole
    number in ``0..n_trades - 1`` (trial AC: 0.9 was cast to trade 0, and -1 taken as a trade)."""
    given = torch.as_tensor(pool)
    if given.dtype.is_floating_point or given.dtype.is_complex or given.dtype == torch.bool:
        raise ValueError(f"the trade pool must hold integer trade ids, got dtype {given.dtype}")
    ids = given.to(dtype=torch.int64, device=device).reshape(-1) if given.dim() <= 1 else None
    if ids is None:
        raise ValueError(f"the trade pool must be a 1-D tensor of trade ids, got shape {tuple(given.shape)}")
    bad = (ids < 0) | (ids >= n_trades)
    if bool(bad.any()):
        raise ValueError(f"trade id(s) {ids[bad][:3].tolist()} in the pool are not trades of this table "
                         f"(ids 0..{n_trades - 1})")
    return ids


class VecExitEnv:
    """A batched trade-exit environment implementing :class:`exitcore.env.protocol.MaskedVecEnv`.

    ``trade_pool``: the ids of the trades it plays, whole numbers in ``0..trades.n - 1`` (others
    are refused: a float id was cast, a negative one taken as a trade); ``n_envs`` any integer."""

    n_actions = N_ACTIONS

    def __init__(
        self,
        market: MarketTensors,
        trades: TradeTable,
        components: EnvComponents,
        env_config: EnvConfig,
        costs: CostModel,
        trade_pool: torch.Tensor,
        n_envs: int | None = None,
        seed: int = 0,
        auto_reset: bool = True,
        compile: bool = False,
    ):
        self.market = market
        self.trades = trades
        self.components = components
        self.cfg = env_config
        self.costs = costs
        self.device = market.device
        self.auto_reset = auto_reset
        self.trade_pool = _trade_ids(trade_pool, trades.n, self.device)
        if self.trade_pool.numel() == 0:
            raise ValueError("the trade pool is empty: there are no trades to play")
        if auto_reset:
            if n_envs is None:
                raise ValueError("n_envs is required in training mode")
            if isinstance(n_envs, bool) or not isinstance(n_envs, numbers.Integral) or n_envs < 1:
                raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
            if not bool(trades.decidable[self.trade_pool].all()):
                raise ValueError("training trade pools may only hold decidable trades (valid, open after the entry bar)")
        elif n_envs is not None and n_envs != self.trade_pool.numel():
            raise ValueError("in sweep mode there is one environment per trade in the pool")
        else:
            if not bool(trades.valid[self.trade_pool].all()):
                raise ValueError("sweep trade pools may only hold valid trades")
        self.n_envs = int(n_envs if auto_reset else self.trade_pool.numel())
        self.obs_dim = components.obs_dim
        self.feature_names = components.feature_names
        self._key = sampling.new_key(seed, self.device)  # the trade draws' stream (exitcore/env/sampling.py)
        self._env_offsets = sampling.env_offsets(self.n_envs, self.device)
        self._checked = False
        self._check_every_step = False  # see check_every_step
        self._component_codes = component_codes(components)
        # The first compiled steps are also run eagerly and compared (exitcore/env/compile_check.py).
        self._compile_checks_left = COMPILE_CHECK_STEPS
        self._strict = self.device.type == "cpu"  # CPU: range-check actions every step (no sync cost)
        self._reset_stats()
        # Compiled training mode keeps the state *packed* between steps: three row-major tables
        # (float64, int64, bool; see EnvState.pack), so the compiled step has a handful of
        # tensor inputs and outputs instead of two per field (each costs guard checks and a
        # buffer per call), and auto-reset selects rows of a per-pool-trade decision-0 table (one
        # gather and one select per dtype) instead of rebuilding and merging every field.
        # Eager keeps per-field tensors: there, ops on the column views of a packed table
        # cost more than they save. Plugins see named fields either way.
        self._packed = auto_reset and compile
        self._state_obj: EnvState | None = None
        self._state_tables: tuple[torch.Tensor, ...] | None = None
        if self._packed:
            # one row per *pool* position: rows of trades outside the pool (an entry bar past the
            # data's end, say) are never drawn and may not even have a state to build
            fresh = self._fresh(self.trade_pool)
            self._state_layout = EnvState.layout(fresh)
            self._fresh_tables = fresh.pack()
        self.state = self._initial_state()
        self.after = None  # the last step's post-transition state, before auto-reset
        # The first step runs eagerly with every output checked; later steps may run the
        # same core compiled (one fused graph: no hook calls, no Python per env).
        if compile:
            _allow_recompiles()
        self._compiled_core = torch.compile(self._eager_core, dynamic=False, options=_compile_options()) if compile else None
        self._graph_wanted = False  # see use_cuda_graph
        self._step_graph: StepGraph | None = None

    def use_cuda_graph(self, enabled: bool = True) -> bool:
        """Replay the compiled training step from a CUDA graph once its first steps are checked
        (exitcore/env/step_graph.py). Only the trainer asks for it: the step's outputs are then
        static tensors that the next step overwrites. Returns whether it applies here (packed,
        compiled, on CUDA); a capture that fails turns it off with a warning."""
        self._graph_wanted = enabled and self._packed and self._compiled_core is not None and self.device.type == "cuda"
        self._step_graph = None
        return self._graph_wanted

    def check_every_step(self) -> None:
        """Check the components' outputs on every step, not only the first: shapes, dtypes,
        finiteness and mask rows of the live rows, the state left untouched, the weighted reward
        within float32. For the sweeps of ``experiments check --build`` and ``exitcore run``
        (:mod:`exitcore.env.sweep`): a reward term that returns NaN only for a partial exit, first
        executed some decisions in, is refused there, not in training. Steps run eagerly."""
        self._check_every_step = True
        self._checked = False

    def skip_first_step_checks(self) -> None:
        """Step without checking the components' outputs on the first step (shapes, dtypes,
        finiteness, untouched state). For the look-ahead audit's replays: there a component
        rebuilt on poisoned bars may return NaN where it reads the future, which the audit
        reports as a difference instead of stopping at it."""
        self._checked = True

    # ------------------------------------------------------------------ state access

    @property
    def state(self) -> EnvState:
        """The decision state of every environment (column views when kept packed)."""
        if self._state_tables is not None:
            return EnvState.unpack(self._state_tables, self._state_layout)
        assert self._state_obj is not None
        return self._state_obj

    @state.setter
    def state(self, value: EnvState) -> None:
        if self._packed:
            self._state_tables = value.pack()
        else:
            self._state_obj = value

    @property
    def after(self) -> EnvState | None:
        """The last step's post-transition state, before auto-reset (``None`` before a step)."""
        if self._after_obj is None and self._after_tables is not None:
            self._after_obj = EnvState.unpack(self._after_tables, self._state_layout)
        return self._after_obj

    @after.setter
    def after(self, value: EnvState | None) -> None:
        self._after_obj, self._after_tables = value, None

    # ------------------------------------------------------------------ episodes

    def _fresh(self, trade: torch.Tensor) -> EnvState:
        """The state at decision 0 of ``trade`` (or its end, if the entry bar closed it)."""
        t = self.trades
        m = self.market
        e = t.entry_bar[trade]
        d = t.direction[trade]
        entry = t.entry_price[trade]
        entry_open = t.entry_open[trade]
        price = m.close[e]
        zeros_f = torch.zeros_like(price)
        zeros_i = torch.zeros_like(e)
        false = torch.zeros_like(e, dtype=torch.bool)
        reason = t.entry_reason[trade]
        done = reason != int(ExitReason.OPEN)
        level = t.entry_level[trade]
        # Trades closed on their entry bar (sweep mode only) start finished with that outcome.
        gross = torch.where(done, self.costs.gross_per_unit(level, entry_open, entry, d), zeros_f)
        cost = torch.where(done, self.costs.cost_per_unit(entry), zeros_f)
        return EnvState(
            trade=trade,
            bar=e,
            k=zeros_i,
            direction=d,
            entry_open=entry_open,
            entry_price=entry,
            stop=t.stop0[trade],
            target=t.target0[trade],
            size=torch.where(done, zeros_f, torch.ones_like(price)),
            realized=gross - cost,
            realized_gross=gross,
            costs_paid=cost,
            partial_taken=false,
            at_breakeven=false,
            price=price,
            upnl=self.costs.net_per_unit(price, entry, d),
            atr=m.atr[e],
            n_stop_moves=zeros_i,
            n_partials=zeros_i,
            n_blocked=zeros_i,
            ambiguous=t.entry_ambiguous[trade],
            exit_bar=e,
            exit_level=torch.where(done, level, zeros_f),
            done=done,
            exit_reason=reason,
            action=zeros_i,
            blocked=false,
            step_gross=zeros_f,
            step_cost=zeros_f,
            step_mtm=zeros_f,
        )

    def _draw_pool_rows(self, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A trade-pool position for every env (finished or not, so the stream does not depend
        on which episodes ended) and the advanced key: pure tensor code, runs in the compiled step."""
        return sampling.draw(key, self._env_offsets, self.trade_pool.numel())

    def _draw_trades(self, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A trade id for every env and the advanced key (see :meth:`_draw_pool_rows`)."""
        idx, key = self._draw_pool_rows(key)
        return self.trade_pool[idx], key

    def _initial_state(self) -> EnvState:
        if not self.auto_reset:
            return self._fresh(self.trade_pool.clone())
        trades, self._key = self._draw_trades(self._key)
        return self._fresh(trades)

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Start every environment on a new episode; returns ``(obs, mask)``."""
        if seed is not None:
            self._key = sampling.new_key(seed, self.device)
        self._reset_stats()
        self.state = self._initial_state()
        self.after = None
        try:
            # the first masks are checked mask by mask on the first step; `mask_empty` counts the
            # masks of later decisions, one per step and env, so never more than the decisions
            return self.observe(), self.action_mask()
        except ExitcoreError:
            raise
        except Exception as exc:
            label = blamed(exc, self._component_codes)
            if label is None:
                raise
            raise plugin_failure(exc, label, "on reset") from exc

    # ------------------------------------------------------------------ observation and mask

    def observe(self, state: EnvState | None = None) -> torch.Tensor:
        """Observation ``[N, obs_dim]`` float32: the experiment's features, concatenated."""
        state = self.state if state is None else state
        if self._checked:
            parts = [f.fn(self.market, state) for f in self.components.features]
        else:  # the first step: each feature's output checked, and that it left the state alone
            parts = []
            for f, spec in zip(self.components.features, self.components.feature_specs):
                kept = snapshot(state, market=self.market)
                parts.append(f.fn(self.market, state))
                check_untouched(kept, [state], f"feature {f.label()}")
                check_tensor(parts[-1], f"feature {f.label()}", (state.n, len(spec.names)), (torch.float32,), self.device,
                             rows=~state.done)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def action_mask(self, state: EnvState | None = None) -> torch.Tensor:
        """Allowed actions ``[N, A]`` bool: the AND of all masks; HOLD always allowed."""
        return self._masks_and_empty(self.state if state is None else state)[0]

    def _masks_and_empty(self, state: EnvState) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """:meth:`action_mask`, per row whether the masks together allowed nothing (HOLD was
        then allowed regardless: counted as ``mask_empty`` in the statistics), and each mask's
        own output (for :meth:`_empty_alone`)."""
        allowed = torch.ones(state.n, N_ACTIONS, dtype=torch.bool, device=self.device)
        outs: list[torch.Tensor] = []
        for mk in self.components.masks:
            kept = None if self._checked else snapshot(state, market=self.market)
            out = mk.fn(state)
            if kept is not None:
                check_untouched(kept, [state], f"action mask {mk.label()}")
                check_tensor(out, f"action mask {mk.label()}", (state.n, N_ACTIONS), (torch.bool,), self.device)
                check_mask_rows(out, f"action mask {mk.label()}", rows=~state.done)
            allowed = allowed & out
            outs.append(out)
        empty = ~allowed.any(dim=1)
        allowed[:, A.HOLD] = True
        return allowed, empty, outs

    def _empty_alone(self, outs: list[torch.Tensor], mask_empty: torch.Tensor,
                     done: torch.Tensor | None) -> list[torch.Tensor] | None:
        """With several masks, per mask whether it alone allowed nothing in a row (``mask_empty_by``
        in the statistics: the warning names that mask, not every mask it is combined with; not
        where ``done``); with one, nothing (its count is ``mask_empty``). ``None`` on an eager CPU
        step whose masks left no row empty: every flag is false there (a mask empty alone leaves
        the combination empty), and the check costs no device sync on the CPU, while the per-mask
        reductions cost 2-4 % of an eager step, the check 0.2-0.7 % (the compiled step fuses them)."""
        if len(outs) < 2:
            return []
        if self._strict and not torch.compiler.is_compiling() and not bool(mask_empty.any()):
            return None
        alone = [~out.any(dim=1) for out in outs]
        return alone if done is None else [e & ~done for e in alone]

    # ------------------------------------------------------------------ the step

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Execute one action per environment; returns ``(obs, mask, reward, done)``.

        ``reward`` is float32; where ``done`` the episode ended in this step and, in training
        mode, ``obs``/``mask`` already belong to the next episode. ``self.after`` keeps the
        post-transition state of this step (before any reset) for evaluation.
        """
        if self._graph_wanted and self._checked and self._compile_checks_left == 0:
            replayed = self._graph_step(action)
            if replayed is not None:
                return replayed
        compiled = self._checked and self._compiled_core is not None
        if self._strict or not self._checked:
            # The compiled step range-checks the ids inside its kernel (its `invalid` output).
            check_actions(action, self.n_envs, self.device, values=not compiled)
        action = action.to(torch.int64)
        key = self._key if self.auto_reset else None
        if compiled:
            core = self._compiled_core
        else:
            core = self._eager_core
        before = self._state_tables if self._packed else self.state
        try:
            outputs = core(before, action, key, self._episode_return)
            if compiled and self._compile_checks_left > 0:
                self._verify_compiled(outputs, before, action, key)
        except ExitcoreError:
            raise
        except Exception as exc:
            self._raise_blamed(exc, compiled, before, action, key)
            raise
        state, after, obs, mask, reward, done, episode_return, stats_delta, invalid, key = outputs
        # `invalid` is None when torch.compile fell back to running the step eagerly (e.g. past
        # its recompile limit): then the ids have not been checked at all yet.
        if compiled and self._strict and (invalid is None or bool(invalid)):
            check_actions(action, self.n_envs, self.device)  # raises, naming the ids; nothing was kept
        if self._packed:
            self._state_tables, self._after_obj, self._after_tables = state, None, after
        else:
            self.state, self.after = state, after
        self._episode_return = episode_return
        if self.auto_reset:
            self._key = key
        self._stats.add(*stats_delta)
        self._checked = not self._check_every_step
        return obs, mask, reward, done

    @property
    def _eager_core(self) -> Any:
        """The step as a pure function of tensors: packed in compiled training mode, else per field."""
        return self._core_packed if self._packed else self._core

    @property
    def cuda_graph_on(self) -> bool:
        """Whether compiled steps are (to be) replayed from a CUDA graph (see :meth:`use_cuda_graph`)."""
        return self._graph_wanted

    def _graph_step(self, action: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """A step replayed from the CUDA graph, capturing it first where needed (None: graphs
        turned out not to work here, so the caller steps as usual)."""
        graph = self._step_graph
        if graph is None or not graph.matches(self):
            try:
                graph = self._step_graph = StepGraph(self, action)
            except Exception as exc:  # noqa: BLE001 - the compiled step computes the same
                self._graph_wanted, self._step_graph = False, None
                warnings.warn(f"CUDA graph of the env step could not be captured ({type(exc).__name__}: {exc}); "
                              "training goes on without it, slower", ExitcoreWarning, stacklevel=3)
                return None
        outputs = graph.replay(action)
        self._after_obj, self._after_tables = None, graph.after
        return outputs

    def _raise_blamed(self, exc: Exception, compiled: bool, before: Any, action: torch.Tensor, key: Any) -> None:
        """Raise a PluginError naming the component whose function raised ``exc`` in a step,
        if one did (a compiled step is re-run eagerly to find it); else return."""
        if compiled:  # the compiled graph has no plugin frames: find the culprit eagerly
            try:
                self._eager_core(before, action, key, self._episode_return)
            except Exception as eager_exc:  # noqa: BLE001 - attributed below or dropped
                exc = eager_exc
            else:
                return
        label = blamed(exc, self._component_codes)
        if label is not None:
            raise plugin_failure(exc, label, f"in a step (decisions k = {_k_range(before, self)})") from exc

    def _verify_compiled(self, outputs: tuple[Any, ...], before: Any, action: torch.Tensor, key: Any) -> None:
        """One of the first compiled steps, recomputed eagerly (exitcore/env/compile_check.py)."""
        eager = self._eager_core(before, action, key, self._episode_return)
        unpack = (lambda tables: EnvState.unpack(tables, self._state_layout)) if self._packed else None
        check_compiled_step(outputs, eager, self.components.describe(), unpack)
        self._compile_checks_left -= 1

    def _core(
        self,
        before: EnvState,
        action: torch.Tensor,
        key: torch.Tensor | None,
        episode_return: torch.Tensor,
    ) -> tuple[Any, ...]:
        """One step as a pure function of tensors (what ``torch.compile`` sees)."""
        after, blocked_by = self._transition(before, action)
        reward = self._reward(before, after)
        if self.auto_reset:
            assert key is not None
            live = None
            done = after.done
            fresh_trades, key = self._draw_trades(key)
            state = self._fresh(fresh_trades).where(done, after)
        else:
            live = ~before.done
            after = after.where(live, before)
            reward = torch.where(live, reward, torch.zeros_like(reward))
            done = after.done & live
            state = after
        return (state, after, *self._outputs(action, after, blocked_by, state, reward, done, episode_return, live), key)

    def _core_packed(
        self,
        tables: tuple[torch.Tensor, ...],
        action: torch.Tensor,
        key: torch.Tensor,
        episode_return: torch.Tensor,
    ) -> tuple[Any, ...]:
        """:meth:`_core` for training mode on packed state tables (the compiled path)."""
        before = EnvState.unpack(tables, self._state_layout)
        after, blocked_by = self._transition(before, action)
        reward = self._reward(before, after)
        after_tables = after.pack()
        done = after.done
        column = done[:, None]
        fresh_rows, key = self._draw_pool_rows(key)
        state_tables = tuple(torch.where(column, fresh[fresh_rows], cont) for fresh, cont in zip(self._fresh_tables, after_tables))
        state = EnvState.unpack(state_tables, self._state_layout)  # type: ignore[arg-type]
        outputs = self._outputs(action, after, blocked_by, state, reward, done, episode_return, None)
        return (state_tables, after_tables, *outputs, key)

    def _outputs(
        self,
        action: torch.Tensor,
        after: EnvState,
        blocked_by: list[torch.Tensor],
        state: EnvState,
        reward: torch.Tensor,
        done: torch.Tensor,
        episode_return: torch.Tensor,
        live: torch.Tensor | None,
    ) -> tuple[Any, ...]:
        """What both cores return besides the states: ``(obs, mask, reward, done,
        episode_return, (codes, sums), invalid)``; in training mode a finished episode's
        running return restarts at 0."""
        episode_return = episode_return + reward
        obs, (mask, mask_empty, outs) = self.observe(state), self._masks_and_empty(state)
        if live is not None:  # sweep mode: a finished episode's next mask is never used
            mask_empty = mask_empty & ~state.done
        alone = self._empty_alone(outs, mask_empty, None if live is None else state.done)
        sums = step_sums(action, after, episode_return, blocked_by, live, mask_empty, alone or ())
        if alone is None:  # the per-mask counts are zero: the same sums as computing them
            sums = torch.cat([sums, self._no_empty_alone])
        stats_delta = (step_codes(action, after, live), sums)
        if self.auto_reset:
            episode_return = torch.where(done, torch.zeros_like(episode_return), episode_return)
        return obs, mask, reward.to(torch.float32), done, episode_return, stats_delta, _invalid_ids(action)

    def _transition(self, s: EnvState, action: torch.Tensor) -> tuple[EnvState, list[torch.Tensor]]:
        """Guards, execution at the decision close, forced close, evolution through the next bar."""
        m, t, cfg = self.market, self.trades, self.cfg
        d, entry, entry_open, price, stop = s.direction, s.entry_price, s.entry_open, s.price, s.stop

        # 1. Guards: a blocked action becomes HOLD.
        blocked = torch.zeros_like(s.done)
        blocked_by = []
        for g in self.components.guards:
            kept = None if self._checked else snapshot(s, market=self.market)
            b = g.fn(s, action)
            if kept is not None:
                check_untouched(kept, [s], f"exit guard {g.label()}")
                check_tensor(b, f"exit guard {g.label()}", (s.n,), (torch.bool,), self.device)
            blocked_by.append(b)
            blocked = blocked | b
        blocked = blocked & (action != A.HOLD)
        a = torch.where(blocked, torch.full_like(action, A.HOLD), action)

        # 2. Execute at the decision close.
        is_exit = a == A.EXIT
        is_partial = a == A.PARTIAL_EXIT
        q_decision = torch.where(is_exit, s.size, torch.where(is_partial, cfg.partial_fraction * s.size, torch.zeros_like(s.size)))
        dist = d * (price - stop)
        cand_tight = price - d * (cfg.tighten_factor * dist)
        breakeven = self.costs.breakeven_level(entry, d)
        tighten = (a == A.TIGHTEN_SL) & (dist > 0) & (d * (cand_tight - stop) > 0)
        trail = (a == A.TRAIL_BE) & (s.upnl > 0) & (d * (breakeven - stop) > 0)
        new_stop = torch.where(tighten, cand_tight, torch.where(trail, breakeven, stop))
        size1 = s.size - q_decision
        agent_done = is_exit

        # 3. Forced close at the trade's last bar (time stop, a hole ahead, or the data's end).
        forced = ~agent_done & (s.bar == t.last_bar[s.trade])
        q_forced = torch.where(forced, size1, torch.zeros_like(size1))
        q_close = q_decision + q_forced
        size2 = size1 - q_forced

        # 4. Evolve through the next bar.
        still = ~(agent_done | forced)
        nb = torch.clamp(s.bar + 1, max=m.n_bars - 1)
        outcome, level, ambiguous = bar_outcome(m.open[nb], m.high[nb], m.low[nb], new_stop, s.target, d)
        hit = still & (outcome != int(ExitReason.OPEN))
        q_hit = torch.where(hit, size2, torch.zeros_like(size2))
        done = agent_done | forced | hit

        costs = self.costs  # every fill and PnL formula lives in exitcore/costs.py
        gross = q_close * costs.gross_per_unit(price, entry_open, entry, d) + q_hit * costs.gross_per_unit(level, entry_open, entry, d)
        cost = (q_close + q_hit) * costs.cost_per_unit(entry)
        size3 = size2 - q_hit
        next_price = m.close[nb]
        mtm_before = s.size * costs.gross_per_unit(price, entry_open, entry, d)
        mtm_after = torch.where(done, torch.zeros_like(price), size3 * costs.gross_per_unit(next_price, entry_open, entry, d))

        reason = torch.where(
            agent_done,
            torch.full_like(s.exit_reason, int(ExitReason.AGENT)),
            torch.where(forced, t.last_reason[s.trade], torch.where(hit, outcome, s.exit_reason)),
        )
        stop_moved = tighten | trail
        next_bar = torch.where(done, s.bar, s.bar + 1)
        after = EnvState(
            trade=s.trade,
            bar=next_bar,
            k=torch.where(done, s.k, s.k + 1),
            direction=d,
            entry_open=entry_open,
            entry_price=entry,
            stop=new_stop,
            target=s.target,
            size=torch.where(done, torch.zeros_like(size3), size3),
            realized=s.realized + gross - cost,
            realized_gross=s.realized_gross + gross,
            costs_paid=s.costs_paid + cost,
            partial_taken=s.partial_taken | is_partial,
            at_breakeven=s.at_breakeven | (d * (new_stop - breakeven) >= 0),
            price=torch.where(done, price, next_price),
            upnl=torch.where(done, s.upnl, self.costs.net_per_unit(next_price, entry, d)),
            atr=torch.where(done, s.atr, m.atr[nb]),
            n_stop_moves=s.n_stop_moves + stop_moved.to(torch.int64),
            n_partials=s.n_partials + is_partial.to(torch.int64),
            n_blocked=s.n_blocked + blocked.to(torch.int64),
            ambiguous=s.ambiguous | (hit & ambiguous),
            exit_bar=torch.where(hit, nb, s.bar),
            exit_level=torch.where(hit, level, price),
            done=done,
            exit_reason=reason,
            action=a,
            blocked=blocked,
            step_gross=gross,
            step_cost=cost,
            step_mtm=mtm_after - mtm_before,
        )
        return after, blocked_by

    def reward_terms(self, action: torch.Tensor) -> list[tuple[Named, torch.Tensor]]:
        """Each reward term's value ``[N]`` for ``action`` from the current state, apart (the
        step adds them up, weighted), computed eagerly; the state is left as it is. The trainer
        replays a rollout up to a non-finite reward with it, to name the term behind it."""
        before = self.state
        after, _ = self._transition(before, action.to(torch.int64))
        return [(term, term.fn(before, after.action, after)) for term in self.components.rewards]

    def _reward(self, before: EnvState, after: EnvState) -> torch.Tensor:
        total = torch.zeros(before.n, dtype=torch.float64, device=self.device)
        for term in self.components.rewards:
            kept = None if self._checked else snapshot(before, after, market=self.market)
            r = term.fn(before, after.action, after)
            if kept is not None:
                check_untouched(kept, [before, after], f"reward term {term.label()}")
                check_tensor(r, f"reward term {term.label()}", (before.n,), (torch.float32, torch.float64), self.device,
                             rows=~before.done)
            total = total + term.weight * r
        if not self._checked:  # the step's reward is float32: finite terms can sum beyond it (1e300),
            # or overflow on their own weight (a float32 term times 1e39 is inf before the sum)
            big = ~torch.isfinite(total.to(torch.float32)) & ~before.done
            if bool(big.any()):
                terms = ", ".join(term.label() for term in self.components.rewards)
                raise PluginError(f"the reward terms ({terms}) sum, weighted, to {float(total[big][0]):.6g} at "
                                  f"{int(big.sum())} of {before.n} decisions: beyond float32, the step's reward "
                                  "type (the training would stop on an infinite reward); scale the terms down")
        return total

    # ------------------------------------------------------------------ statistics

    def _reset_stats(self) -> None:
        self._stats = StepStatistics([g.name for g in self.components.guards], self.device,
                                     [m.name for m in self.components.masks])
        self._no_empty_alone = torch.zeros(len(self.components.masks), dtype=torch.float64, device=self.device)
        self._episode_return = torch.zeros(self.n_envs, dtype=torch.float64, device=self.device)

    def episode_stats(self, reset: bool = True) -> dict[str, Any]:
        """Statistics since the last call (one host sync): episodes, mean return and length,
        action fractions, blocked rates per action and per guard, exit reasons, ambiguous bars
        (see :meth:`exitcore.env.statistics.StepStatistics.summary`)."""
        out = self._stats.summary()
        if reset:
            self._stats.reset()  # episodes in flight keep their running return
        return out

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: env states, RNG, running returns, stats."""
        return {
            "state": {k: v.clone() for k, v in self.state.tensors().items()},
            "trade_draws": self._key.clone(),
            "episode_return": self._episode_return.clone(),
            "stats": self._stats.state_dict(),
            "checked": self._checked,
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` captured."""
        self.state = EnvState.from_tensors({k: v.to(self.device) for k, v in data["state"].items()})
        if "trade_draws" not in data:
            raise ValueError("this environment checkpoint predates counter-based trade draws (exitcore 2026-11-26) "
                             "and cannot be continued exactly; start a new run")
        self._key = data["trade_draws"].to(self.device)
        self._episode_return = data["episode_return"].to(self.device)
        self._stats.load_state_dict(data["stats"])
        self._checked = bool(data.get("checked", False))
