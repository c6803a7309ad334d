"""exitcore's PPO trainer vs. sb3-contrib's MaskablePPO, side by side in one run (design.md §8).

Both train on the same environment: experiment ``v4_no_lookahead`` (its features, rewards,
guards and mask) on the embedded synthetic bars. exitcore steps :class:`VecExitEnv` directly;
MaskablePPO steps a second instance of it through the gymnasium adapter
(:class:`exitcore.env.gym_adapter.GymVecExitEnv`, ``episode_info=False``) behind the thinnest
sb3 ``VecEnv`` shim we could write (no per-env Python environments, no terminal-observation
copies). Same network (separate actor and critic MLPs of ``--nets`` sizes, tanh, orthogonal
init), same ``n_envs``, ``n_steps``, ``batch_size``, ``n_epochs``, clipping, no KL early stop.

The two trainers alternate update by update (exitcore's ``on_update`` runs one MaskablePPO
update and one timing of the pure network compute), so all three see the same machine load;
the medians over the updates after the first are compared. The *bound* is the forward passes of
the rollout plus forward and backward passes of every minibatch (in exitcore's micro-batches),
timed alone on a copy of the network.

``--sb3-env per-env`` gives MaskablePPO the environment the way sb3 users usually set one up
instead: sb3's ``DummyVecEnv`` over ``n_envs`` per-env Python ``gymnasium.Env`` objects (the
scalar reference implementation of the same environment, ``tests/env/reference.py``, on the
same bars and trades), masks fetched per env by sb3-contrib's ``get_action_masks``.

sb3-contrib is a bench-only dependency (``pip install 'exitcore[bench]'``); exitcore never
imports it. Run: ``python benchmarks/bench_ppo_vs_sb3.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from exitcore.config import PPOConfig
from exitcore.env.compile_check import COMPILE_CHECK_STEPS
from exitcore.ppo import MLPActorCritic, PPOTrainer, seed_everything

try:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecEnv
except ImportError as exc:  # pragma: no cover - a bench-only dependency
    raise SystemExit(f"this benchmark needs sb3-contrib: pip install 'exitcore[bench]' ({exc})") from None

from bench_ppo_compute import add_run_shape_args, cpu_model, time_network_bound  # noqa: E402 - same folder


# --------------------------------------------------------------------------- the environment


def build_assembled(years: float, device: torch.device) -> Any:
    """v4_no_lookahead assembled on ``years`` of the seeded synthetic bars."""
    from exitcore.assembly import assemble
    from exitcore.data.source_params import SynthParams
    from exitcore.data.synth import generate
    from exitcore.experiments import find_file, load_file, resolve
    from exitcore.plugins import PluginHost

    resolved = resolve(load_file(find_file()), "v4_no_lookahead", PluginHost.create())
    bars = generate(SynthParams(years=years, seed=0))
    return assemble(resolved, bars, device=device)


def make_env(assembled: Any, n_envs: int, seed: int, compile: bool = False) -> Any:
    pool = torch.nonzero(assembled.table.decidable).flatten()
    return assembled.make_env(pool, n_envs=n_envs, seed=seed, compile=compile)


class GymVectorAsSB3(VecEnv):
    """A gymnasium ``VectorEnv`` (same-step autoreset, all ends terminal) as an sb3 ``VecEnv``."""

    def __init__(self, venv: Any, seed: int):
        self.venv, self._seed = venv, seed
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> np.ndarray:
        obs, _ = self.venv.reset(seed=self._seed)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> Any:
        obs, rewards, terminated, truncated, _ = self.venv.step(self._actions)
        return obs, rewards.astype(np.float32), terminated | truncated, [{} for _ in range(self.num_envs)]

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        if method_name != "action_masks":
            raise AttributeError(method_name)
        return list(self.venv.action_masks())

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks"

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None] * self.num_envs
        raise AttributeError(attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(attr_name)

    def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
        return [False] * self.num_envs

    def close(self) -> None:
        pass


def per_env_vec_env(assembled: Any, n_envs: int, seed: int) -> VecEnv:
    """sb3's ``DummyVecEnv`` over per-env Python environments: the scalar reference of the same
    experiment (v4 plugin set, design.md's env and costs) on the same bars and trades."""
    import sys
    from pathlib import Path

    from stable_baselines3.common.vec_env import DummyVecEnv

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from env.helpers import ref_market, trade_rows
    from env.reference import ReferenceExitEnv, v4_config

    market, rows, cfg = ref_market(assembled.bars), trade_rows(assembled.trades), v4_config()
    venv = DummyVecEnv([lambda: ReferenceExitEnv(market, rows, cfg) for _ in range(n_envs)])
    venv.seed(seed)
    return venv


class PhaseTimer(BaseCallback):
    """Times MaskablePPO's rollout (rollout start -> end); the rest of learn() is its update."""

    def _on_rollout_start(self) -> None:
        self.t_start = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.t_end = time.perf_counter()

    def _on_step(self) -> bool:
        return True


# --------------------------------------------------------------------------- one comparison


def compare(assembled: Any, hidden: list[int], args: argparse.Namespace) -> dict[str, Any]:
    ppo = PPOConfig(n_envs=args.n_envs, n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
                    hidden=hidden, learning_rate=3e-4, clip_coef=0.2, clip_vf=0.2, entropy_coef_start=0.01,
                    entropy_coef_end=0.01, target_kl=0.0, total_timesteps=args.updates * args.n_envs * args.n_steps,
                    checkpoint_every=10_000, seed=0, precision=args.precision, micro_batch_size=args.micro_batch)
    from exitcore.env.gym_adapter import GymVecExitEnv

    seed_everything(ppo.seed)
    env = make_env(assembled, ppo.n_envs, ppo.seed, args.compile_env)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    shadow = copy.deepcopy(policy)

    if args.sb3_env == "per-env":
        sb3_env = per_env_vec_env(assembled, ppo.n_envs, ppo.seed)
    else:
        sb3_env = GymVectorAsSB3(GymVecExitEnv(make_env(assembled, ppo.n_envs, ppo.seed, args.compile_env),
                                               episode_info=False), ppo.seed)
    model = MaskablePPO(
        "MlpPolicy", sb3_env, n_steps=ppo.n_steps, batch_size=ppo.batch_size, n_epochs=ppo.n_epochs,
        learning_rate=ppo.learning_rate, gamma=ppo.gamma, gae_lambda=ppo.gae_lambda, clip_range=ppo.clip_coef,
        clip_range_vf=ppo.clip_vf, normalize_advantage=True, ent_coef=ppo.entropy_coef_start, vf_coef=ppo.vf_coef,
        max_grad_norm=ppo.max_grad_norm, target_kl=None, seed=ppo.seed, device="cpu", verbose=0,
        policy_kwargs=dict(net_arch=dict(pi=hidden, vf=hidden), activation_fn=nn.Tanh, ortho_init=True),
    )
    # A logger of our own: sb3's default makes a /tmp/SB3-<time> folder on every learn() call.
    model.set_logger(Logger(folder=None, output_formats=[]))
    sb3_params = sum(p.numel() for p in model.policy.parameters())
    ours_params = sum(p.numel() for p in policy.parameters())
    assert sb3_params == ours_params, f"networks differ: sb3 {sb3_params} vs exitcore {ours_params} parameters"
    timer = PhaseTimer()
    samples = ppo.n_envs * ppo.n_steps
    obs_all = torch.randn(samples, env.obs_dim)
    step_obs = obs_all[: ppo.n_envs].clone()
    rows: list[dict[str, float]] = []

    def sb3_update() -> tuple[float, float]:
        model.learn(total_timesteps=samples, reset_num_timesteps=False, callback=timer)
        done = time.perf_counter()
        return timer.t_end - timer.t_start, done - timer.t_end

    def bound() -> tuple[float, float]:
        return time_network_bound(shadow, ppo, step_obs, obs_all, torch.device("cpu"))

    def on_update(update: int, m: dict[str, Any]) -> None:
        sb3_r, sb3_u = sb3_update()
        b_r, b_u = bound()
        rows.append(dict(ours_r=m["time_rollout"], ours_u=m["time_update"], sb3_r=sb3_r, sb3_u=sb3_u, bound_r=b_r, bound_u=b_u))

    PPOTrainer(env, policy, ppo, on_update=on_update, progress=False).train()
    timed = rows[1:]
    med = lambda key: statistics.median(r[key] for r in timed)  # noqa: E731
    total = lambda who: statistics.median(r[f"{who}_r"] + r[f"{who}_u"] for r in timed)  # noqa: E731
    sps = {who: samples / total(who) for who in ("ours", "sb3", "bound")}
    return {
        "hidden": hidden,
        "precision": ppo.precision,
        "micro_batch": ppo.micro_batch_rows("cpu"),
        "parameters": ours_params,
        "exitcore_sps": round(sps["ours"]),
        "exitcore_rollout_sps": round(samples / med("ours_r")),
        "exitcore_update_sps": round(samples / med("ours_u")),
        "sb3_sps": round(sps["sb3"]),
        "sb3_rollout_sps": round(samples / med("sb3_r")),
        "sb3_update_sps": round(samples / med("sb3_u")),
        "bound_sps": round(sps["bound"]),
        "speedup_vs_sb3": round(sps["ours"] / sps["sb3"], 2),
        # The speed-up any trainer doing this arithmetic could reach: the network compute alone
        # (at exitcore's precision) against MaskablePPO's whole update.
        "ceiling_vs_sb3": round(sps["bound"] / sps["sb3"], 2),
        "fraction_of_bound": round(sps["ours"] / sps["bound"], 3),
        "updates_timed": len(timed),
    }


def env_alone(assembled: Any, n_envs: int, n_steps: int, compile: bool) -> float:
    """Env steps/s of VecExitEnv alone (random allowed actions), for reading the figures."""
    env = make_env(assembled, n_envs, 0, compile)
    obs, mask = env.reset(seed=0)
    gen = torch.Generator().manual_seed(0)
    action = torch.zeros(n_envs, dtype=torch.int64)
    for _ in range(2 + COMPILE_CHECK_STEPS):  # eager first step, compilation, eager-checked steps
        env.step(action)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        obs, mask, _, _ = env.step(action)
        action = torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)
    return n_envs * n_steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_shape_args(p)
    p.add_argument("--updates", type=int, default=6, help="updates per trainer (the first is warm-up)")
    p.add_argument("--years", type=float, default=1.0, help="years of synthetic bars")
    p.add_argument("--compile-env", action="store_true",
                   help="torch.compile the environment step for both trainers (ppo.compile = 'on')")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="exitcore's ppo.precision (and the bound's); MaskablePPO always runs float32")
    p.add_argument("--sb3-env", default="batched", choices=["batched", "per-env"],
                   help="MaskablePPO's environment: the batched gymnasium adapter (default) or sb3's DummyVecEnv "
                        "over per-env Python environments (the scalar reference)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    assembled = build_assembled(args.years, device)
    print(f"# {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"# v4_no_lookahead env (obs_dim {assembled.components.obs_dim}), n_envs {args.n_envs}, n_steps {args.n_steps}, "
          f"batch {args.batch_size}, epochs {args.n_epochs}; MaskablePPO's env: {args.sb3_env}; "
          f"exitcore's env {'compiled' if args.compile_env else 'eager'}, alone "
          f"{env_alone(assembled, args.n_envs, 64, args.compile_env):,.0f} steps/s")
    for spec in args.nets.split(";"):
        row = compare(assembled, [int(x) for x in spec.split(",")], args)
        if args.json:
            print(json.dumps(row))
        else:
            print(f"hidden {row['hidden']} ({row['precision']}, passes of {row['micro_batch']} rows): exitcore {row['exitcore_sps']:,} steps/s (rollout {row['exitcore_rollout_sps']:,}, "
                  f"update {row['exitcore_update_sps']:,}) | MaskablePPO {row['sb3_sps']:,} (rollout {row['sb3_rollout_sps']:,}, "
                  f"update {row['sb3_update_sps']:,}) | bound {row['bound_sps']:,} -> {row['speedup_vs_sb3']}x sb3, "
                  f"{100 * row['fraction_of_bound']:.0f}% of the bound; the bound itself is {row['ceiling_vs_sb3']}x sb3")
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
