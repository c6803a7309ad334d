"""One prepared device check: the CUDA path's speed, with and without CUDA graphs, and its determinism.

Meant for a short session on a GPU machine (it also runs on the CPU, small, as a smoke test)::

    python benchmarks/bench_gpu.py --device cuda --json gpu.json        # ~1-2 minutes
    python benchmarks/bench_gpu.py --device cpu --small                  # seconds

It reports, for experiment ``v4_no_lookahead`` on the synthetic default data:

1. environment steps/s (training mode, v4 plugin set): eager, compiled, and compiled replayed
   from a CUDA graph (``VecExitEnv.use_cuda_graph``), at several sizes;
2. PPO training steps/s with the v4 network and batch (``--updates`` updates of 256 x
   ``--n-steps``), split into rollout and update, with the trainer's CUDA graphs (the default on
   CUDA) and without them (``--updates 1`` of those, same seed: the parameters are compared),
   and the projected time of the full 15 M-step run (the design target is <= 30 s on one H100);
3. determinism: the same short training twice with one seed must give identical parameters.

Record what it prints, with the device name, in docs/benchmarks.md ("GPU (CUDA)").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from exitcore.env.compile_check import COMPILE_CHECK_STEPS
from exitcore.experiments import SHIPPED_FILE

LAST_UPDATE_KEYS = ("sps", "sps_rollout", "sps_update", "time_rollout", "time_update")


def assembled_v4(device: torch.device, overrides: list[str]):
    """v4_no_lookahead on the default synthetic data, assembled on ``device``."""
    from exitcore.assembly import assemble
    from exitcore.data.pipeline import load_bars
    from exitcore.experiments import load_file, resolve
    from exitcore.plugins import PluginHost

    resolved = resolve(load_file(SHIPPED_FILE), "v4_no_lookahead", PluginHost.create(), overrides=overrides)
    bars = load_bars(resolved.config.data, PluginHost.create())
    asm = assemble(resolved, bars, device=device)
    pool = torch.nonzero(asm.table.decidable).flatten()
    return resolved, asm, pool


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def env_rate(asm, pool, n_envs: int, compile: bool, graph: bool, steps: int, device: torch.device) -> float:
    """Env-steps/s of a training-mode env with random allowed actions (device-side)."""
    env = asm.make_env(pool, n_envs=n_envs, seed=0, compile=compile)
    if graph and not env.use_cuda_graph(True):
        raise RuntimeError("CUDA graphs need the compiled env on CUDA")
    _, mask = env.reset()
    gen = torch.Generator(device=device).manual_seed(0)

    def act(mask):  # read before the next step: a graphed step's outputs are overwritten by it
        return torch.rand(mask.shape, generator=gen, device=device).masked_fill(~mask, -1).argmax(dim=1)

    for _ in range(3 + COMPILE_CHECK_STEPS):  # warm-up: compilation, the eager-checked steps, the capture
        _, mask, _, _ = env.step(act(mask))
    if graph and not env.cuda_graph_on:
        raise RuntimeError("the env step's CUDA graph could not be captured (see the warning)")
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, mask, _, _ = env.step(act(mask))
    sync(device)
    return n_envs * steps / (time.perf_counter() - t0)


def train(resolved, asm, pool, device: torch.device, total: int, seed: int, graphs: bool = True):
    """A v4 training of ``total`` steps: ``(result, seconds, trainer)``."""
    from exitcore.ppo.policy import build_policy
    from exitcore.ppo.rng import seed_everything
    from exitcore.ppo.trainer import PPOTrainer

    ppo = resolved.config.ppo
    seed_everything(seed)
    env = asm.make_env(pool, n_envs=ppo.n_envs, seed=seed, compile=device.type == "cuda")
    policy = build_policy(resolved.policy, ppo, env.obs_dim, env.n_actions, resolved.policy_params)
    trainer = PPOTrainer(env, policy, ppo, run_dir=None, progress=False, total_timesteps=total)
    if not graphs:
        trainer.graphs = dict.fromkeys(trainer.graphs, "off")
        env.use_cuda_graph(False)
    sync(device)
    t0 = time.perf_counter()
    result = trainer.train()
    sync(device)
    return result, time.perf_counter() - t0, trainer


def _rate(value) -> str:
    return f"{value / 1e6:.2f} M/s" if isinstance(value, float) else str(value)


def _params(trainer) -> list[torch.Tensor]:
    return [p.detach().cpu().clone() for p in trainer.policy.state_dict().values()]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny sizes (a CPU smoke test)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 4096, 65536, 262144])
    ap.add_argument("--updates", type=int, default=3, help="PPO updates to time (with the trainer's graphs)")
    ap.add_argument("--n-steps", type=int, default=2048)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from exitcore.device import select_device

    device = select_device(args.device)
    sizes, n_steps, env_steps = args.sizes, args.n_steps, 200
    overrides = ["ppo.seed=0"]
    if args.small:
        sizes, n_steps, env_steps = [128], 16, 20  # one size: each compiles anew (15-20 s on a CPU)
        overrides += ["ppo.hidden=[32, 32]", "ppo.batch_size=1024"]
    overrides += [f"ppo.n_steps={n_steps}", f'ppo.device="{device.type}"']
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                    "torch": torch.__version__}
    resolved, asm, pool = assembled_v4(device, overrides)

    variants = [("eager", False, False), ("compiled", True, False)]
    if device.type == "cuda":
        variants.append(("graphed", True, True))
    report["env"] = []
    for n in sizes:
        row = {"envs": n}
        for label, compiled, graph in variants:
            try:
                row[label] = env_rate(asm, pool, n, compiled, graph, env_steps, device)
            except Exception as exc:  # report and go on: one failing size must not hide the rest
                row[label] = f"failed: {type(exc).__name__}: {exc}"[:300]
        print(f"env {n:>7} envs: " + ", ".join(f"{label} {_rate(row[label])}" for label, _, _ in variants), flush=True)
        report["env"].append(row)

    per_update = resolved.config.ppo.n_envs * n_steps
    result, seconds, trainer = train(resolved, asm, pool, device, args.updates * per_update, seed=0)
    m = result.last_metrics
    rate = result.global_step / seconds
    report["train"] = {"steps": result.global_step, "seconds": seconds, "steps_per_s": rate, "graphs": trainer.graphs,
                       "last_update": {k: m.get(k) for k in LAST_UPDATE_KEYS}, "projected_15M_s": 15_000_000 / rate}
    print(f"train ({trainer.graphs}): {result.global_step:,} steps in {seconds:.1f} s = {rate:,.0f} steps/s; "
          f"15M steps would take {15_000_000 / rate:,.0f} s (includes warm-up); last update: rollout "
          f"{m['sps_rollout']:,.0f}, update {m['sps_update']:,.0f} steps/s", flush=True)

    # one update with and one without graphs, same seed: speed side by side, and the parameters
    _, _, graphed = train(resolved, asm, pool, device, per_update, seed=0)
    plain_result, _, plain = train(resolved, asm, pool, device, per_update, seed=0, graphs=False)
    m = plain_result.last_metrics
    a, b = _params(graphed), _params(plain)
    diff = max(float((x - y).abs().max() / y.abs().max().clamp_min(1e-12)) for x, y in zip(a, b))
    report["train_without_graphs"] = {"last_update": {k: m.get(k) for k in LAST_UPDATE_KEYS},
                                      "params_identical_to_graphed": all(torch.equal(x, y) for x, y in zip(a, b)),
                                      "max_relative_param_difference": diff}
    print(f"train without graphs, one update: rollout {m['sps_rollout']:,.0f}, update {m['sps_update']:,.0f} steps/s; "
          f"parameters vs with graphs: {'identical' if report['train_without_graphs']['params_identical_to_graphed'] else f'max relative difference {diff:.1e}'}",
          flush=True)

    _, _, again = train(resolved, asm, pool, device, per_update, seed=0)
    same = all(torch.equal(x, y) for x, y in zip(a, _params(again)))
    report["deterministic"] = same
    print(f"determinism (same seed twice, one update): {'identical' if same else 'DIFFERENT'} parameters", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["deterministic"] else 1)
