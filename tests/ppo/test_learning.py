"""PPO learns: masked environments with known optima are solved within a bounded number of steps."""

from __future__ import annotations

import pytest
import torch

from exitcore.config import PPOConfig
from exitcore.ppo import MLPActorCritic, PPOTrainer, act, seed_everything
from exitcore.ppo.testing import MaskedBanditEnv, MaskedChainEnv


def train(env, ppo):
    seed_everything(ppo.seed)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    log = []
    result = PPOTrainer(env, policy, ppo, on_update=lambda u, m: log.append(m), progress=False).train()
    return policy, result, log


def greedy_bandit_return(env, policy, n=4096):
    """Exact expected reward of the deterministic policy, over fresh contexts and masks."""
    eval_env = MaskedBanditEnv(n, n_contexts=env.n_contexts, n_actions=env.n_actions, p_allowed=env.p_allowed,
                               rewards=env.rewards)
    obs, mask = eval_env.reset(seed=12345)
    action = act(policy, obs, mask)
    return eval_env.rewards[eval_env.context, action].mean().item()


@pytest.mark.parametrize("seed", [0, 1])
def test_masked_bandit_reaches_the_optimum(seed):
    # 6 contexts x 5 actions; every non-HOLD action is masked half of the time, so the best
    # action is often unavailable and the policy must rank the allowed ones correctly.
    env = MaskedBanditEnv(32, n_contexts=6, n_actions=5, p_allowed=0.5)
    ppo = PPOConfig(n_envs=32, n_steps=16, batch_size=128, n_epochs=4, hidden=[32, 32], learning_rate=3e-3,
                    entropy_coef_start=0.01, entropy_coef_end=0.0, entropy_anneal_steps=20_000,
                    total_timesteps=30_000, target_kl=0.0, gamma=0.0, seed=seed)
    policy, _, log = train(env, ppo)
    optimum, random = env.optimal_return(), env.random_return()
    assert optimum - random > 0.15  # the task is not trivial
    assert all(m["mask_violations"] == 0 for m in log)
    assert greedy_bandit_return(env, policy) >= optimum - 0.01
    assert log[-1]["ep_return_mean"] >= optimum - 0.03  # the sampling policy too


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_masked_chain_finds_the_best_allowed_exit(precision):
    # The tempting exits (1.0, 0.9 at bars 0-1) are masked; the best allowed one is 0.8 at bar 5,
    # six decisions away: the credit has to travel back through GAE.
    env = MaskedChainEnv(16)
    ppo = PPOConfig(n_envs=16, n_steps=64, batch_size=256, n_epochs=4, hidden=[32, 32], learning_rate=1e-3,
                    entropy_coef_start=0.01, entropy_coef_end=0.0, entropy_anneal_steps=10_000,
                    total_timesteps=20_480, target_kl=0.0, gamma=0.99, seed=0, precision=precision)
    policy, _, log = train(env, ppo)
    assert all(m["mask_violations"] == 0 for m in log)
    assert log[-1]["ep_return_mean"] == pytest.approx(env.optimal_return(), abs=0.01)
    assert log[-1]["ep_length_mean"] == pytest.approx(6.0, abs=0.1)
    # deterministic policy: hold through bar 4, exit at bar 5
    obs = torch.eye(env.length)
    mask = torch.ones(env.length, 2, dtype=torch.bool)
    mask[: env.min_exit, 1] = False
    assert act(policy, obs, mask)[:6].tolist() == [0, 0, 0, 0, 0, 1]


@pytest.mark.slow
def test_chain_with_five_actions_and_larger_network(full_scale):
    """The chain with the five exit actions and the v1 network; --full runs it longer."""
    env = MaskedChainEnv(64, n_actions=5)
    steps = 200_000 if full_scale else 40_960
    ppo = PPOConfig(n_envs=64, n_steps=64, batch_size=1024, n_epochs=4, hidden=[256, 128], learning_rate=3e-4,
                    entropy_coef_start=0.05, entropy_coef_end=0.0, entropy_anneal_steps=steps // 2,
                    total_timesteps=steps, gamma=0.99, seed=0)
    _, _, log = train(env, ppo)
    assert all(m["mask_violations"] == 0 for m in log)
    assert log[-1]["ep_return_mean"] >= env.optimal_return() - 0.02


def test_bandit_optimum_and_random_baseline_by_hand():
    # one context, rewards 0, 1, 2; actions 1 and 2 each allowed half of the time:
    # best allowed = 2 (3/4 of the time: 2 allowed) ... 2*0.5 + 1*0.25 + 0*0.25 = 1.25
    env = MaskedBanditEnv(4, n_contexts=1, n_actions=3, p_allowed=0.5, rewards=torch.tensor([[0.0, 1.0, 2.0]]))
    assert env.optimal_return() == pytest.approx(1.25)
    # uniform over allowed: {0,1,2} -> 1, {0,2} -> 1, {0,1} -> 0.5, {0} -> 0
    assert env.random_return() == pytest.approx(0.625)
