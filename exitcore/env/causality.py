"""Prove the timeline contract for a decision: recompute it with the future poisoned.

For a decision at bar ``b`` (an :class:`EnvState` row), the observation, the action mask and
every guard's decision for every action are recomputed after

* ``truncate`` - the bars after ``b`` are removed,
* ``nan`` - every bar after ``b`` is NaN,
* ``huge`` - every bar after ``b`` is a huge price (1e6),
* ``random_walk`` - the bars after ``b`` are replaced by an unrelated random walk,

with every component **rebuilt from its factory** on the poisoned bars (so precomputation in
``build``, such as a centred moving average or a normalisation fitted on all data, is
checked too). Anything that is not bit-identical is a leak, reported with the feature
column or the plugin responsible. The look-ahead audit (``exitcore audit``) and the tests use
this module.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from exitcore.actions import ACTION_NAMES, N_ACTIONS
from exitcore.data.bars import PRICE_COLUMNS, Bars
from exitcore.env.state import EnvState

POISON_MODES = ("truncate", "nan", "huge", "random_walk")


@attrs.frozen
class Leak:
    """A difference between a decision's view and its view with the future poisoned."""

    mode: str  #: the poisoning that exposed it
    trade: int  #: row in the trade table
    k: int  #: decision index
    bar: int  #: decision bar
    kind: str  #: "feature", "mask", "guard", "error" or "unstable" (differs on the same bars too)
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
    future = frame.index[after + 1 :]
    if mode == "nan":
        frame.loc[future, list(PRICE_COLUMNS)] = np.nan
    elif mode == "huge":
        frame.loc[future, list(PRICE_COLUMNS)] = 1e6
    elif mode == "random_walk":
        rng = np.random.default_rng(seed)
        last = float(frame["close"].iloc[after])
        step = float(np.nanstd(np.diff(frame["close"].to_numpy()[: after + 1]))) or last * 1e-3
        close = last + np.cumsum(rng.normal(0.0, 5 * step, n_future))
        open_ = np.r_[last, close[:-1]]
        wick = np.abs(rng.normal(0.0, 5 * step, (2, n_future)))
        frame.loc[future, "open"] = open_
        frame.loc[future, "close"] = close
        frame.loc[future, "high"] = np.maximum(open_, close) + wick[0]
        frame.loc[future, "low"] = np.minimum(open_, close) - wick[1]
    else:
        raise ValueError(f"unknown poison mode {mode!r}; use one of {POISON_MODES}")
    return attrs.evolve(bars, frame=frame)


@attrs.frozen(eq=False)
class DecisionView:
    """What the agent's side of the environment computed for one decision row."""

    obs: torch.Tensor  #: [F] float32
    mask: torch.Tensor  #: [A] bool
    guards: torch.Tensor  #: [G, A] bool: guard g blocks action a


def decision_view(assembled: Any, state: EnvState) -> DecisionView | None:
    """Observation, mask and guard decisions of ``assembled``'s components for a one-row state."""
    comps = assembled.components
    market = assembled.market
    obs = torch.cat([f.fn(market, state) for f in comps.features], dim=1)[0]
    mask = torch.ones(N_ACTIONS, dtype=torch.bool, device=market.device)
    for mk in comps.masks:
        mask = mask & mk.fn(state)[0]
    guards = torch.zeros(len(comps.guards), N_ACTIONS, dtype=torch.bool, device=market.device)
    for gi, g in enumerate(comps.guards):
        for a in range(N_ACTIONS):
            guards[gi, a] = g.fn(state, torch.full((1,), a, dtype=torch.int64, device=market.device))[0]
    return DecisionView(obs, mask, guards)


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
    names = comps.feature_names
    owner = {}
    for f, spec in zip(comps.features, comps.feature_specs):
        for col in spec.names:
            owner[f"{f.name}.{col}"] = f.origin
    # bitwise comparison: NaN != NaN is a difference, which is what we want
    diff_cols = torch.nonzero(original.obs.view(torch.int32) != poisoned.obs.view(torch.int32)).flatten().tolist()
    for c in diff_cols:
        leaks.append(Leak(mode, trade, k, bar, "feature", f"{names[c]} [{owner[names[c]]}]",
                          f"{float(original.obs[c])!r} became {float(poisoned.obs[c])!r}"))
    if not torch.equal(original.mask, poisoned.mask):
        leaks.append(Leak(mode, trade, k, bar, "mask", ", ".join(m.label() for m in comps.masks),
                          f"allowed {_actions(original.mask)} became {_actions(poisoned.mask)}"))
    for gi, g in enumerate(comps.guards):
        if not torch.equal(original.guards[gi], poisoned.guards[gi]):
            leaks.append(Leak(mode, trade, k, bar, "guard", g.label(),
                              f"blocked {_actions(original.guards[gi])} became {_actions(poisoned.guards[gi])}"))
    return leaks


def _actions(flags: torch.Tensor) -> str:
    return "[" + ", ".join(ACTION_NAMES[i] for i in torch.nonzero(flags).flatten().tolist()) + "]"


def probe_decisions(
    assembled: Any,
    rows: Sequence[EnvState],
    rebuild: Callable[[Bars], Any],
    modes: Sequence[str] = POISON_MODES,
    seed: int = 0,
    on_view: Callable[[str, EnvState, DecisionView, DecisionView], list[Leak]] | None = None,
) -> list[Leak]:
    """Recompute each one-row decision state in ``rows`` under every poisoning mode.

    ``rebuild(bars)`` must assemble the same experiment on other bars (same trades, same
    device) - normally ``lambda b: assemble(resolved, b, trades=assembled.trades)``.
    ``on_view`` may add checks on the two views (the audit compares the policy's action).
    """
    leaks: list[Leak] = []
    for i, row in enumerate(rows):
        original = decision_view(assembled, row)
        view_of = lambda bars, row=row: decision_view(rebuild(bars), row)  # noqa: E731
        found = _probe_row(assembled, row, original, view_of, modes, seed + i, on_view)
        if any(leak.kind in ("feature", "mask", "guard") for leak in found):
            found = _recheck_with_fixed_rng(assembled, row, view_of, modes, seed + i, on_view)
        leaks.extend(found)
    return leaks


def _probe_row(assembled: Any, row: EnvState, original: DecisionView, view_of: Callable[[Bars], DecisionView],
               modes: Sequence[str], poison_seed: int, on_view: Any) -> list[Leak]:
    """Every difference between ``original`` and the row's view on the bars poisoned by each mode."""
    bar = int(row.bar[0])
    found: list[Leak] = []
    for mode in modes:
        try:
            view = view_of(poison_bars(assembled.bars, bar, mode, seed=poison_seed))
        except (IndexError, RuntimeError) as exc:
            # reading past the truncated end is itself proof of looking ahead
            found.append(Leak(mode, int(row.trade[0]), int(row.k[0]), bar, "error", "a component",
                              f"{type(exc).__name__}: {exc}"))
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
        np.random.seed(seed)
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
