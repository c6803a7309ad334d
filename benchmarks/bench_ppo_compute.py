"""PPO training throughput vs. the pure network compute bound (design.md §8).

For each network size, in one run on the same machine:

* **trainer**: :class:`exitcore.ppo.PPOTrainer` on a cheap masked test environment
  (:class:`exitcore.ppo.testing.MaskedBanditEnv` with a ``--obs-dim`` embedding), steps/s
  measured over the updates after a warm-up update;
* **bound**: the network work of the same updates timed alone: the rollout's forward passes
  (``n_steps`` batches of ``[n_envs, obs_dim]`` under ``inference_mode``) plus, for every
  minibatch of every epoch, a forward and backward pass on ``[batch_size, obs_dim]``, in the
  trainer's micro-batches (``PPOConfig.micro_batch_rows``). No environment, sampling, loss
  arithmetic, optimiser or bookkeeping.

``fraction = bound time / trainer time`` (1.0 would mean the trainer costs nothing beyond the
network). The bound is timed right after each trainer update (same machine load) and medians
over the updates are compared. Run: ``python benchmarks/bench_ppo_compute.py`` (``--help``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import time

import torch

from exitcore.config import PPOConfig
from exitcore.ppo import MLPActorCritic, PPOTrainer, seed_everything
from exitcore.ppo.testing import MaskedBanditEnv


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def make_config(hidden: list[int], n_envs: int, n_steps: int, batch_size: int, n_epochs: int, updates: int,
                precision: str = "fp32", micro_batch_size: int = 0) -> PPOConfig:
    return PPOConfig(n_envs=n_envs, n_steps=n_steps, batch_size=batch_size, n_epochs=n_epochs, hidden=hidden,
                     total_timesteps=updates * n_envs * n_steps, target_kl=0.0, checkpoint_every=10_000, seed=0,
                     precision=precision, micro_batch_size=micro_batch_size)


def time_network_bound(shadow: torch.nn.Module, ppo: PPOConfig, step_obs: torch.Tensor, obs_all: torch.Tensor,
                       device: torch.device) -> tuple[float, float]:
    """The pure network compute of one update, timed alone: the rollout's ``n_steps`` forward
    passes on ``step_obs`` and forward+backward of every minibatch of ``obs_all`` for
    ``n_epochs``, in the trainer's micro-batches (no environment, sampling, loss arithmetic or
    optimiser). Returns (rollout seconds, update seconds)."""
    micro = ppo.micro_batch_rows(device.type)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=ppo.precision == "bf16")
    samples = obs_all.shape[0]
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast:
        for _ in range(ppo.n_steps):
            shadow(step_obs)
    t1 = time.perf_counter()
    for _ in range(ppo.n_epochs):
        perm = torch.randperm(samples, device=device)
        for i in range(samples // ppo.batch_size):
            for part in obs_all[perm[i * ppo.batch_size:(i + 1) * ppo.batch_size]].split(micro):
                with autocast:
                    logits, value = shadow(part)
                (logits.float().mean() + value.float().mean()).backward()
            shadow.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return t1 - t0, time.perf_counter() - t1


def measure(ppo: PPOConfig, obs_dim: int, device: torch.device) -> dict[str, float]:
    """Median seconds per update: trainer (rollout, update) and bound (rollout, update).

    The bound is timed inside ``on_update``, right after each trainer update, on a copy of the
    policy: both see the same machine load (the cores are shared and noisy), and the medians
    over the updates after the first (warm-up) are compared.
    """
    seed_everything(ppo.seed)
    env = MaskedBanditEnv(ppo.n_envs, n_contexts=64, obs_dim=obs_dim, device=device)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    shadow = copy.deepcopy(policy).to(device)
    samples = ppo.n_envs * ppo.n_steps
    obs_all = torch.randn(samples, obs_dim, device=device)
    step_obs = obs_all[: ppo.n_envs].clone()
    rows: list[tuple[float, float, float, float]] = []

    def bound() -> tuple[float, float]:
        return time_network_bound(shadow, ppo, step_obs, obs_all, device)

    def on_update(update: int, m: dict) -> None:
        b_rollout, b_update = bound()
        rows.append((m["time_rollout"], m["time_update"], b_rollout, b_update))

    PPOTrainer(env, policy, ppo, on_update=on_update, progress=False).train()
    timed = rows[1:]
    med = lambda i: statistics.median(r[i] for r in timed)  # noqa: E731
    return {"samples": samples, "trainer_rollout": med(0), "trainer_update": med(1),
            "bound_rollout": med(2), "bound_update": med(3),
            "trainer_total": statistics.median(r[0] + r[1] for r in timed),
            "bound_total": statistics.median(r[2] + r[3] for r in timed)}


def add_run_shape_args(p: argparse.ArgumentParser) -> None:
    """The PPO run shape both PPO benchmarks take: networks, envs, steps, batch, epochs (v4's by default)."""
    p.add_argument("--nets", default="512,256;64,64", help="hidden sizes, ';'-separated")
    p.add_argument("--n-envs", type=int, default=256)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8192)
    p.add_argument("--n-epochs", type=int, default=4)
    p.add_argument("--micro-batch", type=int, default=0,
                   help="ppo.micro_batch_size: rows per forward/backward pass (0: automatic)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_shape_args(p)
    p.add_argument("--obs-dim", type=int, default=27)
    p.add_argument("--updates", type=int, default=6, help="updates per measurement (the first is warm-up)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="ppo.precision (trainer and bound)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--json", action="store_true", help="print one JSON object per network")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"# {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"# n_envs {args.n_envs}, n_steps {args.n_steps}, batch {args.batch_size}, epochs {args.n_epochs}, obs_dim {args.obs_dim}")
    for spec in args.nets.split(";"):
        hidden = [int(x) for x in spec.split(",")]
        ppo = make_config(hidden, args.n_envs, args.n_steps, args.batch_size, args.n_epochs, args.updates, args.precision,
                          args.micro_batch)
        t = measure(ppo, args.obs_dim, device)
        sps = lambda key: t["samples"] / t[key]  # noqa: E731
        row = {
            "hidden": hidden,
            "precision": ppo.precision,
            "micro_batch": ppo.micro_batch_rows(device.type),
            "trainer_sps": round(sps("trainer_total")), "trainer_rollout_sps": round(sps("trainer_rollout")),
            "trainer_update_sps": round(sps("trainer_update")),
            "bound_sps": round(sps("bound_total")), "bound_rollout_sps": round(sps("bound_rollout")),
            "bound_update_sps": round(sps("bound_update")),
            "fraction_of_bound": round(t["bound_total"] / t["trainer_total"], 3),
        }
        if args.json:
            print(json.dumps(row))
        else:
            print(f"hidden {hidden} ({ppo.precision}, passes of {row['micro_batch']} rows): trainer {row['trainer_sps']:,} steps/s (rollout {row['trainer_rollout_sps']:,}, "
                  f"update {row['trainer_update_sps']:,}); bound {row['bound_sps']:,} steps/s (rollout "
                  f"{row['bound_rollout_sps']:,}, update {row['bound_update_sps']:,}); "
                  f"{100 * row['fraction_of_bound']:.0f}% of the bound")


if __name__ == "__main__":
    main()
