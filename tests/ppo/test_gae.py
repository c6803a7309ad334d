"""GAE against a case computed by hand, and its limiting cases."""

from __future__ import annotations

import torch

from exitcore.ppo.gae import compute_gae


def test_gae_matches_hand_computed_case_with_dones():
    # One env, T = 3, gamma = 0.5, lambda = 0.5; the episode ends with step 1.
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [2.0]])
    dones = torch.tensor([[False], [True], [False]])
    last_value = torch.tensor([4.0])
    # t=2: delta = 3 + 0.5*4 - 2 = 3;               A2 = 3
    # t=1: done, so no bootstrap: delta = 2 - 1 = 1;  A1 = 1 (A2 is not carried across the end)
    # t=0: delta = 1 + 0.5*1.0 - 0.5 = 1;           A0 = 1 + 0.5*0.5*1 = 1.25
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma=0.5, gae_lambda=0.5)
    assert torch.allclose(adv, torch.tensor([[1.25], [1.0], [3.0]]))
    assert torch.allclose(ret, torch.tensor([[1.75], [2.0], [5.0]]))


def test_gae_envs_are_independent_and_lambda_limits():
    torch.manual_seed(0)
    T, N, gamma = 5, 3, 0.9
    rewards, values = torch.randn(T, N), torch.randn(T, N)
    dones = torch.rand(T, N) < 0.3
    last_value = torch.randn(N)
    # lambda = 0: one-step TD errors
    adv0, _ = compute_gae(rewards, values, dones, last_value, gamma, 0.0)
    next_values = torch.cat([values[1:], last_value[None]])
    td = rewards + gamma * next_values * (~dones) - values
    assert torch.allclose(adv0, td, atol=1e-6)
    # lambda = 1: discounted return to the end of the episode (or bootstrap) minus the value
    _, ret1 = compute_gae(rewards, values, dones, last_value, gamma, 1.0)
    expected = torch.empty(T, N)
    running = last_value.clone()
    for t in reversed(range(T)):
        running = rewards[t] + gamma * running * (~dones[t])
        expected[t] = running
    assert torch.allclose(ret1, expected, atol=1e-5)
    # each env is computed on its own
    adv, _ = compute_gae(rewards, values, dones, last_value, gamma, 0.95)
    adv_single, _ = compute_gae(rewards[:, 1:2], values[:, 1:2], dones[:, 1:2], last_value[1:2], gamma, 0.95)
    assert torch.allclose(adv[:, 1:2], adv_single)
