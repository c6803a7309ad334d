"""The shipped evaluators: registration, parameters, and what each one reports on a small run."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

import exitcore_entries
import exitcore_evaluators
import exitcore_features
import exitcore_guards
import exitcore_masks
import exitcore_rewards
import exitcore.builtin.data_sources
import exitcore.builtin.policies
from exitcore.components import ComponentKind
from exitcore.errors import ConfigError
from exitcore.experiments import ExperimentsFile, resolve
from exitcore.plugins import PluginHost

PLUGINS = (exitcore.builtin.data_sources, exitcore.builtin.policies, exitcore_features, exitcore_guards, exitcore_masks,
           exitcore_rewards, exitcore_entries, exitcore_evaluators)
EXPERIMENT = """
[experiments.small]
data = { source = "synthetic", params = { years = 0.3, seed = 5 } }
features = [{ name = "position" }, { name = "price_window", params = { window = 8 } }]
rewards = [{ name = "pnl" }, { name = "cost" }]
guards = [{ name = "min_bars_for_exit", params = { min_bars = 2 } }]
masks = [{ name = "min_exit_bar", params = { n = 3 } }]
ppo = { hidden = [16, 16] }
eval = { sample_seeds = 2, bootstrap_samples = 200, audit_decisions = 4, evaluators = [
  { name = "trade_metrics", params = { quick_exit_bars = 5 } },
  { name = "baselines" },
  { name = "significance", params = { method = "circular", block_length = 3 } },
  { name = "lookahead_audit", params = { modes = ["truncate", "nan"] } },
] }
"""


def _resolve(*overrides: str, text: str = EXPERIMENT):
    raw = tomllib.loads(text)
    file = ExperimentsFile(path=Path("inline.toml"), defaults={}, experiments=raw["experiments"], budgets={})
    return resolve(file, "small", PluginHost.create(autoload=False, plugins=PLUGINS), overrides=list(overrides))


RECORDED = tuple(s / 252**0.5 for s in (-2.38, -6.63, -1.90))


@pytest.fixture(scope="module")
def evaluated():
    """``{split: EvalResults}`` of a random-init policy on a small synthetic experiment."""
    from exitcore.data.pipeline import load_bars
    from exitcore.evaluation.audit import prepare, random_policy
    from exitcore.evaluation.evaluate import evaluate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread hand-offs cost more than the work
    try:
        res = _resolve()
        bars = load_bars(res.config.data, PluginHost.create(autoload=False, plugins=PLUGINS))
        asm, pools = prepare(res, bars)
        from exitcore.data.splits import make_splits

        splits = make_splits(bars.frame.index, res.config.split, res.config.env.max_bars + asm.components.lookback)
        policy = random_policy(asm, seed=2)
        # the test split's DSR also gets three recorded trials' Sharpes (per day), dispersed as
        # three quick-budget v4 seeds were
        out = {split: evaluate(asm, res, policy, pools, splits, n_trials=4, trials_source="unit test", split=split,
                               recorded_sharpes=RECORDED if split == "test" else ())
               for split in ("test", "train")}
        # another run's seed (the training seed, the audit's sampling): the same bootstrap days
        out["test_seed_7"] = evaluate(asm, res, policy, pools, splits, n_trials=4, trials_source="unit test",
                                      split="test", seed=7)
        return out
    finally:
        torch.set_num_threads(threads)


def test_the_four_evaluators_are_registered_with_their_parameters():
    comps = PluginHost.create(autoload=False, plugins=[exitcore_evaluators]).components(ComponentKind.EVALUATOR)
    assert list(comps) == ["trade_metrics", "baselines", "significance", "lookahead_audit"]
    assert all(c.description for c in comps.values())
    assert comps["baselines"].params is None and comps["lookahead_audit"].params is exitcore_evaluators.AuditParams


def test_registering_imports_neither_torch_nor_pandas():
    code = ("import sys, exitcore_evaluators; "
            "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("evaluator", "where", "message"), [
    ('{ name = "lookahead_audit", params = { modes = ["future"] } }', "params.modes", "non-empty list of truncate"),
    ('{ name = "lookahead_audit", params = { decisions = -1 } }', "params.decisions", "non-negative integer"),
    ('{ name = "significance", params = { method = "iid" } }', "params.method", "'stationary', 'circular'"),
    ('{ name = "trade_metrics", params = { quick_exit_bars = 0 } }', "params.quick_exit_bars", "positive integer"),
    ('{ name = "baselines", params = { grid = 3 } }', "params.grid", "takes no parameters"),
])
def test_bad_parameters_are_reported_at_their_toml_path(evaluator, where, message):
    text = EXPERIMENT[: EXPERIMENT.index("evaluators = [")] + f"evaluators = [{evaluator}] }}\n"
    with pytest.raises(ConfigError) as info:
        _resolve(text=text)
    assert f"experiments.small.eval.evaluators[0].{where}: " in str(info.value) and message in str(info.value)


def test_trade_metrics_labels_the_split_and_the_in_sample_figures(evaluated):
    out = evaluated["test"].results["evaluators"]["trade_metrics"]
    assert out["label"] == "TEST (out-of-sample)" and out["in_sample"] is False
    assert list(out["policies"]) == ["rl", "rl_sample_1", "rl_sample_2"]
    assert out["policies"]["rl"]["quick_exit_bars"] == 5  # the parameter reaches the metric
    assert out["sampled_summary"]["n_seeds"] == 2
    assert out["train"]["in_sample"] is True and out["train"]["policies"]["rl"]["label"] == "TRAIN (in-sample)"
    on_train = evaluated["train"].results["evaluators"]["trade_metrics"]
    assert on_train["label"] == "TRAIN (in-sample)" and on_train["in_sample"] is True and "train" not in on_train


def test_baselines_sets_every_baseline_beside_rl(evaluated):
    res = evaluated["test"].results
    out = res["evaluators"]["baselines"]
    rows = out["comparison"]
    assert rows[0]["policy"] == "rl" and [r["policy"] for r in rows[1:]] == list(out["policies"])
    assert sum(r["best_on_train"] for r in rows) == 1 and out["best_baseline"]["name"] == res["best_baseline"]["name"]
    best = next(r for r in rows if r["best_on_train"])
    assert best["rl_minus_sharpe"] == pytest.approx(rows[0]["sharpe"] - best["sharpe"])
    assert out["train"]["policies"][best["policy"]]["label"] == "TRAIN (in-sample)"


def test_significance_reports_intervals_psr_dsr_and_the_paired_difference(evaluated):
    out = evaluated["test"].results["evaluators"]["significance"]
    assert out["method"] == "circular" and out["n_samples"] == 200
    for name, iv in out["intervals"].items():
        assert iv["block_length"] == 3 and iv["sharpe"]["low"] <= iv["sharpe"]["high"], name
    assert 0 <= out["psr"]["psr"] <= 1
    assert out["dsr"]["n_trials"] == 4 and out["dsr"]["n_trials_source"] == "unit test" and out["dsr"]["dsr"] <= out["psr"]["psr"]
    # the trials' Sharpe variance: the recorded trials' (with RL's own), as it exceeds the null 1/(T-1)
    dsr = out["dsr"]
    spread = np.var([*RECORDED, dsr["sharpe"]], ddof=1)
    assert spread > 1 / (dsr["n_days"] - 1)
    assert dsr["variance_source"] == "recorded: 4 trials" and dsr["trials_sharpe_variance"] == pytest.approx(spread)
    on_train = evaluated["train"].results["evaluators"]["significance"]["dsr"]
    assert on_train["variance_source"] == "null 1/(T-1)" and on_train["trials_sharpe_variance"] == pytest.approx(
        1 / (on_train["n_days"] - 1))
    assert out["rl_vs_best_baseline"]["chosen_on"] == "train" and out["rl_vs_best_on_split"]["chosen_on"] == "test"
    # the conservative comparison picks the baseline that did best on the evaluated split itself
    sharpes = out["rl_vs_best_on_split"]["baseline_sharpes"]
    assert out["rl_vs_best_on_split"]["baseline"] == max(sharpes, key=sharpes.get)


def test_lookahead_audit_runs_with_the_given_modes(evaluated):
    out = evaluated["test"].results["evaluators"]["lookahead_audit"]
    assert out["verdict"] == "PASS" and out["modes"] == ["truncate", "nan"] and out["n_decisions"] == 4
    assert evaluated["test"].audit_verdict == "PASS" and evaluated["test"].headline["audit_verdict"] == "PASS"
    assert "in-sample" in evaluated["train"].results["evaluators"]["lookahead_audit"]["suspect_note"]


def test_every_run_resamples_the_same_days_whatever_its_seed(evaluated):
    """The bootstrap was seeded with the training seed: an unchanged baseline got another
    interval in every run (one touching 0, the next not)."""
    a = evaluated["test"].results["evaluators"]["significance"]["intervals"]
    b = evaluated["test_seed_7"].results["evaluators"]["significance"]["intervals"]
    assert a["fixed_stop_target"]["sharpe"] == b["fixed_stop_target"]["sharpe"]
    assert a["fixed_stop_target"]["seed"] == b["fixed_stop_target"]["seed"] == 0


def test_a_block_length_beyond_the_split_is_cut_to_its_days():
    """significance.params.block_length > the test split's days failed the run after training
    (bootstrap_metrics refuses it): the evaluator cuts it to the split's days and records that."""
    from exitcore.data.pipeline import load_bars
    from exitcore.data.splits import make_splits
    from exitcore.evaluation.audit import prepare, random_policy
    from exitcore.evaluation.evaluate import evaluate

    res = _resolve(text=EXPERIMENT.replace("block_length = 3", "block_length = 100000")
                   .replace('{ name = "lookahead_audit", params = { modes = ["truncate", "nan"] } },', ""))
    bars = load_bars(res.config.data, PluginHost.create(autoload=False, plugins=PLUGINS))
    asm, pools = prepare(res, bars)
    splits = make_splits(bars.frame.index, res.config.split, res.config.env.max_bars + asm.components.lookback)
    out = evaluate(asm, res, random_policy(asm, seed=2), pools, splits, n_trials=1, split="test")
    intervals = out.results["evaluators"]["significance"]["intervals"]["rl"]
    assert intervals["block_length"] == intervals["n_days"] < 100000
