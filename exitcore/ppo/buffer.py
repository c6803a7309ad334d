"""Preallocated, time-major rollout storage on the training device."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Minibatch(NamedTuple):
    """One minibatch of flattened rollout samples, everything the PPO loss reads ([B, ...])."""

    obs: Tensor  # [B, obs_dim]
    masks: Tensor  # [B, A] bool: the mask that sampled ``actions``
    actions: Tensor  # [B] int64
    logprobs: Tensor  # [B] log-prob of ``actions`` when sampled
    values: Tensor  # [B] value estimate when sampled
    advantages: Tensor  # [B]
    returns: Tensor  # [B] value targets


class RolloutBuffer:
    """``n_steps`` x ``n_envs`` samples, allocated once and overwritten every update.

    Row ``t`` holds the observation and mask the policy saw at step ``t``, the action it sampled
    with its log-probability and value, and the reward and ``done`` the environment returned.
    The mask is stored so the update recomputes log-probabilities under the mask that sampled.
    """

    def __init__(self, n_steps: int, n_envs: int, obs_dim: int, n_actions: int, device: torch.device):
        shape = (n_steps, n_envs)
        self.n_steps, self.n_envs = n_steps, n_envs
        self.obs = torch.zeros(*shape, obs_dim, dtype=torch.float32, device=device)
        self.masks = torch.zeros(*shape, n_actions, dtype=torch.bool, device=device)
        self.actions = torch.zeros(shape, dtype=torch.int64, device=device)
        self.logprobs = torch.zeros(shape, dtype=torch.float32, device=device)
        self.values = torch.zeros(shape, dtype=torch.float32, device=device)
        self.rewards = torch.zeros(shape, dtype=torch.float32, device=device)
        self.dones = torch.zeros(shape, dtype=torch.bool, device=device)
        self.advantages = torch.zeros(shape, dtype=torch.float32, device=device)
        self.returns = torch.zeros(shape, dtype=torch.float32, device=device)

    @property
    def size(self) -> int:
        """Samples per rollout: ``n_steps * n_envs``."""
        return self.n_steps * self.n_envs

    def minibatch(self, index: Tensor) -> Minibatch:
        """The samples at flat positions ``index`` [B] (int64, on the buffer's device)."""

        def take(x: Tensor) -> Tensor:
            # index_select on the flattened view (no copy) is 3-5x faster on CPU than x[index]
            return x.reshape(self.size, *x.shape[2:]).index_select(0, index)

        return Minibatch(
            obs=take(self.obs),
            masks=take(self.masks),
            actions=take(self.actions),
            logprobs=take(self.logprobs),
            values=take(self.values),
            advantages=take(self.advantages),
            returns=take(self.returns),
        )
