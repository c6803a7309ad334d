"""Environment throughput, side by side in one run (design.md §8; figures in docs/benchmarks.md).

Measures env-steps per second of

* ``VecExitEnv`` in training mode (auto-reset) with the v4 plugin set, eager and with
  ``compile=True``, at 256, 4096 and 65536 envs;
* the scalar reference episode (``tests/env/reference.py``) wrapped as a ``gymnasium.Env`` and
  run in ``gymnasium.vector.SyncVectorEnv`` - how such an environment is usually written -
  with the masks fetched every step through ``envs.call("action_masks")`` as a masked policy
  would.

Both play the same synthetic market and trades and get uniformly random actions (masks are not
applied to the actions, so the guards see the same mix in both). One "env-step" is one decision
of one environment. Run from the repository root::

    python benchmarks/bench_env.py                      # everything (a few minutes on 2 cores)
    python benchmarks/bench_env.py --sizes 4096 --no-compile --profile 4096

The machine is usually shared: read the ratios measured within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the scalar reference and the env helpers live with the tests

from env.helpers import build, env_from, ref_market, synthetic_bars, synthetic_trades, trade_rows  # noqa: E402
from env.reference import ReferenceExitEnv, v4_config  # noqa: E402
from exitcore.env.compile_check import COMPILE_CHECK_STEPS  # noqa: E402


def cpu_model() -> str:
    """``lscpu``'s model name (or the platform's processor string)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def time_loop(step, n_steps: int, min_seconds: float) -> tuple[float, float, int]:
    """Run ``step(i)`` for at least ``min_seconds`` (whole blocks of ``n_steps``); returns
    (wall seconds, process CPU seconds, steps). CPU time counts every thread of the process."""
    done, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        for i in range(n_steps):
            step(done + i)
        done += n_steps
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return dt, time.process_time() - c0, done


def best_rates(step, n_envs: int, steps: int, min_seconds: float, repeats: int) -> dict:
    """Env-steps/s over ``repeats`` timed blocks: the best wall-clock rate (the figure reported),
    every block's rate, and the best rate per CPU-second of the process."""
    walls, cpus = [], []
    for _ in range(repeats):
        dt, cpu, n = time_loop(step, steps, min_seconds)
        walls.append(n_envs * n / dt)
        cpus.append(n_envs * n / cpu)
    return {"steps_per_s": max(walls), "all": walls, "steps_per_cpu_s": max(cpus), "load_avg": os.getloadavg()[0]}


def bench_vec(built, n_envs: int, compile: bool, steps: int, min_seconds: float, repeats: int) -> dict:
    """Env-steps/s of a training-mode VecExitEnv (best of ``repeats`` timed blocks)."""
    env = env_from(built, n_envs=n_envs, auto_reset=True, seed=0, compile=compile)
    env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 5, (steps, n_envs), generator=gen)
    t0 = time.perf_counter()
    # the first step checks the components; with compile the next one compiles and the first
    # COMPILE_CHECK_STEPS compiled steps are also run eagerly: none of that is timed
    for i in range(2 + COMPILE_CHECK_STEPS):
        env.step(actions[i % steps])
    warmup = time.perf_counter() - t0
    r = best_rates(lambda i: env.step(actions[i % steps]), n_envs, steps, min_seconds, repeats)
    stats = env.episode_stats()
    return {"n_envs": n_envs, "compile": compile, "warmup_s": warmup, "ms_per_step": 1e3 * n_envs / r["steps_per_s"],
            "ep_length_mean": stats["ep_length_mean"], **r}  # fmt: skip


def bench_reference(bars, trades, cfg, n_envs: int, steps: int, min_seconds: float, repeats: int) -> dict:
    """Env-steps/s of the scalar reference in gymnasium's SyncVectorEnv, masks fetched every step."""
    import gymnasium

    market, rows = ref_market(bars), trade_rows(trades)
    envs = gymnasium.vector.SyncVectorEnv([lambda: ReferenceExitEnv(market, rows, cfg) for _ in range(n_envs)])
    envs.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 5, (steps, n_envs))

    def step(i: int) -> None:
        np.stack(envs.call("action_masks"))  # what a masked policy needs every step
        envs.step(actions[i % steps])

    return {"n_envs": n_envs, **best_rates(step, n_envs, steps, min_seconds, repeats)}


def profile(built, n_envs: int, steps: int = 50) -> None:
    """Where an eager step's time goes (torch.profiler, CPU), top ops by self time."""
    from torch.profiler import ProfilerActivity, profile as tprofile

    env = env_from(built, n_envs=n_envs, auto_reset=True, seed=0)
    env.reset(seed=0)
    actions = torch.randint(0, 5, (steps, n_envs))
    for i in range(3):
        env.step(actions[i])
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            env.step(actions[i])
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    total_ms = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e3
    n_ops = sum(e.count for e in prof.key_averages()) / steps
    print(f"\n--- torch.profiler: eager step, {n_envs} envs, {steps} steps: {total_ms / steps:.2f} ms of op time per step, "
          f"{n_ops:.0f} op calls per step")  # fmt: skip
    print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 4096, 65536])
    ap.add_argument("--ref-envs", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--no-compile", action="store_true", help="skip the compile=True runs")
    ap.add_argument("--steps", type=int, default=50, help="steps per timed block")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum seconds per timed block")
    ap.add_argument("--repeats", type=int, default=3, help="timed blocks per case (best is reported)")
    ap.add_argument("--profile", type=int, nargs="*", default=[], help="also profile an eager step at these sizes")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bars = synthetic_bars(50_000, seed=0)
    trades = synthetic_trades(bars, 5_000, seed=1)
    cfg = v4_config()
    built = build(bars, trades, cfg)
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} intra-op threads")  # fmt: skip
    print(f"data: {len(bars)} synthetic bars, {int(built.table.decidable.sum())} decidable trades, v4 plugin set, "
          f"obs_dim {built.components.obs_dim}")  # fmt: skip

    results: dict = {"machine": cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "vec": [], "reference": []}  # fmt: skip
    for n in args.ref_envs:
        r = bench_reference(bars, trades, cfg, n, args.steps, args.seconds, args.repeats)
        results["reference"].append(r)
        print(f"reference SyncVectorEnv  {n:>6} envs: {r['steps_per_s'] / 1e3:8.1f} k env-steps/s "
              f"({r['steps_per_cpu_s'] / 1e3:.1f} k per CPU-s, load {r['load_avg']:.1f})")  # fmt: skip
    ref_best = max(r["steps_per_s"] for r in results["reference"])
    for n in args.sizes:
        for compile in (False,) if args.no_compile else (False, True):
            r = bench_vec(built, n, compile, args.steps, args.seconds, args.repeats)
            r["ratio_vs_reference"] = r["steps_per_s"] / ref_best
            results["vec"].append(r)
            print(f"VecExitEnv {'compiled' if compile else 'eager   '} {n:>6} envs: {r['steps_per_s'] / 1e6:8.2f} M env-steps/s "
                  f"({r['ms_per_step']:.2f} ms/step, {r['steps_per_cpu_s'] / 1e6:.2f} M per CPU-s, warm-up {r['warmup_s']:.1f} s, "
                  f"load {r['load_avg']:.1f})  x{r['ratio_vs_reference']:,.0f} the reference")  # fmt: skip
    for n in args.profile:
        profile(built, n)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
