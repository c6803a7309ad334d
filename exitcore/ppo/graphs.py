"""CUDA graphs for the trainer's two hot loops: the rollout's policy step and a minibatch update.

At v4's sizes (256 envs, minibatches of 8,192 rows) a GPU finishes each kernel in microseconds,
so a rollout step or a minibatch update costs what the host needs to launch its few dozen
kernels (measured on an H100: ~1.3 ms per policy step, ~6.6 ms per minibatch, for a few
microseconds of arithmetic). A captured graph launches all of them at once.

A graph replays the exact kernels it recorded on fixed memory, so:

* inputs are copied into static tensors before each replay and outputs are read from static
  tensors after it (before the next replay overwrites them);
* everything that changes between replays must be a tensor the graph reads: the entropy
  coefficient and the learning rate (``group["lr"]`` becomes a 0-d tensor, updated in place);
* random numbers are drawn *outside* the graph from the trainer's generator (the Gumbel noise
  of the sampling, the minibatch permutation), so a run consumes its generator exactly as the
  eager path does and checkpoints stay what they were;
* parameters, gradients and Adam's state are updated in place, never replaced; whatever
  replaces them (loading a checkpoint) must drop the graphs (:meth:`PPOTrainer.load_state_dict`
  does).

The trainer uses these graphs on CUDA when ``ppo.compile`` is not ``"off"``, in fp32 with whole
minibatches (see :meth:`exitcore.config.PPOConfig.captures_graphs`); Adam is then created
*capturable*. A capture that fails falls back to the eager path with a warning. On an H100 the
graphed training was bit-identical to the eager one (``tests/test_device.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from exitcore.ppo.distribution import MaskedCategorical

#: eager iterations before a capture (lazy initialisation: cuBLAS handles, autograd buffers)
WARMUP_ITERATIONS = 2


def policy_step(policy: nn.Module, obs: Tensor, mask: Tensor, uniform: Tensor, autocast: Any) -> tuple[Tensor, Tensor, Tensor]:
    """One rollout step of the policy: ``(action, log_prob, value)`` for ``obs`` under ``mask``,
    the action drawn by Gumbel-max from ``uniform`` [N, A] noise (what the eager rollout does)."""
    with autocast:
        logits, value = policy(obs)
    dist = MaskedCategorical(logits.float(), mask, validate=False)  # masks are checked per update
    action = dist.sample_from_uniform(uniform)
    return action, dist.log_prob(action), value.float()


def _on_side_stream(device: torch.device, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a fresh stream ordered after (and before) the current one: warm-ups and
    captures must not run on the default stream."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    try:
        with torch.cuda.stream(side):
            return fn()
    finally:  # also after a failure: whatever ran there must finish before the eager fallback
        torch.cuda.current_stream(device).wait_stream(side)


class GraphedPolicyStep:
    """:func:`policy_step` for ``n_envs`` rows captured as one CUDA graph."""

    def __init__(self, policy: nn.Module, n_envs: int, obs_dim: int, n_actions: int, device: torch.device, autocast: Any):
        self.obs = torch.zeros(n_envs, obs_dim, dtype=torch.float32, device=device)
        self.mask = torch.ones(n_envs, n_actions, dtype=torch.bool, device=device)
        self.uniform = torch.full((n_envs, n_actions), 0.5, dtype=torch.float32, device=device)

        def run() -> tuple[Tensor, Tensor, Tensor]:
            with torch.inference_mode():
                return policy_step(policy, self.obs, self.mask, self.uniform, autocast)

        def warm_up_and_capture() -> tuple[Tensor, Tensor, Tensor]:
            for _ in range(WARMUP_ITERATIONS):
                run()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                return run()

        self.action, self.log_prob, self.value = _on_side_stream(device, warm_up_and_capture)

    def __call__(self, obs: Tensor, mask: Tensor, uniform: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Replay on these inputs; the outputs are static tensors, valid until the next call."""
        self.obs.copy_(obs)
        self.mask.copy_(mask)
        self.uniform.copy_(uniform)
        self.graph.replay()
        return self.action, self.log_prob, self.value


class GraphedMinibatchUpdate:
    """One minibatch update captured as one CUDA graph: gather the minibatch at ``index`` from
    the rollout buffer, accumulate the PPO gradient, clip its norm, take the Adam step.

    ``step_fn(index, ent_coef)`` must do exactly that with no host synchronisation and return
    ``(stats [6], grad_norm)``. The first :data:`WARMUP_ITERATIONS` calls run it eagerly (real
    minibatches of the run, on a side stream), the next one captures it, and every later call
    replays the graph.
    """

    def __init__(self, step_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], batch_size: int, device: torch.device):
        self.step_fn, self.device = step_fn, device
        self.index = torch.zeros(batch_size, dtype=torch.int64, device=device)
        self.ent_coef = torch.zeros((), dtype=torch.float32, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple[Tensor, Tensor] | None = None
        self.calls = 0

    def __call__(self, index: Tensor, ent_coef: float) -> tuple[Tensor, Tensor]:
        """The update on the minibatch at ``index``; outputs valid until the next call."""
        self.index.copy_(index)
        self.ent_coef.fill_(ent_coef)
        if self.graph is not None:
            self.graph.replay()
            return self.outputs  # type: ignore[return-value]
        self.calls += 1
        if self.calls <= WARMUP_ITERATIONS:
            return _on_side_stream(self.device, lambda: self.step_fn(self.index, self.ent_coef))

        def capture() -> tuple[Tensor, Tensor]:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outputs = self.step_fn(self.index, self.ent_coef)
            self.graph, self.outputs = graph, outputs
            return outputs

        _on_side_stream(self.device, capture)
        self.graph.replay()  # the capture recorded the update; this runs it
        return self.outputs  # type: ignore[return-value]


def tensor_learning_rates(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Turn every param group's ``lr`` into a 0-d tensor on ``device`` (in place from then on),
    so a captured optimizer step reads the current learning rate instead of a frozen number."""
    for group in optimizer.param_groups:
        if not isinstance(group["lr"], Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)


def float_learning_rates(optimizer: torch.optim.Optimizer) -> None:
    """Undo :func:`tensor_learning_rates` (no graph reads them any more)."""
    for group in optimizer.param_groups:
        group["lr"] = float(group["lr"])


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every param group: in place where it is a tensor (a captured step reads it)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
