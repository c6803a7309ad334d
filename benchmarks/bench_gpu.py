"""One prepared device check: the CUDA path end to end, its speed, its determinism.

Meant for a short session on a GPU machine (it also runs on the CPU, small, as a smoke test)::

    python benchmarks/bench_gpu.py --device cuda --json gpu.json        # ~2-4 minutes
    python benchmarks/bench_gpu.py --device cpu --small                  # seconds

It reports, for experiment ``v4_no_lookahead`` on the synthetic default data:

1. environment steps/s (training mode, v4 plugin set) eager and compiled at several sizes;
2. PPO training steps/s with the v4 network and batch (``--updates`` updates of 256 x
   ``--n-steps``), split into rollout and update, and the projected time of the full 15 M-step
   run (the design target is <= 30 s on one H100);
3. determinism: the same short training twice with one seed must give identical parameters.

Record what it prints, with the device name, in docs/benchmarks.md ("GPU (CUDA)").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

from exitcore.env.compile_check import COMPILE_CHECK_STEPS

ROOT = Path(__file__).resolve().parents[1]


def assembled_v4(device: torch.device, overrides: list[str]):
    """v4_no_lookahead on the default synthetic data, assembled on ``device``."""
    from exitcore.assembly import assemble
    from exitcore.data.pipeline import load_bars
    from exitcore.experiments import load_file, resolve
    from exitcore.plugins import PluginHost

    resolved = resolve(load_file(ROOT / "experiments.toml"), "v4_no_lookahead", PluginHost.create(), overrides=overrides)
    bars = load_bars(resolved.config.data, PluginHost.create())
    asm = assemble(resolved, bars, device=device)
    pool = torch.nonzero(asm.table.decidable).flatten()
    return resolved, asm, pool


@contextlib.contextmanager
def cudagraph_env_step(enabled: bool):
    """Compile the env step with CUDA graphs (inductor's ``triton.cudagraphs``) while active.

    An experiment, not a product option yet: at v4's 256 envs the step is launch-bound, and a
    graph replays its few kernels with one launch.
    """
    from exitcore.env import vec_env

    if not enabled:
        yield
        return
    original = vec_env._compile_options
    vec_env._compile_options = lambda: {**(original() or {}), "triton.cudagraphs": True}
    try:
        yield
    finally:
        vec_env._compile_options = original


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def env_rate(asm, pool, n_envs: int, compile: bool, steps: int, device: torch.device) -> float:
    """Env-steps/s of a training-mode env with random allowed actions (device-side)."""
    env = asm.make_env(pool, n_envs=n_envs, seed=0, compile=compile)
    _, mask = env.reset()
    gen = torch.Generator(device=device).manual_seed(0)

    def act(mask):
        return torch.rand(mask.shape, generator=gen, device=device).masked_fill(~mask, -1).argmax(dim=1)

    for _ in range(2 + COMPILE_CHECK_STEPS):  # warm-up: compilation and the eager-checked steps
        _, mask, _, _ = env.step(act(mask))
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, mask, _, _ = env.step(act(mask))
    sync(device)
    return n_envs * steps / (time.perf_counter() - t0)


def train(resolved, asm, pool, device: torch.device, total: int, seed: int):
    from exitcore.ppo.policy import build_policy
    from exitcore.ppo.rng import seed_everything
    from exitcore.ppo.trainer import PPOTrainer

    ppo = resolved.config.ppo
    seed_everything(seed)
    env = asm.make_env(pool, n_envs=ppo.n_envs, seed=seed, compile=device.type == "cuda")
    policy = build_policy(resolved.policy, ppo, env.obs_dim, env.n_actions, resolved.policy_params)
    trainer = PPOTrainer(env, policy, ppo, run_dir=None, progress=False, total_timesteps=total)
    sync(device)
    t0 = time.perf_counter()
    result = trainer.train()
    sync(device)
    return result, time.perf_counter() - t0, trainer.policy


def _rate(value) -> str:
    return f"{value / 1e6:.2f} M/s" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny sizes (a CPU smoke test)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 4096, 65536, 262144])
    ap.add_argument("--updates", type=int, default=3, help="PPO updates to time")
    ap.add_argument("--n-steps", type=int, default=2048)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--cudagraphs", action="store_true",
                    help="also time the env step and training with the env step captured in CUDA graphs")
    args = ap.parse_args(argv)

    from exitcore.device import select_device

    device = select_device(args.device)
    sizes, n_steps, env_steps = args.sizes, args.n_steps, 200
    overrides = ["ppo.seed=0"]
    if args.small:
        sizes, n_steps, env_steps = [64, 256], 16, 20
        overrides += ["ppo.hidden=[32, 32]", "ppo.batch_size=1024"]
    overrides += [f"ppo.n_steps={n_steps}", f'ppo.device="{device.type}"']
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__}
    resolved, asm, pool = assembled_v4(device, overrides)

    variants = [("eager", False, False), ("compiled", True, False)]
    if args.cudagraphs:
        variants.append(("cudagraphs", True, True))
    report["env"] = []
    for n in sizes:
        row = {"envs": n}
        for label, compiled, graphs in variants:
            try:
                with cudagraph_env_step(graphs):
                    row[label] = env_rate(asm, pool, n, compiled, env_steps, device)
            except Exception as exc:  # report and go on: one failing size must not hide the rest
                row[label] = f"failed: {type(exc).__name__}: {exc}"[:300]
        print(f"env {n:>7} envs: " + ", ".join(f"{label} {_rate(row[label])}" for label, _, _ in variants), flush=True)
        report["env"].append(row)

    per_update = resolved.config.ppo.n_envs * n_steps
    result, seconds, policy_a = train(resolved, asm, pool, device, args.updates * per_update, seed=0)
    m = result.last_metrics
    rate = result.global_step / seconds
    report["train"] = {"steps": result.global_step, "seconds": seconds, "steps_per_s": rate,
                       "last_update": {k: m.get(k) for k in ("sps", "sps_rollout", "sps_update", "time_rollout", "time_update")},
                       "projected_15M_s": 15_000_000 / rate}
    print(f"train: {result.global_step:,} steps in {seconds:.1f} s = {rate:,.0f} steps/s; "
          f"15M steps would take {15_000_000 / rate:,.0f} s (includes warm-up); last update: rollout "
          f"{m['sps_rollout']:,.0f}, update {m['sps_update']:,.0f} steps/s", flush=True)

    if args.cudagraphs:
        try:
            with cudagraph_env_step(True):
                result_g, seconds_g, _ = train(resolved, asm, pool, device, args.updates * per_update, seed=0)
            m = result_g.last_metrics
            report["train_cudagraphs"] = {"steps": result_g.global_step, "seconds": seconds_g,
                                          "steps_per_s": result_g.global_step / seconds_g,
                                          "last_update": {k: m.get(k) for k in report["train"]["last_update"]}}
            print(f"train, env step in CUDA graphs: {result_g.global_step / seconds_g:,.0f} steps/s; last update "
                  f"{report['train_cudagraphs']['last_update']}", flush=True)
        except Exception as exc:
            report["train_cudagraphs"] = f"failed: {type(exc).__name__}: {exc}"[:300]
            print(f"train, env step in CUDA graphs: {report['train_cudagraphs']}", flush=True)

    _, _, policy_b = train(resolved, asm, pool, device, per_update, seed=0)
    _, _, policy_c = train(resolved, asm, pool, device, per_update, seed=0)
    same = all(torch.equal(a, b) for a, b in zip(policy_b.state_dict().values(), policy_c.state_dict().values()))
    report["deterministic"] = same
    print(f"determinism (same seed twice, one update): {'identical' if same else 'DIFFERENT'} parameters", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["deterministic"] else 1)
