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

    rows = torch.arange(env.n_envs, device=env.device)
    untried = set(range(N_ACTIONS))  # never sampled: the guards have not seen it
    unexecuted = set(range(N_ACTIONS))  # never executed (a guard blocked it): the reward terms have not
    for step in range(max_steps):
        live = ~env.state.done
        want = (rows + step) % N_ACTIONS
        allowed = mask.gather(1, want[:, None]).squeeze(1)
        action = torch.where(allowed, want, torch.full_like(want, HOLD))
        untried -= set(action[live].unique().tolist())
        _, mask, _, _ = env.step(action)
        unexecuted -= set(env.after.action[live].unique().tolist())
        # until every action has been sampled and executed (a guard may block one for a while)
        if (not untried and not unexecuted and step + 1 >= N_ACTIONS) or bool(env.state.done.all()):
            break
    return sorted(untried)


def first_steps(assembled: Any, n_trades: int = FIRST_TRADES) -> None:
    """Sweep the first ``n_trades`` fillable trades (:func:`step_every_action`) on components
    built afresh for it, with every global random generator (torch's, numpy's, Python's) as it
    was: the components training uses, and any generator or state they keep, are untouched, so
    the run's numbers are the same as without the sweep. Raises the
    :class:`~exitcore.errors.PluginError` of a component that fails."""
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
        _obs, mask = env.reset(seed=0)
        step_every_action(env, mask, max_steps=8)


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
