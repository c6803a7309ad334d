"""Prove the timeline contract for a decision: recompute it with the future poisoned.

For a decision at bar ``b`` (an :class:`EnvState` row), the observation, the action mask and
every guard's decision for every action are recomputed after

* ``truncate`` - the bars after ``b`` are removed,
* ``nan`` - every bar after ``b`` is NaN,
* ``huge`` - every bar after ``b`` is a huge price (1e6),
* ``random_walk`` - the bars after ``b`` are replaced by an unrelated random walk,

with every component **rebuilt from its factory** on the poisoned bars (so precomputation in
``build``, such as a centred moving average or a normalisation fitted on all data, is
checked too). Given the actions that led to the decision, the trade is also replayed by the
environment on the poisoned bars (:func:`replay_path`), and the engine's position state must
match at every decision up to ``b``. Anything that is not bit-identical is a leak, reported
with the feature column, the plugin or the state field responsible. The look-ahead audit (``exitcore audit``) and the tests use
this module.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from exitcore.actions import ACTION_NAMES, N_ACTIONS
from exitcore.data.bars import PRICE_COLUMNS, Bars
from exitcore.data.progress import counter as progress_counter
from exitcore.env.state import EnvState
from exitcore.env.poisoning import POISON_MODES
from exitcore.errors import ExitcoreError, describe_exception


@attrs.frozen
class Leak:
    """A difference between a decision's view and its view with the future poisoned."""

    mode: str  #: the poisoning that exposed it
    trade: int  #: row in the trade table
    k: int  #: decision index
    bar: int  #: decision bar
    kind: str  #: "feature", "mask", "guard", "state" (the engine's), "error" or "unstable" (differs on the same bars too)
    component: str  #: feature column, mask or guard name (with its plugin)
    detail: str

    def __str__(self) -> str:
        return (f"{self.kind} {self.component}: differs at trade {self.trade}, decision {self.k} (bar {self.bar}) "
                f"when the future is poisoned ({self.mode}): {self.detail}")


def poison_bars(bars: Bars, after: int, mode: str, seed: int = 0) -> Bars:
    """``bars`` with every bar after position ``after`` poisoned by ``mode`` (see module doc)."""
    if mode == "truncate":
        return bars.head(after + 1)
    frame = bars.frame.copy()
    n_future = len(frame) - after - 1
    if n_future <= 0:
        return bars
    if mode == "nan":
        future = dict.fromkeys(PRICE_COLUMNS, np.nan)
    elif mode == "huge":
        future = dict.fromkeys(PRICE_COLUMNS, 1e6)
    elif mode == "random_walk":
        rng = np.random.default_rng(seed)
        last = float(frame["close"].iloc[after])
        step = float(np.nanstd(np.diff(frame["close"].to_numpy()[: after + 1]))) or last * 1e-3
        close = last + np.cumsum(rng.normal(0.0, 5 * step, n_future))
        open_ = np.r_[last, close[:-1]]
        wick = np.abs(rng.normal(0.0, 5 * step, (2, n_future)))
        future = {"open": open_, "close": close, "high": np.maximum(open_, close) + wick[0],
                  "low": np.minimum(open_, close) - wick[1]}
    else:
        raise ValueError(f"unknown poison mode {mode!r}; use one of {POISON_MODES}")
    for name, values in future.items():  # by position: .loc by timestamps took 10 s of an M1 audit
        column = frame[name].to_numpy(dtype=np.float64, copy=True)
        column[after + 1 :] = values
        frame[name] = column
    return attrs.evolve(bars, frame=frame)


@attrs.frozen(eq=False)
class ReplayedPath:
    """A trade played alone by the environment from its decision 0 to decision ``k``."""

    states: dict[str, torch.Tensor]  #: every EnvState field, ``[k + 1]``: its value at decisions 0..k
    obs: torch.Tensor  #: [k + 1, F] the environment's own observations
    mask: torch.Tensor  #: [k + 1, A] the environment's own action masks
    #: [k, G] whether guard g blocked the action replayed at decision j (a changed one changes
    #: the path after it: the guard is named, not the engine)
    blocks: torch.Tensor
    #: [k] the actions replayed at decisions 0..k-1 (before the guards)
    actions: torch.Tensor
    #: [k + 1, M, A] what each mask plugin allowed at decisions 0..k (a difference names its mask)
    masks: torch.Tensor | None = None


