"""Generalised advantage estimation, as a pure function."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def compute_gae(rewards: Tensor, values: Tensor, dones: Tensor, last_value: Tensor,
                gamma: float, gae_lambda: float) -> tuple[Tensor, Tensor]:
    """GAE(gamma, lambda) advantages and value targets for a time-major rollout.

    Shapes: ``rewards``, ``values`` [T, N] float; ``dones`` [T, N] bool, True where the episode
    ended *with* step ``t`` (the observation after it starts a new episode, so nothing is
    bootstrapped across it); ``last_value`` [N], the value of the observation after the last
    step. Returns ``(advantages [T, N], returns [T, N])`` with ``returns = advantages + values``::

        delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)
        A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
    """
    not_done = (~dones).to(values.dtype)
    advantages = torch.empty_like(values)
    next_advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(values.shape[0])):
        delta = rewards[t] + gamma * next_value * not_done[t] - values[t]
        next_advantage = delta + gamma * gae_lambda * not_done[t] * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values
