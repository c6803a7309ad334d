"""Benchmarks: one PPO update (rollout + learning) and the masked distribution, with pytest-benchmark.

Run timed with ``python -m pytest tests/bench/test_bench_ppo.py --benchmark-enable``: an update
has v4's shape (256 envs x 128 steps, minibatches of 8,192, 4 epochs) on the cheap masked test
environment, with the [64, 64] and v4's [512, 256] network, in whole minibatches and in the
automatic micro-batches; ``extra_info`` records the steps/s. In the normal test run
(``--benchmark-disable``) each case runs once, un-timed, at a reduced size, as a smoke test of
the benchmark itself. ``benchmarks/bench_ppo_compute.py`` and ``benchmarks/bench_ppo_vs_sb3.py``
compare against the network bound and MaskablePPO side by side; figures are in
docs/benchmarks.md.
"""

from __future__ import annotations

import pytest
import torch

from exitcore.config import PPOConfig
from exitcore.ppo import MLPActorCritic, PPOTrainer, seed_everything
from exitcore.ppo.distribution import MaskedCategorical
from exitcore.ppo.testing import MaskedBanditEnv

V4_SHAPE = dict(n_envs=256, n_steps=128, batch_size=8192, n_epochs=4)
REDUCED = dict(n_envs=16, n_steps=16, batch_size=64, n_epochs=1)


def _trainer(hidden: list[int], micro_batch_size: int, shape: dict) -> PPOTrainer:
    ppo = PPOConfig(**shape, hidden=hidden, micro_batch_size=micro_batch_size, target_kl=0.0, seed=0,
                    total_timesteps=1000 * shape["n_envs"] * shape["n_steps"], checkpoint_every=10_000)
    seed_everything(ppo.seed)
    env = MaskedBanditEnv(ppo.n_envs, n_contexts=64, obs_dim=27)
    trainer = PPOTrainer(env, MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions), ppo, progress=False)
    trainer.next_obs, trainer.next_mask = env.reset(seed=0)
    return trainer


@pytest.mark.parametrize("passes", ["auto", "whole"])
@pytest.mark.parametrize("hidden", [[64, 64], [512, 256]], ids=["64x64", "512x256"])
def test_bench_ppo_update(benchmark, hidden: list[int], passes: str) -> None:
    """One update: ``n_steps`` rollout steps of ``n_envs`` envs, GAE, ``n_epochs`` of minibatches."""
    shape = V4_SHAPE if benchmark.enabled else REDUCED
    micro = 0 if passes == "auto" else shape["batch_size"]
    if not benchmark.enabled and passes == "auto":
        micro = shape["batch_size"] // 4  # the reduced run still exercises split passes
    trainer = _trainer(hidden, micro, shape)
    trainer._train_one_update(1)  # warm-up: first-call allocations and kernel selection
    updates = iter(range(2, 10_000))

    metrics = benchmark.pedantic(lambda: trainer._train_one_update(next(updates)), rounds=3, iterations=1)
    assert metrics["minibatches"] == shape["n_epochs"] * (shape["n_envs"] * shape["n_steps"] // shape["batch_size"])
    assert all(torch.isfinite(torch.tensor(metrics[k])) for k in ("loss_policy", "loss_value", "entropy", "approx_kl"))
    if benchmark.enabled and benchmark.stats is not None:
        benchmark.extra_info["micro_batch_rows"] = trainer.micro_batch_size
        benchmark.extra_info["steps_per_s"] = trainer.steps_per_update / benchmark.stats.stats.mean


def test_bench_masked_distribution_forward_backward(benchmark) -> None:
    """Log-probability and entropy of a masked categorical, forward and backward, on [8192, 5]."""
    rows = 8192 if benchmark.enabled else 64
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, 5, generator=gen, requires_grad=True)
    mask = torch.rand(rows, 5, generator=gen) < 0.6
    mask[:, 0] = True
    actions = torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)

    def run() -> torch.Tensor:
        dist = MaskedCategorical(logits, mask, validate=False)
        loss = dist.log_prob(actions).mean() + dist.entropy().mean()
        logits.grad = None
        loss.backward()
        return loss

    loss = benchmark.pedantic(run, rounds=50, warmup_rounds=5, iterations=1)
    assert torch.isfinite(loss) and bool((logits.grad[~mask] == 0).all())
