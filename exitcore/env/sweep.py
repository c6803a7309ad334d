"""A sweep of the first steps of an experiment's trades with every action the masks allow.

``exitcore experiments check --build`` sweeps every trade; ``exitcore run`` sweeps its first
few before it records the run, so a component whose output has the wrong shape, dtype or
values at its first step is refused as bad input (exit 2, nothing recorded, no trial) rather
than failing the run it would otherwise have started.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

#: how many trades ``exitcore run`` sweeps before it records the run (enough for every action
#: in every row pattern; a failure on a rarer trade still stops the training, naming the component)
FIRST_TRADES = 64


#: rows of a sweep whose features, masks and guards are also computed among copies of
#: themselves (each against its own value in the batch): a few suffice, as a coupling usually
#: shows in most rows
ALONE_ROWS = 8


def check_rows_alone(env: Any, action: torch.Tensor) -> None:
    """Refuse a feature, mask or guard whose output for a row changes when the other rows of the
    batch are replaced by copies of that row (:class:`~exitcore.errors.PluginError`).

    The rows of a batch are other trades at other times, some of them later: an evaluation
    steps every test trade at once, so a component that reads another row (the close another
    trade is sitting on, a z-score across the batch) can see the future, while the look-ahead
    audit, which replays one trade at a time, cannot see it (trial T). Checked on up to
    :data:`ALONE_ROWS` live rows of the environment's current state, for ``action`` (the
    guards'). The batch keeps its size and every global random generator is seeded alike before
    each call, so a row-wise kernel rounds the row as before and a random component draws the
    same numbers for it (noise cannot hide a coupling); a component whose output still changes
    from one call to the next on the same batch (it keeps state, or draws from a generator of
    its own) has no row to compare and is left to the audit."""
    from exitcore.errors import PluginError

    state, comps = env.state, env.components
    rows = torch.nonzero(~state.done).flatten()[:ALONE_ROWS].tolist()
    if len(rows) < 2:  # one live row: its batch has no other row to read
        return
    calls = ([(f"feature {f.label()}", lambda s, a, f=f: f.fn(env.market, s)) for f in comps.features]
             + [(f"action mask {m.label()}", lambda s, a, m=m: m.fn(s)) for m in comps.masks]
             + [(f"exit guard {g.label()}", lambda s, a, g=g: g.fn(s, a)) for g in comps.guards])
    for label, call in calls:
        try:
            batch, again = _seeded(call, state, action), _seeded(call, state, action)
        except Exception:  # noqa: BLE001 - the step that follows calls it as the env does, and blames it
            continue
        # not a tensor: the step names it; a changing output: no row can be compared
        if not isinstance(batch, torch.Tensor) or not isinstance(again, torch.Tensor) or not _same(batch, again):
            continue
        for row in rows:
            copies = torch.full((state.n,), row, dtype=torch.int64, device=state.trade.device)
            try:
                out = _seeded(call, _rows(state, copies), action[copies])
            except Exception as exc:  # noqa: BLE001 - named: the audit replays trades one at a time
                raise PluginError(f"{label}: raised {type(exc).__name__} on a batch of copies of one row ({exc}); "
                                  "the look-ahead audit replays trades one at a time, so a component must take "
                                  "any batch") from exc
            mine, alone = batch[row:row + 1], out[row:row + 1] if isinstance(out, torch.Tensor) else out
            if not isinstance(alone, torch.Tensor) or not _same(alone, mine):
                raise PluginError(
                    f"{label}: its output for one row (trade {int(state.trade[row])} at bar {int(state.bar[row])}) "
                    f"is {_values(mine)} in a batch of {state.n} rows and {_values(alone)} when the other rows are "
                    "copies of it: a feature, mask or guard must read only its own row. The other rows are "
                    "other trades at other times, some later (an evaluation steps every test trade at once), so "
                    "reading them can see the future, and the look-ahead audit, which replays one trade at a "
                    "time, cannot")


def _seeded(call: Any, state: Any, action: torch.Tensor) -> Any:
    """``call(state, action)`` with the global generators seeded alike, and restored after (the
    audit's :func:`~exitcore.env.causality.fixed_rng`)."""
    from exitcore.env.causality import fixed_rng

    with fixed_rng():
        return call(state, action)


def _rows(state: Any, index: torch.Tensor) -> Any:
    """The state of the rows ``index`` (repeats allowed)."""
    from exitcore.env.state import EnvState

    return EnvState.from_tensors({k: v[index] for k, v in state.tensors().items()})


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal outputs: bit for bit for masks and guards, to 1e-5 for features (a kernel may still
    round a row otherwise when its neighbours differ)."""
    if a.shape != b.shape:
        return False
    if a.dtype == torch.bool or b.dtype == torch.bool:
        return torch.equal(a, b)
    return bool(torch.allclose(a.double(), b.double(), rtol=1e-5, atol=1e-8, equal_nan=True))


def _values(row: Any) -> str:
    """A row's values for a message (at most 6)."""
    if not isinstance(row, torch.Tensor):
        return repr(row)
    flat = row.flatten().tolist()
    shown = ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in flat[:6])
    return f"[{shown}{', ...' if len(flat) > 6 else ''}]"


