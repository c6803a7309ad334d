"""Benchmarks: ``VecExitEnv`` steps per second with the v4 plugin set at 256, 4096, 65536 envs,
and the per-env baseline (the scalar reference as a ``gymnasium.Env`` in ``SyncVectorEnv``).

Run timed with ``python -m pytest tests/bench/test_bench_env.py --benchmark-enable``; each
round is ``STEPS`` steps (training mode, auto-reset, random actions) and ``extra_info`` records
the env-steps/s. In the normal test run (``--benchmark-disable``) each case runs once, un-timed,
at a reduced size, as a smoke test of the benchmark itself (eager only: compiling takes long).
``benchmarks/bench_env.py`` prints the same side by side with the ratios; figures are in
docs/benchmarks.md.

(``tests/`` is on ``sys.path`` in every pytest run, through the rootdir conftest, so the env
test helpers import as ``env.*``.)
"""

from __future__ import annotations

import pytest
import torch

from env.helpers import build, env_from, ref_market, synthetic_bars, synthetic_trades, trade_rows
from env.reference import ReferenceExitEnv, v4_config

SIZES = (256, 4096, 65536)
STEPS = 20  # steps per timed round
REDUCED = 64  # n_envs when the benchmark runs un-timed in the normal test run


@pytest.fixture(scope="module")
def data():
    bars = synthetic_bars(50_000, seed=0)
    return bars, synthetic_trades(bars, 5_000, seed=1)


@pytest.fixture(scope="module")
def built(data):
    return build(*data, v4_config())


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("n_envs", SIZES)
def test_bench_vec_env_steps(benchmark, built, n_envs: int, compile: bool) -> None:
    """``STEPS`` steps of a training-mode VecExitEnv (eager or ``compile=True``), v4 plugin set."""
    if compile and not benchmark.enabled:
        # the same step as the eager case, compiled: a cold compile is 15-50 s of a CI run, and the
        # compiled step is tested against eager and the reference in tests/env
        pytest.skip("un-timed, the compiled case runs only with --benchmark-enable")
    n = n_envs if benchmark.enabled else REDUCED
    env = env_from(built, n_envs=n, auto_reset=True, seed=0, compile=compile)
    env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 5, (STEPS, n), generator=gen)
    # The first step checks every component's output, the second compiles: keep both out of the timing.
    env.step(actions[0])
    env.step(actions[1])

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


REFERENCE_ENVS = 64


def test_bench_reference_sync_vector_env(benchmark, data) -> None:
    """``STEPS`` steps of the scalar reference in gymnasium's SyncVectorEnv, masks fetched each step."""
    gym = pytest.importorskip("gymnasium")
    import numpy as np

    bars, trades = data
    n = REFERENCE_ENVS if benchmark.enabled else 4
    market, rows, cfg = ref_market(bars), trade_rows(trades), v4_config()
    envs = gym.vector.SyncVectorEnv([lambda: ReferenceExitEnv(market, rows, cfg) for _ in range(n)])
    envs.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 5, (STEPS, n))

    def run():
        for t in range(STEPS):
            np.stack(envs.call("action_masks"))
            out = envs.step(actions[t])
        return out

    obs, reward, terminated, truncated, _ = benchmark.pedantic(run, rounds=5, warmup_rounds=1, iterations=1)
    assert obs.shape == (n, cfg.obs_dim()) and reward.shape == (n,) and not truncated.any()
    if benchmark.enabled and benchmark.stats is not None:
        benchmark.extra_info["n_envs"] = n
        benchmark.extra_info["env_steps_per_s"] = n * STEPS / benchmark.stats.stats.mean