@attrs.frozen(eq=False)
class DecisionView:
    """What the agent's side of the environment computed for one decision row."""

    obs: torch.Tensor  #: [F] float32
    mask: torch.Tensor  #: [A] bool: every mask plugin's together
    guards: torch.Tensor  #: [G, A] bool: guard g blocks action a
    #: the engine's path to the decision (with a row's action history), else None
    path: ReplayedPath | None = None
    masks: torch.Tensor | None = None  #: [M, A] bool: what mask plugin m allows


def replay_path(assembled: Any, trade: int, actions: torch.Tensor) -> ReplayedPath:
    """Trade ``trade`` played alone by ``assembled``'s environment with ``actions`` (the
    actions sampled at decisions 0..k-1): the position state, observation and mask at each
    decision 0..k.

    The position state (stop, size, upnl, price, ATR, ...) is the engine's, not a plugin's:
    replaying it on poisoned bars checks the environment itself (the episode table, the step,
    the bar evolution) for look-ahead, at every decision up to the poisoned one.
    """
    device = assembled.market.device
    env = assembled.make_env(torch.tensor([trade], dtype=torch.int64, device=device), auto_reset=False)
    env.skip_first_step_checks()  # a NaN from the poisoned future is a difference to report, not an error
    obs, mask = env.reset()
    states, observations, masks = [_copy(env.state)], [obs[0].clone()], [mask[0].clone()]
    per_mask = [_each_mask(assembled, env.state)]
    guards = assembled.components.guards
    blocks = torch.zeros(len(actions), len(guards), dtype=torch.bool, device=device)
    for j, a in enumerate(actions.tolist()):
        action = torch.tensor([a], dtype=torch.int64, device=device)
        for gi, g in enumerate(guards):  # as the step is about to ask them
            blocks[j, gi] = g.fn(env.state, action)[0]
        obs, mask, _, _ = env.step(action)
        states.append(_copy(env.state))
        observations.append(obs[0].clone())
        masks.append(mask[0].clone())
        per_mask.append(_each_mask(assembled, env.state))
    fields = {name: torch.cat([st[name] for st in states]) for name in states[0]}
    return ReplayedPath(fields, torch.stack(observations), torch.stack(masks), blocks, actions.clone(),
                        torch.stack(per_mask))


def _each_mask(assembled: Any, state: EnvState) -> torch.Tensor:
    """[M, A]: what each mask plugin allows for a one-row state (masks are compared one by one,
    so a leaking mask is named alone, not with every mask it is combined with)."""
    masks = assembled.components.masks
    if not masks:
        return torch.ones(0, N_ACTIONS, dtype=torch.bool, device=assembled.market.device)
    return torch.stack([mk.fn(state)[0].to(torch.bool).clone() for mk in masks])


def _copy(state: EnvState) -> dict[str, torch.Tensor]:
    # the environment may keep its state in buffers it overwrites on the next step
    return {k: v.clone() for k, v in state.tensors().items()}


def decision_view(assembled: Any, state: EnvState, history: torch.Tensor | None = None) -> DecisionView | None:
    """Observation, mask and guard decisions of ``assembled``'s components for a one-row state;
    with ``history`` (the actions at the trade's earlier decisions) also the engine's
    :func:`replay_path` to it."""
    comps = assembled.components
    market = assembled.market
    obs = torch.cat([f.fn(market, state) for f in comps.features], dim=1)[0]
    per_mask = _each_mask(assembled, state)
    mask = per_mask.all(dim=0)
    guards = torch.zeros(len(comps.guards), N_ACTIONS, dtype=torch.bool, device=market.device)
    for gi, g in enumerate(comps.guards):
        for a in range(N_ACTIONS):
            guards[gi, a] = g.fn(state, torch.full((1,), a, dtype=torch.int64, device=market.device))[0]
    path = None if history is None else replay_path(assembled, int(state.trade[0]), history)
    return DecisionView(obs, mask, guards, path, per_mask)


