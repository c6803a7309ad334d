"""Benchmarks: ``VecExitEnv`` steps per second with the v4 plugin set at 256, 4096, 65536 envs.

Run timed with ``python -m pytest tests/bench/test_bench_env.py --benchmark-enable``; each
round is ``STEPS`` training-mode steps (auto-reset, random actions) and ``extra_info`` records
the env-steps/s. In the normal test run (``--benchmark-disable``) each case runs once, un-timed,
at a reduced size, as a smoke test of the benchmark itself. The side-by-side comparison with
the per-env gymnasium loop is ``benchmarks/bench_env.py``; figures are in docs/benchmarks.md.

(``tests/`` is on ``sys.path`` in every pytest run, through the rootdir conftest, so the env
test helpers import as ``env.*``.)
"""

from __future__ import annotations

import pytest
import torch

from env.helpers import env_from, build, synthetic_bars, synthetic_trades
from env.reference import v4_config

SIZES = (256, 4096, 65536)
STEPS = 20  # steps per timed round
REDUCED = 64  # n_envs when the benchmark runs un-timed in the normal test run


@pytest.fixture(scope="module")
def built():
    bars = synthetic_bars(50_000, seed=0)
    trades = synthetic_trades(bars, 5_000, seed=1)
    return build(bars, trades, v4_config())


@pytest.mark.parametrize("n_envs", SIZES)
def test_bench_vec_env_steps(benchmark, built, n_envs: int) -> None:
    """``STEPS`` steps of a training-mode VecExitEnv (eager), v4 plugin set."""
    n = n_envs if benchmark.enabled else REDUCED
    env = env_from(built, n_envs=n, auto_reset=True, seed=0)
    env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 5, (STEPS, n), generator=gen)
    env.step(actions[0])  # the first step checks every component's output; keep it out of the timing

    def run() -> torch.Tensor:
        for t in range(STEPS):
            obs, mask, reward, done = env.step(actions[t])
        return reward

    reward = benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
    assert reward.shape == (n,) and bool(torch.isfinite(reward).all())
    stats = env.episode_stats()
    assert stats["decisions"] > 0 and stats["episodes"] > 0
    if benchmark.enabled and benchmark.stats is not None:
        mean = benchmark.stats.stats.mean
        benchmark.extra_info["n_envs"] = n
        benchmark.extra_info["env_steps_per_s"] = n * STEPS / mean
