"""PPO on the real VecExitEnv: on synthetic bars with a learnable exit structure, the trained
policy beats a random policy and always-HOLD on held-out trades."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from exitcore.components import ComponentKind
from exitcore.config import CostConfig, DataConfig, EnvConfig, ExperimentConfig, PPOConfig
from exitcore.experiments import ResolvedComponent
from exitcore.plugins import PluginHost
from exitcore.ppo import MLPActorCritic, PPOTrainer, act, seed_everything
from exitcore.ppo.distribution import MaskedCategorical

exitcore_features = pytest.importorskip("exitcore_features")
exitcore_rewards = pytest.importorskip("exitcore_rewards")
exitcore_masks = pytest.importorskip("exitcore_masks")

from exitcore.assembly import assemble  # noqa: E402
from exitcore.data.bars import Bars, Trades  # noqa: E402
from exitcore.actions import Action  # noqa: E402

PERIOD = 24  # bars per price cycle
MAX_BARS = 24


def cyclic_bars(n: int, seed: int = 0) -> Bars:
    """EURUSD-like bars on a 24-bar cycle of +-20 pips plus 1-pip noise: holding through a
    whole cycle earns nothing, exiting near the top of the cycle earns ~20 pips."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    close = 1.1 + 0.002 * np.sin(2 * math.pi * t / PERIOD) + rng.normal(0, 0.0001, n)
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) + 0.00005
    low = np.minimum(open_, close) - 0.00005
    idx = pd.date_range("2024-01-08", periods=n, freq="15min", tz="UTC", name="ts")
    return Bars(pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=idx), "15min", 0.0001,
                source="cyclic")


def experiment():
    host = PluginHost.create(autoload=False, plugins=(exitcore_features, exitcore_rewards, exitcore_masks))

    def rc(kind, name, params=None, weight=1.0):
        comp = host.get(kind, name)
        return ResolvedComponent(comp, comp.params(**(params or {})) if comp.params else None, f"test.{name}", weight)

    config = ExperimentConfig(name="cyclic", env=EnvConfig(max_bars=MAX_BARS), costs=CostConfig(spread_pips=1.0),
                              data=DataConfig())
    from types import SimpleNamespace

    return SimpleNamespace(
        config=config,
        features=[rc(ComponentKind.FEATURE, "position"), rc(ComponentKind.FEATURE, "price_window", {"window": 4})],
        rewards=[rc(ComponentKind.REWARD, "pnl"), rc(ComponentKind.REWARD, "cost")],
        guards=[],
        masks=[rc(ComponentKind.MASK, "min_exit_bar", {"n": 1})],
    )


def held_out_return(asm, pool, choose) -> float:
    """Mean episode return over the trades in ``pool``, each played once (sweep mode)."""
    env = asm.make_env(pool, auto_reset=False)
    obs, mask = env.reset()
    for _ in range(MAX_BARS + 1):
        live = ~env.state.done
        obs, mask, _reward, _done = env.step(choose(obs, mask, live))
    stats = env.episode_stats()
    assert stats["episodes"] == len(pool)
    return stats["ep_return_mean"]


def test_trained_policy_beats_random_and_always_hold_on_held_out_trades(full_scale):
    n_bars = 4000
    bars = cyclic_bars(n_bars)
    signals = np.arange(40, n_bars - MAX_BARS - 2, 3)  # long entries at every phase of the cycle
    trades = Trades(pd.DataFrame({"signal_bar": signals, "direction": 1, "stop_dist": 0.02, "target_dist": 0.02}))
    asm = assemble(experiment(), bars, trades=trades)
    split = int(0.7 * n_bars)
    train_pool = torch.nonzero(asm.table.decidable & (asm.table.entry_bar < split - MAX_BARS)).flatten()
    test_pool = torch.nonzero(asm.table.decidable & (asm.table.entry_bar > split)).flatten()
    assert len(train_pool) > 500 and len(test_pool) > 200

    ppo = PPOConfig(n_envs=64, n_steps=32, batch_size=512, n_epochs=4, hidden=[64, 64], learning_rate=1e-3,
                    entropy_coef_start=0.01, entropy_coef_end=0.0, entropy_anneal_steps=40_000,
                    total_timesteps=200_000 if full_scale else 65_536, gamma=0.99, seed=0)
    seed_everything(ppo.seed)
    env = asm.make_env(train_pool, n_envs=ppo.n_envs, seed=ppo.seed)
    policy = MLPActorCritic.from_config(ppo, env.obs_dim, env.n_actions)
    log = []
    PPOTrainer(env, policy, ppo, on_update=lambda u, m: log.append(m), progress=False).train()
    # the environment's own statistics reach the log, flattened
    assert {"exit_reasons/agent", "blocked_rate/EXIT", "action_frac/HOLD", "masked_frac/EXIT"} <= set(log[-1])

    gen = torch.Generator().manual_seed(1)
    trained = held_out_return(asm, test_pool, lambda o, m, live: act(policy, o, m, live=live))
    hold = held_out_return(asm, test_pool, lambda o, m, live: torch.full((o.shape[0],), int(Action.HOLD)))
    random = held_out_return(
        asm, test_pool, lambda o, m, live: MaskedCategorical(torch.zeros_like(m, dtype=torch.float32), m, live=live).sample(gen))
    assert trained > hold + 0.05 and trained > random + 0.05, (trained, hold, random)
