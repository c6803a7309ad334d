"""Builders for the evaluation tests (imported as ``evalkit``).

Experiments are the project's own ``experiments.toml`` definitions (v1-v4), plus the planted
leaks of :mod:`zoo` as experiments extending v4, resolved against a hermetic plugin host (the
shipped plugin modules and the zoo, no entry-point discovery). Data is the seeded synthetic
generator, shortened with ``--set`` overrides so each build takes a fraction of a second.
"""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch

import exitcore_entries
import exitcore_evaluators
import exitcore_features
import exitcore_guards
import exitcore_masks
import exitcore_rewards
import zoo

import exitcore.builtin
import exitcore.builtin.data_sources
import exitcore.builtin.policies
from exitcore.experiments import SHIPPED_FILE, ExperimentsFile, resolve
from exitcore.plugins import PluginHost

PROJECT_FILE = SHIPPED_FILE
PLUGINS = (
    exitcore.builtin,
    exitcore.builtin.data_sources,
    exitcore.builtin.policies,
    exitcore_features,
    exitcore_guards,
    exitcore_masks,
    exitcore_rewards,
    exitcore_entries,
    exitcore_evaluators,
    zoo,
)
ALL_EVALUATORS = ("trade_metrics", "baselines", "significance", "lookahead_audit")
#: v4's features plus one planted leak each; the entry leak replaces the entry strategy
_V4_FEATURES = '{ name = "position" }, { name = "price_window", params = { window = 16 } }, { name = "time_of_day" }'
ZOO_TOML = f"""
[experiments.zoo_next_close]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_next_close" }}]

[experiments.zoo_next_gap]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_next_gap" }}]

[experiments.zoo_centred_ma]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_centred_ma" }}]

[experiments.zoo_global_norm]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_global_norm" }}]

[experiments.zoo_needs_clean_data]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_needs_clean_data" }}]

[experiments.zoo_long_memory]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_long_memory" }}]

[experiments.zoo_rolling_z]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_rolling_z" }}]

[experiments.zoo_cached_next]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_cached_next" }}]

[experiments.zoo_cached_diff]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_cached_diff" }}]

[experiments.zoo_random]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_noisy_feature" }}]
guards = [{{ name = "zoo_random_guard" }}]

[experiments.zoo_noisy_leak]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_noisy_leak" }}]

[experiments.zoo_counter]
extends = "v4_no_lookahead"
features = [{_V4_FEATURES}, {{ name = "zoo_counter" }}]

[experiments.zoo_peek_entry]
extends = "v4_no_lookahead"
entry = {{ name = "zoo_peek_entry" }}

[experiments.zoo_cached_peek_entry]
extends = "v4_no_lookahead"
entry = {{ name = "zoo_cached_peek_entry" }}

[experiments.zoo_keeps_bars_entry]
extends = "v4_no_lookahead"
entry = {{ name = "zoo_keeps_bars_entry" }}

[experiments.zoo_graded_entry]
extends = "v4_no_lookahead"
entry = {{ name = "zoo_graded_entry" }}

[experiments.zoo_graded_entry_past]
extends = "v4_no_lookahead"
entry = {{ name = "zoo_graded_entry", params = {{ future = false }} }}

[experiments.zoo_peek_mask]
extends = "v4_no_lookahead"
masks = [{{ name = "min_exit_bar" }}, {{ name = "zoo_peek_mask" }}]

[experiments.zoo_peek_guard]
extends = "v4_no_lookahead"
guards = [{{ name = "zoo_peek_guard" }}]
"""
#: small, fast versions of any experiment: 4 months of synthetic bars, a small network
SMALL = (
    "data.params.years=0.35",
    "ppo.hidden=[32, 32]",
    "eval.bootstrap_samples=300",
    "eval.audit_decisions=10",
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run a test module's tensor code on one thread (import this fixture into the module).

    The tests step a few hundred trades at a time: tensors far too small for intra-op
    parallelism, whose thread hand-offs cost ten times the work on a busy 2-core machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def host() -> PluginHost:
    """The hermetic plugin host (shipped plugins + the zoo)."""
    return PluginHost.create(autoload=False, plugins=PLUGINS)


@functools.cache
def experiments_file() -> ExperimentsFile:
    """The project's experiments.toml plus the zoo experiments."""
    raw = tomllib.loads(PROJECT_FILE.read_text(encoding="utf-8") + ZOO_TOML)
    return ExperimentsFile(path=PROJECT_FILE, defaults=raw.get("defaults", {}), experiments=raw["experiments"],
                           budgets=raw.get("budgets", {}))


def evaluators_override(names: tuple[str, ...] = ALL_EVALUATORS) -> str:
    """A ``--set`` override listing ``names`` as the experiment's evaluators."""
    return "eval.evaluators=[" + ", ".join(f'{{ name = "{n}" }}' for n in names) + "]"


def resolved(name: str, *overrides: str, small: bool = True) -> Any:
    """Experiment ``name`` resolved (small by default), with ``overrides`` on top."""
    return resolve(experiments_file(), name, host(), overrides=[*(SMALL if small else ()), *overrides])


@functools.cache
def prepared(name: str, *overrides: str) -> tuple[Any, Any, dict[str, Any], list[Any]]:
    """``(resolved, assembled, pools, splits)`` for a small ``name`` (cached per process)."""
    from exitcore.assembly import assemble
    from exitcore.data.pipeline import load_bars
    from exitcore.data.splits import assign_trades, make_splits

    res = resolved(name, *overrides)
    bars = load_bars(res.config.data, host())
    asm = assemble(res, bars)
    lookback = asm.components.lookback
    splits = make_splits(bars.frame.index, res.config.split, res.config.env.max_bars + lookback)
    return res, asm, assign_trades(splits, asm.table, lookback), splits


def train_tiny(assembled: Any, pool: Any, run_dir: Path | None = None, updates: int = 2) -> Any:
    """A policy trained for a couple of PPO updates on ``pool`` (with the experiment's ``ppo`` config)."""
    import attrs

    from exitcore.ppo.rng import seed_everything
    from exitcore.ppo.trainer import PPOTrainer

    ppo = assembled.resolved.config.ppo
    ppo = attrs.evolve(ppo, n_envs=8, n_steps=32, batch_size=64, n_epochs=2, total_timesteps=8 * 32 * updates,
                       checkpoint_every=1000, device="cpu")
    seed_everything(ppo.seed)
    env = assembled.make_env(torch.as_tensor(pool), n_envs=ppo.n_envs, seed=ppo.seed)
    policy = assembled.resolved.policy.build(None, ppo, env.obs_dim, env.n_actions)
    trainer = PPOTrainer(env, policy, ppo, run_dir=run_dir, progress=False)
    trainer.train()
    return trainer.policy.eval()


def make_run(run_dir: Path, name: str = "v4_no_lookahead", *overrides: str, n_trials: int = 3) -> dict[str, Any]:
    """A finished run directory as ``exitcore run`` leaves it: config.toml, run.json, a trained
    checkpoint, ledgers and results.json (evaluated with every shipped evaluator)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see one_torch_thread
    try:
        return _make_run(run_dir, name, *overrides, n_trials=n_trials)
    finally:
        torch.set_num_threads(threads)


def _make_run(run_dir: Path, name: str, *overrides: str, n_trials: int) -> dict[str, Any]:
    from exitcore.evaluation.evaluate import evaluate

    res, asm, pools, splits = prepared(name, evaluators_override(), "ppo.n_envs=8", "ppo.batch_size=64", *overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(res.to_toml(), encoding="utf-8")
    decidable = [int(i) for i in pools["train"] if bool(asm.table.decidable[int(i)])]
    policy = train_tiny(asm, decidable, run_dir=run_dir)
    info = {
        "run_id": run_dir.name,
        "experiment": res.config.name,
        "config_hash": res.config_hash(),
        "data": {"source": asm.bars.source, "source_component": res.config.data.source, "hash": asm.bars.content_hash(),
                 "column_hashes": asm.bars.column_hashes(), "n_bars": len(asm.bars), "start": str(asm.bars.start), "end": str(asm.bars.end), "timeframe": "15min"},
        "splits": [{"name": s.name, "start_bar": s.start_bar, "end_bar": s.end_bar} for s in splits],
        "seed": 0,
        "device": "cpu",
        "timesteps": 512,
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    out = evaluate(asm, res, policy, {k: torch.as_tensor(v) for k, v in pools.items()}, splits, n_trials=n_trials,
                   trials_source="test registry", data_hash=info["data"]["hash"], run_dir=run_dir)
    return {"resolved": res, "assembled": asm, "pools": pools, "splits": splits, "policy": policy, "info": info,
            "results": out}