def state_row(state: EnvState, i: int) -> EnvState:
    """Row ``i`` of a batched state, as a one-row state."""
    return EnvState.from_tensors({k: v[i : i + 1] for k, v in state.tensors().items()})


def compare_views(
    original: DecisionView, poisoned: DecisionView, assembled: Any, mode: str, row: EnvState
) -> list[Leak]:
    """Every difference between two views of the same decision, attributed to its component."""
    trade, k, bar = int(row.trade[0]), int(row.k[0]), int(row.bar[0])
    leaks: list[Leak] = []
    comps = assembled.components
    labels = _feature_labels(assembled)
    diff_cols = torch.nonzero(~_same_bits(original.obs, poisoned.obs)).flatten().tolist()
    for c in diff_cols:
        leaks.append(Leak(mode, trade, k, bar, "feature", labels[c],
                          f"{float(original.obs[c])!r} became {float(poisoned.obs[c])!r}"))
    for mi, mk in enumerate(comps.masks):
        if not torch.equal(original.masks[mi], poisoned.masks[mi]):
            leaks.append(Leak(mode, trade, k, bar, "mask", mk.label(),
                              f"allowed {_actions(original.masks[mi])} became {_actions(poisoned.masks[mi])}"))
    for gi, g in enumerate(comps.guards):
        if not torch.equal(original.guards[gi], poisoned.guards[gi]):
            leaks.append(Leak(mode, trade, k, bar, "guard", g.label(),
                              f"blocked {_actions(original.guards[gi])} became {_actions(poisoned.guards[gi])}"))
    if original.path is not None and poisoned.path is not None:
        leaks.extend(compare_paths(original.path, poisoned.path, assembled, mode, row))
    return leaks


#: the component an engine finding names: the position state is exitcore's, not a plugin's
ENGINE = "exitcore's environment (the position state it computes)"


