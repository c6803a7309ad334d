"""Entropy and learning-rate schedules."""

from __future__ import annotations

import pytest

from exitcore.config import PPOConfig
from exitcore.ppo.schedule import LinearSchedule, Schedules


def test_linear_schedule_anneals_then_holds():
    s = LinearSchedule(0.05, 0.005, 1000)
    assert s(0) == 0.05
    assert s(500) == pytest.approx(0.0275)
    assert s(1000) == 0.005 and s(5000) == 0.005  # exactly the end value once annealed
    assert LinearSchedule(0.05, 0.005, 0)(0) == 0.005


def test_schedules_follow_the_config_and_resume_from_their_position():
    ppo = PPOConfig(entropy_coef_start=0.05, entropy_coef_end=0.001, entropy_anneal_steps=100, anneal_lr=True,
                    learning_rate=1e-3, n_envs=2, n_steps=5, batch_size=10)
    s = Schedules(ppo, total_timesteps=200)
    s.advance(50)
    assert s.values() == pytest.approx({"entropy_coef": 0.05 + 0.5 * (0.001 - 0.05), "learning_rate": 0.75e-3})
    restored = Schedules(ppo, total_timesteps=200)
    restored.load_state_dict(s.state_dict())
    assert restored.values() == s.values()
    constant = Schedules(PPOConfig(learning_rate=1e-3), total_timesteps=200)
    constant.advance(190)
    assert constant.values()["learning_rate"] == 1e-3


def test_compile_auto_compiles_on_cuda_and_for_long_cpu_runs():
    from exitcore.config import COMPILE_AUTO_CPU_STEPS

    short, long = PPOConfig(total_timesteps=262_144), PPOConfig(total_timesteps=COMPILE_AUTO_CPU_STEPS)
    assert not short.compiles_env("cpu") and short.compiles_env("cuda")
    assert long.compiles_env("cpu")
    assert not PPOConfig(total_timesteps=COMPILE_AUTO_CPU_STEPS, compile="off").compiles_env("cuda")
    assert PPOConfig(total_timesteps=1_000, compile="on").compiles_env("cpu")
