"""What GymVecExitEnv's host-side checks cost per step, side by side in one run.

Every adapter step checks the action ids and shape on the host (an environment on a GPU checks
its first steps only) and, with ``enforce_masks=True`` (the default), replaces masked actions by
HOLD. This times the adapter as shipped against the same adapter with both switched off, on the
same environment and actions, interleaved, ``--reps`` times each; the minimum of each is the
figure (the machine's noise only adds time).

    python benchmarks/bench_gym_adapter_checks.py [--envs 256] [--steps 400] [--reps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the env helpers live with the tests

import exitcore.env.gym_adapter as gym_adapter  # noqa: E402
from env.helpers import make_env, synthetic_bars, synthetic_trades  # noqa: E402
from env.reference import v4_config  # noqa: E402


def _steps_us(env: gym_adapter.GymVecExitEnv, steps: int, seed: int) -> float:
    """Mean microseconds per step over ``steps`` random allowed actions (after a warm-up)."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    for _ in range(20):
        mask = env.action_masks()
        env.step((rng.random(mask.shape) * mask).argmax(1))
    start = time.perf_counter()
    for _ in range(steps):
        mask = env.action_masks()
        env.step((rng.random(mask.shape) * mask).argmax(1))
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bars = synthetic_bars(20_000, seed=5)
    trades = synthetic_trades(bars, 3_000, seed=6)
    shipped_check = gym_adapter.check_actions
    timings: dict[str, list[float]] = {"as shipped": [], "without the host checks": []}
    for rep in range(args.reps):
        for name in timings:
            checks = name == "as shipped"
            gym_adapter.check_actions = shipped_check if checks else (lambda *_, **__: None)
            env = gym_adapter.GymVecExitEnv(make_env(bars, trades, v4_config(max_bars=96), n_envs=args.envs,
                                                     auto_reset=True, seed=1), enforce_masks=checks)
            timings[name].append(_steps_us(env, args.steps, seed=rep))
    gym_adapter.check_actions = shipped_check
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), "
          f"{args.envs} envs, {args.steps} steps x {args.reps} reps")
    best = {name: min(v) for name, v in timings.items()}
    for name, values in timings.items():
        print(f"  {name:<24} {best[name]:8.0f} us/step (each: {', '.join(f'{v:.0f}' for v in values)})")
    shipped, bare = best["as shipped"], best["without the host checks"]
    print(f"  the checks: {shipped - bare:+.0f} us/step ({100 * (shipped - bare) / bare:+.1f} %)")


if __name__ == "__main__":
    main()