def step_every_action(env, mask, max_steps: int = 32) -> list[int]:
    """Step a sweep environment (one env per trade, no resets) until every action has been
    sampled and executed (not blocked by a guard) in some live row where the masks allow it,
    or every episode has ended, or
    ``max_steps`` steps; return the actions never stepped (the masks never allowed them).

    Row ``i`` tries action ``(i + step) % N_ACTIONS`` and holds where the mask forbids it: each
    step covers every action at once, so a guard or reward term that fails only when EXIT (or
    a partial exit) is chosen fails here, in a few steps, rather than after a run's training.
    Masked actions are never stepped, as training never samples them.
    """
    from exitcore.actions import HOLD, N_ACTIONS

    env.check_every_step()  # a term may fail only at a later decision (the first partial exit)
    rows = torch.arange(env.n_envs, device=env.device)
    untried = set(range(N_ACTIONS))  # never sampled: the guards have not seen it
    unexecuted = set(range(N_ACTIONS))  # never executed (a guard blocked it): the reward terms have not
    for step in range(max_steps):
        live = ~env.state.done
        want = (rows + step) % N_ACTIONS
        allowed = mask.gather(1, want[:, None]).squeeze(1)
        action = torch.where(allowed, want, torch.full_like(want, HOLD))
        if step in (0, 4):  # at the entry bar's close, and four bars on (past v4's 3 bars without EXIT)
            check_rows_alone(env, action)
        untried -= set(action[live].unique().tolist())
        _, mask, _, _ = env.step(action)
        unexecuted -= set(env.after.action[live].unique().tolist())
        # until every action has been sampled and executed (a guard may block one for a while)
        if (not untried and not unexecuted and step + 1 >= N_ACTIONS) or bool(env.state.done.all()):
            break
    return sorted(untried)


def first_steps(assembled: Any, n_trades: int = FIRST_TRADES) -> None:
    """Sweep the first ``n_trades`` fillable trades (:func:`step_every_action`) on components
    built afresh for it, and pass their first observations through the experiment's policy
    built afresh (:func:`~exitcore.ppo.policy.check_policy_on`), with every global random
    generator (torch's, numpy's, Python's) as it was: the components training uses, and any
    generator or state they keep, are untouched, so the run's numbers are the same as without
    the sweep. Raises the :class:`~exitcore.errors.PluginError` of a component
    or policy that fails."""
    import attrs

    from exitcore.env.components import build_components

    valid = torch.nonzero(assembled.table.valid).flatten()[:n_trades]
    if valid.numel() == 0:
        return
    with _random_state_kept(assembled.device):
        # the run's own assembly compared the factories' writes value by value already: counters here
        components = build_components(assembled.resolved, assembled.ctx, exact_write_check=False)
        fresh = attrs.evolve(assembled, components=components)
        env = fresh.make_env(valid, auto_reset=False)
        obs, mask = env.reset(seed=0)
        # a policy that breaks its contract: refused here, not in a run recorded as a failed trial
        from exitcore.ppo.policy import check_policy_on

        check_policy_on(assembled.resolved, obs)
        step_every_action(env, mask)


@contextlib.contextmanager
def _random_state_kept(device: torch.device) -> Iterator[None]:
    """Every global random generator as it was before the block (a plugin may draw from them)."""
    py, np_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)
