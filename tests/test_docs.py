"""docs/plugins.md stays true: its assembly example runs, and its tables cover every field and action."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from exitcore.experiments import SHIPPED_FILE

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_assembly_example_runs(monkeypatch, tmp_path):
    block = next(b for b in _python_blocks(PLUGINS_DOC.read_text()) if "assemble(experiment, bars)" in b)
    monkeypatch.chdir(tmp_path)  # anywhere: a user's project is not exitcore's checkout
    scope: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), scope)
    env, obs, mask, reward = scope["env"], scope["obs"], scope["mask"], scope["reward"]
    assert env.n_envs > 100 and obs.shape == (env.n_envs, env.obs_dim) and mask.shape == (env.n_envs, 5)
    assert reward.shape == (env.n_envs,) and scope["ctx"].market is not None


def test_the_entry_strategy_example_runs():
    """The example entry strategy registers, resolves, gives valid causal trades, and its extra
    column reaches the ledger."""
    import types

    import numpy as np
    import pandas as pd

    from exitcore.assembly import assemble, check_trades
    from exitcore.components import EntryContext
    from exitcore.data.pipeline import load_bars
    from exitcore.evaluation.ledger import hold_actor, make_ledger
    from exitcore.experiments import load_file, resolve
    from exitcore.plugins import PluginHost

    block = next(b for b in _python_blocks(PLUGINS_DOC.read_text()) if "def register_entry_strategies" in b)
    module = types.ModuleType("my_entries")
    exec(compile(block, "docs/plugins.md", "exec"), module.__dict__)
    host = PluginHost.create(plugins=[module])
    experiment = resolve(load_file(SHIPPED_FILE), "v4_no_lookahead", host, budget="smoke",
                         overrides=["entry.name=close_breakout", "entry.params.period=30"])
    bars = load_bars(experiment.config.data, host)
    assembled = assemble(experiment, bars)  # runs the strategy and checks what it returned
    trades = assembled.trades.frame
    assert len(trades) > 100 and check_trades(assembled.trades, len(bars)) == []
    assert trades["signal_bar"].dtype == np.int64 and set(trades["direction"]) == {-1, 1}
    s = int(trades["signal_bar"].iloc[len(trades) // 2])
    cfg = experiment.config
    strategy = experiment.entry.build(EntryContext(experiment=cfg, env=cfg.env, costs=cfg.costs))
    cut = strategy(bars.head(s + 1)).frame  # causal: bars after the signal change nothing before it
    pd.testing.assert_frame_equal(cut, trades[trades["signal_bar"] <= s])
    valid = np.flatnonzero(assembled.table.valid.cpu().numpy())[:10]
    ledger = make_ledger(assembled, valid, "test", hold_actor)
    assert list(ledger["side"]) == list(trades["side"].iloc[valid])


def test_the_state_table_lists_every_field():
    from exitcore.env.state import EnvState

    documented = set(re.findall(r"^\| `(\w+)` \| \w+ \|", PLUGINS_DOC.read_text(), re.M))
    missing = [f.name for f in dataclasses.fields(EnvState) if f.name not in documented]
    assert not missing, f"EnvState fields missing from docs/plugins.md: {missing}"


@pytest.mark.parametrize("name", ["HOLD", "EXIT", "TIGHTEN_SL", "TRAIL_BE", "PARTIAL_EXIT"])
def test_the_action_table_gives_each_id(name):
    from exitcore.actions import Action

    assert f"| {getattr(Action, name)} | `{name}` |" in PLUGINS_DOC.read_text()


def test_the_parameter_validators_listed_are_exitcore_params():
    """docs/plugins.md lists the validators a plugin's params class can use: exactly the public
    ones of exitcore.params (a renamed or new one shows up here)."""
    import exitcore.params as params

    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text[text.index("* **Parameters**"):text.index("* **Errors**")]
    listed = set(re.findall(r"`(\w+)(?:\([^`]*\))?`", section)) - {"params", "exitcore", "None", "build", "nan", "inf"}
    public = {n for n, v in vars(params).items() if callable(v) and not n.startswith("_") and v.__module__ == params.__name__
              and n not in ("FieldError",)}
    public |= {n for n, v in vars(params).items() if typing.get_origin(v) is typing.Annotated}  # AnyFloat
    assert listed == public, (listed ^ public)


@pytest.mark.parametrize("doc", ["plugins.md", "experiments.md", "evaluation.md", "environment.md", "data.md", "ppo.md",
                                 "gym.md", "json.md"])
def test_the_docs_cite_no_file_outside_the_repository(doc):
    """design.md is not in the repository: a citation of it ("design.md §2") sends the reader
    nowhere; the docs point at the repository's own docs instead."""
    text = (ROOT / "docs" / doc).read_text()
    assert "design.md" not in text
    # nor the shipped experiments, whose assumptions `experiments show` prints
    assert "design.md" not in SHIPPED_FILE.read_text()
    for target in re.findall(r"docs/([\w-]+\.md)", text) + re.findall(r"\]\(([\w-]+\.md)\)", text):
        assert (ROOT / "docs" / target).is_file(), target


