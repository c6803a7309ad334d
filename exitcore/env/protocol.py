"""What the PPO trainer needs from an environment (``VecExitEnv`` and test environments).

Everything is batched over ``n_envs`` environments and lives on ``device``; the trainer never
loops over environments and never reads a tensor back to the host inside the rollout.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class MaskedVecEnv(Protocol):
    """A vector environment with action masks and automatic episode reset.

    * ``reset(seed)`` starts every environment on a new episode and returns
      ``(obs [N, obs_dim] float32, mask [N, n_actions] bool)``.
    * ``step(action [N] int64)`` executes one action per environment and returns
      ``(obs, mask, reward [N] float32, done [N] bool)``; where ``done`` the episode ended in
      this step and ``obs``/``mask`` already belong to the next episode (auto-reset), so
      ``done`` cuts the bootstrap in GAE. Every ``mask`` row allows at least one action.
    * ``episode_stats(reset=True)`` returns plain numbers about the episodes and actions
      since the last call (one host synchronisation; call it once per update): at least
      ``episodes``, ``ep_return_mean``, ``ep_length_mean``; ``VecExitEnv`` adds action
      fractions, blocked rates per action and guard, exit reasons and ambiguous bars.
    * ``state_dict()``/``load_state_dict()`` capture everything needed to continue exactly
      (the state of every environment and the environment's random generator), so a resumed
      training run is bit-identical to an uninterrupted one.
    """

    n_envs: int
    obs_dim: int
    n_actions: int
    device: torch.device

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]: ...

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def episode_stats(self, reset: bool = True) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
