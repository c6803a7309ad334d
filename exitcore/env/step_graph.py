"""The compiled training step replayed from a CUDA graph.

On a GPU a compiled step of a few hundred envs is a handful of small kernels, and launching
them costs far more than running them (~0.6 ms per step on an H100 at 256 envs). A CUDA graph
launches them all at once. Only the packed, compiled training path is graphed, after its first
steps ran and were checked (exitcore/env/compile_check.py), and only when the trainer asks for
it (:meth:`VecExitEnv.use_cuda_graph`).

The graph replays the compiled step on *static* tensors: the packed state tables, the trade
draws' key, the running episode returns and the statistics accumulators are read and written in
place, and the step's outputs (observations, masks, rewards, dones, the post-transition state)
are static tensors that the next replay overwrites; the trainer copies them out at once. Code
that replaces one of the static tensors (``reset``, ``load_state_dict``, the ``state``
setter) makes :meth:`StepGraph.matches` false, and the next step captures a new graph.
"""

from __future__ import annotations

from typing import Any

import torch


class StepGraph:
    """One captured compiled training step of ``env`` (a packed, compiled :class:`VecExitEnv`)."""

    def __init__(self, env: Any, action: torch.Tensor):
        # The graph owns its inputs: fresh copies that it updates in place on every replay.
        env._state_tables = tuple(t.clone() for t in env._state_tables)
        env._key = env._key.clone()
        env._episode_return = env._episode_return.clone()
        self.tables, self.key, self.episode_return = env._state_tables, env._key, env._episode_return
        self.stats = env._stats
        self.stats.reserve(env.n_envs)  # no allocation that must *run* may happen inside the capture
        self.counts, self.sums = env._stats.counts, env._stats.sums
        self.action = action.to(torch.int64).clone()
        core = env._compiled_core

        def step() -> tuple[Any, ...]:
            state, after, obs, mask, reward, done, episode_return, stats_delta, _invalid, key = core(
                self.tables, self.action, self.key, self.episode_return)
            for table, new in zip(self.tables, state):
                table.copy_(new)
            self.key.copy_(key)
            self.episode_return.copy_(episode_return)
            self.stats.add(*stats_delta)
            return after, obs, mask, reward, done

        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.after, self.obs, self.mask, self.reward, self.done = step()

    def matches(self, env: Any) -> bool:
        """Whether ``env`` still holds the tensors this graph reads and writes."""
        return (env._state_tables is self.tables and env._key is self.key and env._episode_return is self.episode_return
                and env._stats is self.stats and env._stats.counts is self.counts and env._stats.sums is self.sums)

    def replay(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step with ``action``; returns the static ``(obs, mask, reward, done)``."""
        self.action.copy_(action)
        self.graph.replay()
        return self.obs, self.mask, self.reward, self.done
