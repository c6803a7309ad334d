"""Small masked vector environments with known optima, for tests and benchmarks.

Both implement :class:`~exitcore.env.protocol.MaskedVecEnv` in plain batched torch (no Python
loop over environments, no host synchronisation in ``step``), keep their randomness in their
own generator, and count *mask violations* (a masked action that was taken): a correct masked
policy never produces one.

* :class:`MaskedBanditEnv`: one-step episodes; a context, a reward table, and a random mask that
  often removes the best action. The optimum is the best *allowed* action
  (:meth:`MaskedBanditEnv.optimal_return` computes its expectation exactly).
* :class:`MaskedChainEnv`: a position walks along a chain of ``len(values)`` bars; HOLD moves on,
  EXIT is paid ``values[k]`` and ends the episode, and EXIT is masked before ``min_exit``
  (like the ``min_exit_bar`` mask). The tempting early exits are masked, so the optimum
  is the best exit at or after ``min_exit``: it needs multi-step credit assignment (GAE).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


class _StatsMixin:
    """Episode statistics accumulated on the device; read back once per ``episode_stats`` call."""

    device: torch.device
    n_envs: int
    n_actions: int

    def _init_stats(self) -> None:
        self._ep_return = torch.zeros(self.n_envs, device=self.device)
        self._ep_length = torch.zeros(self.n_envs, dtype=torch.int64, device=self.device)
        # episodes, sum of returns, sum of lengths, mask violations, then action counts
        self._acc = torch.zeros(4 + self.n_actions, dtype=torch.float64, device=self.device)

    def _record(self, action: Tensor, mask: Tensor, reward: Tensor, done: Tensor) -> None:
        self._ep_return += reward
        self._ep_length += 1
        violated = ~mask.gather(1, action.unsqueeze(1)).squeeze(1)
        donef = done.to(torch.float64)
        self._acc[0] += donef.sum()
        self._acc[1] += (self._ep_return.to(torch.float64) * donef).sum()
        self._acc[2] += (self._ep_length.to(torch.float64) * donef).sum()
        self._acc[3] += violated.sum()
        self._acc[4:] += torch.bincount(action, minlength=self.n_actions).to(torch.float64)
        self._ep_return = torch.where(done, torch.zeros_like(self._ep_return), self._ep_return)
        self._ep_length = torch.where(done, torch.zeros_like(self._ep_length), self._ep_length)

    def episode_stats(self, reset: bool = True) -> dict[str, Any]:
        """``episodes``, ``ep_return_mean``, ``ep_length_mean``, ``mask_violations``, ``action_counts``."""
        acc = self._acc.tolist()
        episodes = acc[0]
        stats = {
            "episodes": int(episodes),
            "ep_return_mean": acc[1] / episodes if episodes else float("nan"),
            "ep_length_mean": acc[2] / episodes if episodes else float("nan"),
            "mask_violations": int(acc[3]),
            "action_counts": {str(a): int(c) for a, c in enumerate(acc[4:])},
        }
        if reset:
            self._acc.zero_()
        return stats

    def _stats_state(self) -> dict[str, Tensor]:
        return {"ep_return": self._ep_return, "ep_length": self._ep_length, "acc": self._acc}

    def _load_stats_state(self, state: dict[str, Any]) -> None:
        self._ep_return = state["ep_return"].to(self.device).clone()
        self._ep_length = state["ep_length"].to(self.device).clone()
        self._acc = state["acc"].to(self.device).clone()


class MaskedBanditEnv(_StatsMixin):
    """Contextual bandit with masks: every step is a one-step episode.

    ``rewards`` [n_contexts, n_actions] is the reward table (default: seeded random). Action 0
    is always allowed; every other action is allowed with probability ``p_allowed``. The
    observation is the context's one-hot vector, or with ``obs_dim`` a fixed random embedding
    of that size (to size the network input like a real feature vector).
    """

    def __init__(self, n_envs: int, n_contexts: int = 4, n_actions: int = 5, p_allowed: float = 0.5,
                 rewards: Tensor | None = None, obs_dim: int | None = None, device: Any = "cpu", table_seed: int = 1234):
        self.n_envs, self.n_actions, self.n_contexts = n_envs, n_actions, n_contexts
        self.device = torch.device(device)
        self.p_allowed = p_allowed
        table_gen = torch.Generator().manual_seed(table_seed)
        if rewards is None:
            rewards = torch.rand(n_contexts, n_actions, generator=table_gen)
        self.rewards = torch.as_tensor(rewards, dtype=torch.float32).to(self.device)
        if obs_dim is None:
            self.obs_dim = n_contexts
            self.embedding = torch.eye(n_contexts, device=self.device)
        else:
            self.obs_dim = obs_dim
            self.embedding = torch.randn(n_contexts, obs_dim, generator=table_gen).to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0)
        self.context = torch.zeros(n_envs, dtype=torch.int64, device=self.device)
        self.mask = torch.ones(n_envs, n_actions, dtype=torch.bool, device=self.device)
        self._init_stats()

    def _draw(self) -> tuple[Tensor, Tensor]:
        self.context = torch.randint(self.n_contexts, (self.n_envs,), generator=self.generator, device=self.device)
        allowed = torch.rand(self.n_envs, self.n_actions, generator=self.generator, device=self.device) < self.p_allowed
        allowed[:, 0] = True
        self.mask = allowed
        return self.embedding[self.context], self.mask

    def reset(self, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """New contexts and masks for every env (``seed`` reseeds the env's generator)."""
        if seed is not None:
            self.generator.manual_seed(seed)
        self._init_stats()
        return self._draw()

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pay ``rewards[context, action]``; every episode ends; draw the next context and mask."""
        reward = self.rewards[self.context, action]
        done = torch.ones(self.n_envs, dtype=torch.bool, device=self.device)
        self._record(action, self.mask, reward, done)
        obs, mask = self._draw()
        return obs, mask, reward, done

    def _expected(self, value_of_allowed: Any) -> float:
        """Exact expectation over contexts (uniform) and masks of ``value_of_allowed(rewards[:, allowed])``."""
        table = self.rewards.cpu().double()
        total = 0.0
        for bits in itertools.product((False, True), repeat=self.n_actions - 1):
            allowed = torch.tensor((True, *bits))  # action 0 is always allowed
            prob = 1.0
            for b in bits:
                prob *= self.p_allowed if b else 1 - self.p_allowed
            total += prob * value_of_allowed(table[:, allowed]).mean().item()
        return total

    def optimal_return(self) -> float:
        """Expected reward of the best-allowed-action policy (exact)."""
        return self._expected(lambda r: r.max(dim=1).values)

    def random_return(self) -> float:
        """Expected reward of the uniform policy over allowed actions (exact)."""
        return self._expected(lambda r: r.mean(dim=1))

    def state_dict(self) -> dict[str, Any]:
        """Generator, current contexts and masks, and the statistics accumulators."""
        return {"generator": self.generator.get_state(), "context": self.context, "mask": self.mask, **self._stats_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.set_state(state["generator"].cpu())
        self.context = state["context"].to(self.device).clone()
        self.mask = state["mask"].to(self.device).clone()
        self._load_stats_state(state)


#: default chain: the tempting exits at bars 0-1 are masked; the best allowed exit is at bar 5
DEFAULT_CHAIN = (1.0, 0.9, 0.1, 0.2, 0.3, 0.8, 0.4, 0.2)


class MaskedChainEnv(_StatsMixin):
    """When to exit: position ``k`` walks along ``values``; action 1 (EXIT) pays ``values[k]``.

    Action 0 (HOLD) and any further action (``n_actions > 2``) move to ``k + 1`` and pay 0; at
    the last bar every action closes the episode and pays ``values[-1]``. EXIT is masked while
    ``k < min_exit``. The observation is the one-hot of ``k``. Episodes start at ``k = 0``.
    """

    def __init__(self, n_envs: int, values: Sequence[float] = DEFAULT_CHAIN, min_exit: int = 2,
                 n_actions: int = 2, device: Any = "cpu"):
        self.n_envs, self.n_actions = n_envs, n_actions
        self.device = torch.device(device)
        self.values = torch.tensor(values, dtype=torch.float32, device=self.device)
        self.length = len(values)
        self.obs_dim = self.length
        self.min_exit = min_exit
        self.eye = torch.eye(self.length, device=self.device)
        self.k = torch.zeros(n_envs, dtype=torch.int64, device=self.device)
        self._init_stats()

    def _observe(self) -> tuple[Tensor, Tensor]:
        mask = torch.ones(self.n_envs, self.n_actions, dtype=torch.bool, device=self.device)
        mask[:, 1] = self.k >= self.min_exit
        return self.eye[self.k], mask

    def optimal_return(self) -> float:
        """Undiscounted return of the best exit at or after ``min_exit``."""
        return float(self.values[self.min_exit:].max())

    def reset(self, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """Every env at bar 0 (the chain is deterministic: ``seed`` is unused)."""
        self.k.zero_()
        self._init_stats()
        return self._observe()

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Exit (paid ``values[k]``) or move on; the last bar closes the position."""
        _, mask = self._observe()
        last = self.k == self.length - 1
        done = (action == 1) | last
        reward = torch.where(done, self.values[self.k], torch.zeros_like(self.values[self.k]))
        self._record(action, mask, reward, done)
        self.k = torch.where(done, torch.zeros_like(self.k), self.k + 1)
        obs, mask = self._observe()
        return obs, mask, reward, done

    def state_dict(self) -> dict[str, Any]:
        """Positions and the statistics accumulators."""
        return {"k": self.k, **self._stats_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.k = state["k"].to(self.device).clone()
        self._load_stats_state(state)