def test_the_run_attributes_the_docs_list_are_the_real_ones():
    """docs/plugins.md said the run "carries its id, directory" (read as `run.id`, `run.dir`):
    its table lists the exact attributes, and every one exists on RunInfo, and every field too."""
    import attrs

    from exitcore.runner import RunInfo

    text = PLUGINS_DOC.read_text()
    documented = set(re.findall(r"^\| `run\.(\w+)` \|", text, re.M))
    real = {f.name for f in attrs.fields(RunInfo)} | {n for n, v in vars(RunInfo).items() if isinstance(v, property)}
    assert documented == real


def test_the_audit_example_runs_and_its_assertion_bites(monkeypatch, tmp_path):
    """The "Testing a plugin" audit example is a real test: it passes on v4 and fails on the
    deliberately leaky v3 (the same block with the name changed)."""
    block = next(b for b in _python_blocks(PLUGINS_DOC.read_text()) if "audit_experiment" in b)
    monkeypatch.chdir(tmp_path)  # anywhere: a user's project is not exitcore's checkout
    scope: dict = {}
    exec(compile(block, "docs/plugins.md", "exec"), scope)
    scope["test_my_experiment_does_not_look_ahead"]()
    leaky: dict = {}
    exec(compile(block.replace('"v4_no_lookahead"', '"v3"'), "docs/plugins.md", "exec"), leaky)
    with pytest.raises(AssertionError, match="leaky_next_move"):
        leaky["test_my_experiment_does_not_look_ahead"]()


def test_the_trainer_example_in_ppo_md_runs(monkeypatch, tmp_path):
    """It was not valid Python (a positional argument after `...`) and used names it never defined."""
    import tempfile

    block = next(b for b in _python_blocks((ROOT / "docs" / "ppo.md").read_text()) if "PPOTrainer(" in b)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # its mkdtemp() run directory: not left in /tmp
    scope: dict = {}
    exec(compile(block, "docs/ppo.md", "exec"), scope)
    result = scope["result"]
    assert result.status == "done" and result.global_step == scope["ppo"].total_timesteps


def test_the_whole_run_example_in_ppo_md_runs(monkeypatch, tmp_path):
    """Trial AC 12: `execute` was the one-call Python run, and no doc said so."""
    block = next(b for b in _python_blocks((ROOT / "docs" / "ppo.md").read_text()) if "execute(RunRequest(" in b)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "docs/ppo.md", "exec"), scope)
    outcome = scope["outcome"]
    assert outcome.status == "done" and outcome.run_dir.resolve().parent == (tmp_path / "runs").resolve()
    assert (outcome.run_dir / "results.json").is_file() and isinstance(outcome.headline["sharpe"], float)


def test_the_gym_example_runs(monkeypatch, tmp_path):
    pytest.importorskip("gymnasium")
    block = next(b for b in _python_blocks((ROOT / "docs" / "gym.md").read_text()) if "GymVecExitEnv(" in b)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "docs/gym.md", "exec"), scope)
    assert scope["obs"].shape == (256, scope["env"].single_observation_space.shape[0])