def compare_paths(original: ReplayedPath, poisoned: ReplayedPath, assembled: Any, mode: str, row: EnvState) -> list[Leak]:
    """Differences between two replays of a trade up to decision ``k``: each guard's decision
    on the replayed action (``kind="guard"``), the engine's state fields (``kind="state"``,
    first differing decision per field) and, before ``k`` (the decision itself is
    :func:`compare_views`'), the environment's observations and masks. Where a guard decided
    differently at decision ``j``, the path after ``j`` differs because of it: only the
    guard is named for it."""
    trade, k, bar = int(row.trade[0]), int(row.k[0]), int(row.bar[0])
    entry_bar = bar - k
    leaks: list[Leak] = []
    # a guard deciding differently at decision j changes the path after it: name the guard, and
    # leave out the engine's differences that only follow from it
    first_guard = k
    for j, gi in torch.nonzero(original.blocks != poisoned.blocks).tolist():  # same history: same shape
        action = ACTION_NAMES[int(original.actions[j])]
        words = {True: f"blocked {action}", False: f"let {action} through"}
        leaks.append(Leak(mode, trade, j, entry_bar + j, "guard", assembled.components.guards[gi].label(),
                          f"{words[bool(original.blocks[j, gi])]} became {words[bool(poisoned.blocks[j, gi])]} "
                          f"on the trade's replay{_earlier(j, k, bar)}"))
        first_guard = min(first_guard, j)
    for name, before in original.states.items():
        after = poisoned.states[name]
        if after.shape != before.shape:
            leaks.append(Leak(mode, trade, k, bar, "state", f"{ENGINE}: {name}",
                              f"the replay reached {after.shape[0]} decisions instead of {before.shape[0]}"))
            continue
        differs = torch.nonzero(~_same_bits(before, after)).flatten()
        if differs.numel() and int(differs[0]) <= first_guard:  # later ones follow from the guard
            j = int(differs[0])
            leaks.append(Leak(mode, trade, j, entry_bar + j, "state", f"{ENGINE}: {name}",
                              f"{_scalar(before[j])} became {_scalar(after[j])}{_earlier(j, k, bar)}"))
    names = _feature_labels(assembled)
    for j in range(min(k, first_guard + 1, original.obs.shape[0], poisoned.obs.shape[0])):
        for c in torch.nonzero(~_same_bits(original.obs[j], poisoned.obs[j])).flatten().tolist():
            leaks.append(Leak(mode, trade, j, entry_bar + j, "feature", names[c],
                              f"{float(original.obs[j, c])!r} became {float(poisoned.obs[j, c])!r}{_earlier(j, k, bar)}"))
        named = False
        for mi, mk in enumerate(assembled.components.masks):
            before, after = original.masks[j, mi], poisoned.masks[j, mi]
            if not torch.equal(before, after):
                named = True
                leaks.append(Leak(mode, trade, j, entry_bar + j, "mask", mk.label(),
                                  f"allowed {_actions(before)} became {_actions(after)}{_earlier(j, k, bar)}"))
        if not named and not torch.equal(original.mask[j], poisoned.mask[j]):  # no plugin's: the engine's
            leaks.append(Leak(mode, trade, j, entry_bar + j, "mask", f"{ENGINE}: action mask",
                              f"allowed {_actions(original.mask[j])} became {_actions(poisoned.mask[j])}{_earlier(j, k, bar)}"))
    return leaks


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise bit equality (NaN equals NaN only with the same bits; -0.0 differs from 0.0)."""
    if a.dtype.is_floating_point:
        width = {torch.float64: torch.int64, torch.float32: torch.int32}.get(a.dtype)
        if width is not None:
            return a.view(width) == b.view(width)
        return (a == b) | (a.isnan() & b.isnan())
    return a == b


def _earlier(j: int, k: int, bar: int) -> str:
    """Where the poisoning began, for a difference at an earlier decision ``j`` than the probed ``k``."""
    return "" if j == k else f" (the future poisoned from decision {k + 1}, bar {bar + 1}, on)"


def _scalar(value: torch.Tensor) -> str:
    return repr(value.item())


def _feature_labels(assembled: Any) -> list[str]:
    """Each observation column as a finding names it: ``feature.column [its plugin]``."""
    comps = assembled.components
    owner = {f"{f.name}.{col}": f.origin for f, spec in zip(comps.features, comps.feature_specs) for col in spec.names}
    return [f"{name} [{owner[name]}]" for name in comps.feature_names]


def _actions(flags: torch.Tensor) -> str:
    return "[" + ", ".join(ACTION_NAMES[i] for i in torch.nonzero(flags).flatten().tolist()) + "]"


def probe_decisions(
    assembled: Any,
    rows: Sequence[EnvState],
    rebuild: Callable[[Bars], Any],
    modes: Sequence[str] = POISON_MODES,
    seed: int = 0,
    on_view: Callable[[str, EnvState, DecisionView, DecisionView], list[Leak]] | None = None,
    histories: Sequence[torch.Tensor] | None = None,
) -> list[Leak]:
    """Recompute each one-row decision state in ``rows`` under every poisoning mode.

    ``rebuild(bars)`` must assemble the same experiment on other bars (same trades, same
    device) - normally ``lambda b: assemble(resolved, b, trades=assembled.trades)``.
    ``on_view`` may add checks on the two views (the audit compares the policy's action).
    ``histories[i]`` (optional) are the actions row ``i``'s trade was given at its earlier
    decisions: the engine then replays the trade on the poisoned bars too, and its position
    state must match at every decision up to the row's (:func:`compare_paths`).
    """
    if histories is not None and len(histories) != len(rows):
        raise ValueError(f"{len(histories)} action histories for {len(rows)} rows")
    leaks: list[Leak] = []
    tick = progress_counter("probed {done} of {total} decisions", len(rows))  # a long audit says how far it is
    for i, row in enumerate(rows):
        history = None if histories is None else histories[i]
        original = decision_view(assembled, row, history)
        view_of = lambda bars, row=row, history=history: decision_view(rebuild(bars), row, history)  # noqa: E731
        found = _probe_row(assembled, row, original, view_of, modes, seed + i, on_view)
        if any(leak.kind in ("feature", "mask", "guard", "state") for leak in found):
            found = _recheck_with_fixed_rng(assembled, row, view_of, modes, seed + i, on_view)
        leaks.extend(found)
        tick(i + 1)
    return leaks


def _probe_row(assembled: Any, row: EnvState, original: DecisionView, view_of: Callable[[Bars], DecisionView],
               modes: Sequence[str], poison_seed: int, on_view: Any) -> list[Leak]:
    """Every difference between ``original`` and the row's view on the bars poisoned by each mode."""
    bar = int(row.bar[0])
    found: list[Leak] = []
    for mode in modes:
        try:
            view = view_of(poison_bars(assembled.bars, bar, mode, seed=poison_seed))
        except (IndexError, ValueError, RuntimeError, ExitcoreError) as exc:
            # reading past the truncated end is itself proof of looking ahead (the unpoisoned
            # view was computed without error, so only the future can make this one fail; ValueError:
            # the replay's environment refuses a trade the poisoned episode table calls invalid)
            found.append(Leak(mode, int(row.trade[0]), int(row.k[0]), bar, "error", "a component",
                              describe_exception(exc)))
            continue
        found.extend(compare_views(original, view, assembled, mode, row))
        if on_view is not None:
            found.extend(on_view(mode, row, original, view))
    return found


UNSTABLE_WORDS = ("it does not give the same result twice on the same bars, even with the random generators "
                  "seeded alike (state kept between calls?), so the audit cannot tell whether it reads the future")


def _recheck_with_fixed_rng(assembled: Any, row: EnvState, view_of: Callable[[Bars], DecisionView],
                            modes: Sequence[str], poison_seed: int, on_view: Any) -> list[Leak]:
    """The row probed again with torch's, numpy's and Python's generators seeded alike before
    every rebuild and view, against a view rebuilt on the unpoisoned bars the same way.

    A component drawing random numbers (in ``build`` or per call) then draws the same ones
    whatever the bars, so a difference left is the bars' doing: a leak, also in a component
    that is random as well. Only a component that differs between two such unpoisoned rebuilds
    (state kept between calls) cannot be tested: it is reported ``"unstable"``, and the policy's
    findings at this decision with it (its input changed for that reason)."""
    seeded = lambda bars: _with_fixed_rng(lambda: view_of(bars))  # noqa: E731
    control = seeded(assembled.bars)
    unstable = compare_views(control, seeded(assembled.bars), assembled, "control", row)
    found = _probe_row(assembled, row, control, seeded, modes, poison_seed, on_view)
    if not unstable:
        return found
    untestable = {(leak.kind, leak.component) for leak in unstable}
    kept = [leak for leak in found if (leak.kind, leak.component) not in untestable and leak.kind != "policy"]
    return kept + [attrs.evolve(leak, kind="unstable", component=f"{leak.kind} {leak.component}",
                                detail=f"{leak.detail}: {UNSTABLE_WORDS}") for leak in unstable]


@contextlib.contextmanager
def fixed_rng(seed: int = 0) -> Iterator[None]:
    """torch's (CPU and current CUDA device), numpy's and Python's global generators seeded with
    ``seed`` inside, restored after: the audit's rebuilds draw the same random numbers."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)  # numpy takes 32 bits; a run's seed may be larger (seed_everything does the same)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _with_fixed_rng(fn: Callable[[], Any]) -> Any:
    with fixed_rng():
        return fn()


def sample_decision_rows(env: Any, n_steps: int, actions: Callable[[torch.Tensor], torch.Tensor], every: int = 1) -> list[EnvState]:
    """Step a sweep-mode env with ``actions(mask)`` and collect live decision rows."""
    rows: list[EnvState] = []
    obs, mask = env.reset()
    for step in range(n_steps):
        live = torch.nonzero(~env.state.done).flatten().tolist()
        if not live:
            break
        if step % every == 0:
            rows.extend(state_row(env.state, i) for i in live)
        obs, mask, _, _ = env.step(actions(mask))
    return rows
