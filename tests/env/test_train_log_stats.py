"""VecExitEnv's statistics in the training log: a rate with nothing to divide is NaN."""

from __future__ import annotations

import json
import math

import torch

from exitcore.actions import Action
from exitcore.assembly import assemble
from exitcore.config import PPOConfig
from exitcore.hookspecs import hookimpl
from exitcore.ppo import MLPActorCritic, PPOTrainer, seed_everything
from exitcore.evaluation.rundir import TRAIN_LOG_FILE
from exitcore.ppo.logger import TB_DIR

from .envkit import random_bars, resolved, trades_from


class _NeverPartial:
    """A mask that removes PARTIAL_EXIT at every decision: the policy can never sample it."""

    @hookimpl
    def register_action_masks(self, register):
        def build(params, ctx):
            def mask(state):
                allowed = torch.ones(state.k.shape[0], 5, dtype=torch.bool, device=state.k.device)
                allowed[:, Action.PARTIAL_EXIT] = False
                return allowed

            return mask

        register("never_partial", build)


def test_blocked_rate_of_an_action_never_sampled_is_nan_not_zero(tmp_path):
    """0 blocked of 0 attempts is no rate: the log said 0.0 ("never blocked"), while
    evaluation's per-action blocked rate says NaN. JSON lines write it as "nan" (as every
    non-finite value); TensorBoard gets no point for it."""
    bars = random_bars(2000, seed=5)
    trades = trades_from([(30 + 11 * i, 1 if i % 3 else -1, 0.002, 0.004) for i in range(150)])
    res = resolved(guards=[("min_bars_for_exit", {"min_bars": 3})], masks=[("never_partial", {})],
                   extra_plugins=(_NeverPartial(),))
    asm = assemble(res, bars, trades=trades)
    ppo = PPOConfig(n_envs=16, n_steps=32, batch_size=256, n_epochs=1, hidden=[16, 16], total_timesteps=1024,
                    seed=0, compile="off")
    seed_everything(ppo.seed)
    env = asm.make_env(torch.nonzero(asm.table.decidable).flatten(), n_envs=ppo.n_envs, seed=ppo.seed)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    seen = []
    PPOTrainer(env, policy, ppo, run_dir=tmp_path, on_update=lambda u, m: seen.append(m), progress=False).train()

    records = [json.loads(line) for line in (tmp_path / TRAIN_LOG_FILE).read_text().splitlines()]
    assert len(records) == len(seen) == 2
    for record, metrics in zip(records, seen):
        assert record["sampled_frac/PARTIAL_EXIT"] == 0.0 and record["masked_frac/PARTIAL_EXIT"] == 1.0
        assert math.isnan(metrics["blocked_rate/PARTIAL_EXIT"])
        assert record["blocked_rate/PARTIAL_EXIT"] == "nan"
        # EXIT was sampled, and the guard blocks it at the first decisions: a real rate
        assert record["sampled_frac/EXIT"] > 0 and 0.0 < record["blocked_rate/EXIT"] <= 1.0
        assert 0.0 < record["blocked_total_rate"] < 1.0

    if (tmp_path / TB_DIR).exists():  # TensorBoard installed: no point for "no value"
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(tmp_path / TB_DIR), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        assert "blocked_rate/EXIT" in tags and "blocked_rate/PARTIAL_EXIT" not in tags
