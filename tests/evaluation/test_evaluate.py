"""evaluate() and walk_forward(): ledgers, baselines chosen on train, evaluators, files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from evalkit import ALL_EVALUATORS, PLUGINS, evaluators_override, experiments_file, one_torch_thread, prepared  # noqa: F401
from evalkit import resolved as resolve_small

from exitcore import hookimpl
from exitcore.errors import DataError, PluginError
from exitcore.evaluation import evaluate as evaluate_module
from exitcore.evaluation.audit import random_policy
from exitcore.evaluation.baselines import DEFAULT_GRID, choose_best
from exitcore.evaluation.evaluate import evaluate, walk_forward, walk_forward_windows
from exitcore.evaluation.ledger_schema import read_ledger
from exitcore.evaluation.metrics import compute_metrics
from exitcore.evaluation.rundir import read_results
from exitcore.experiments import resolve
from exitcore.plugins import PluginHost

GRID_NAMES = [b.name for b in DEFAULT_GRID]


def test_a_finished_run_holds_labelled_results_and_its_ledgers(finished_run):
    run_dir = finished_run["results"].paths[0].parent
    results = read_results(run_dir)
    assert results["format"] == "exitcore.results" and results["split"] == "test" and results["in_sample"] is False
    assert results["label"] == "TEST (out-of-sample)" and set(results["spans"]) == {"train", "test"}
    assert results["policies"] == ["rl", *GRID_NAMES]
    assert list(results["evaluators"]) == list(ALL_EVALUATORS)
    tm = results["evaluators"]["trade_metrics"]
    assert tm["policies"]["rl"]["label"] == "TEST (out-of-sample)" and tm["policies"]["rl"]["in_sample"] is False
    assert tm["train"]["policies"]["rl"]["label"] == "TRAIN (in-sample)" and tm["train"]["in_sample"] is True

    test, train = read_ledger(run_dir / "ledger_test.csv"), read_ledger(run_dir / "ledger_train.csv")
    assert list(test["policy"].unique()) == results["policies"] and set(test["split"]) == {"test"}
    assert set(train["split"]) == {"train"}
    span = results["spans"]["test"]
    rl = compute_metrics(test[test["policy"] == "rl"], start=span[0], end=span[1])
    head = results["headline"]
    assert head["n_trades"] == rl["n_trades"] == results["n_trades"]["test"]
    assert head["sharpe"] == pytest.approx(rl["sharpe"]) and head["audit_verdict"] == results["audit_verdict"] == "PASS"

    # the best baseline was chosen on the training ledgers, by their daily Sharpe
    train_baselines = {p: g for p, g in train.groupby("policy", sort=False) if p != "rl"}
    best, _ = choose_best(train_baselines, *results["spans"]["train"])
    assert results["best_baseline"]["name"] == best == results["evaluators"]["baselines"]["best_baseline"]["name"]
    assert results["best_baseline"]["chosen_on"] == "train"

    sig = results["evaluators"]["significance"]
    assert sig["dsr"]["n_trials"] == 3 and sig["dsr"]["n_trials_source"] == "test registry"
    assert set(sig["intervals"]) == set(results["policies"])
    assert sig["rl_vs_best_baseline"]["baseline"] == best
    lo, hi = sig["intervals"]["rl"]["sharpe"]["low"], sig["intervals"]["rl"]["sharpe"]["high"]
    assert lo <= head["sharpe"] <= hi


class _Spy:
    """An evaluator plugin recording the context it is given."""

    seen: list = []

    @hookimpl
    def register_evaluators(self, register):
        def build(params, ctx):
            def evaluator(ledger, context):
                _Spy.seen.append((ledger, context))
                return {"n": len(ledger), "verdict": "SUSPECT"}

            return evaluator

        register("spy", build)


def _with_plugin(plugin, name="v4_no_lookahead", *overrides):
    host = PluginHost.create(autoload=False, plugins=(*PLUGINS, plugin))
    from evalkit import SMALL

    return resolve(experiments_file(), name, host, overrides=[*SMALL, *overrides])


def test_evaluators_get_the_split_ledgers_and_the_train_choice(monkeypatch):
    chosen_on = []
    real_choose = evaluate_module.choose_best

    def spy_choose(ledgers, start, end):
        chosen_on.extend(set(df["split"]) for df in ledgers.values())
        return real_choose(ledgers, start, end)

    monkeypatch.setattr(evaluate_module, "choose_best", spy_choose)
    _, asm, pools, splits = prepared("v4_no_lookahead")
    res = _with_plugin(_Spy(), "v4_no_lookahead", 'eval.evaluators=[{ name = "spy" }]', "eval.sample_seeds=2")
    _Spy.seen.clear()
    out = evaluate(asm, res, random_policy(asm, 0), pools, splits, n_trials=5, trials_source="here")
    (ledger, ctx), = _Spy.seen
    assert chosen_on and all(s == {"train"} for s in chosen_on)
    assert list(ctx.ledgers) == ["rl", "rl_sample_1", "rl_sample_2", *GRID_NAMES]
    assert ctx.rl_policies == ["rl", "rl_sample_1", "rl_sample_2"] and ctx.baselines == GRID_NAMES
    assert all(set(df["split"]) == {"test"} for df in ctx.ledgers.values())
    assert all(set(df["split"]) == {"train"} for df in ctx.train_ledgers.values())
    assert ledger is ctx.ledgers["rl"] and ctx.best_baseline in ctx.baselines
    assert (ctx.split, ctx.in_sample, ctx.n_trials, ctx.trials_source) == ("test", False, 5, "here")
    assert ctx.start == ctx.spans["test"][0] and ctx.end > ctx.start and ctx.spans["train"][1] < ctx.start
    assert ctx.policy is not None and ctx.config.sample_seeds == 2
    # an evaluator's verdict becomes the evaluation's audit verdict
    assert out.audit_verdict == "SUSPECT" and out.results["evaluators"]["spy"] == {"n": len(ledger), "verdict": "SUSPECT"}
    assert out.results["audit_verdict_from"] == ["spy"] and out.headline["audit_verdict_from"] == ["spy"]
    assert out.paths == ()  # nothing written without a run directory


class _Broken:
    def __init__(self, returns):
        self.returns = returns

    @hookimpl
    def register_evaluators(self, register):
        returns = self.returns

        def build(params, ctx):
            def evaluator(ledger, context):
                if returns == "raise":
                    raise RuntimeError("boom")
                return returns

            return evaluator

        register("broken", build)


@pytest.mark.parametrize(("returns", "message"), [("raise", "failed: RuntimeError: boom"), ([1, 2], "expected a dict"),
                                                   ({"x": object()}, "cannot be written as JSON"),
                                                   ({"verdict": "FAILED"}, "returned verdict 'FAILED'; expected one of PASS, SUSPECT, FAIL \\(or none\\)")])
def test_a_failing_evaluator_is_named(returns, message):
    _, asm, pools, splits = prepared("v4_no_lookahead")
    res = _with_plugin(_Broken(returns), "v4_no_lookahead", 'eval.evaluators=[{ name = "broken" }]')
    with pytest.raises(PluginError, match=message) as info:
        evaluate(asm, res, random_policy(asm, 0), pools, splits, n_trials=1)
    assert "evaluator 'broken'" in str(info.value) and "_Broken" in str(info.value)


def test_the_replays_run_on_one_torch_thread_and_the_count_is_restored(monkeypatch):
    """Two threads made the replays 12x slower on a busy 2-core machine (24 s against 1.9 s)."""
    import torch

    import exitcore.evaluation.evaluate as ev

    res, asm, pools, splits = prepared("v4_no_lookahead")
    res = resolve_small("v4_no_lookahead", evaluators_override(("trade_metrics",)))
    seen = []
    replay = ev.policy_ledgers
    monkeypatch.setattr(ev, "policy_ledgers", lambda *a, **k: (seen.append(torch.get_num_threads()), replay(*a, **k))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        evaluate(asm, res, random_policy(asm, 0), pools, splits, n_trials=1)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1] and after == 2


def test_an_empty_test_split_is_a_clear_error():
    res, asm, pools, splits = prepared("v4_no_lookahead")
    with pytest.raises(DataError, match="the test split has no trades to evaluate"):
        evaluate(asm, res, random_policy(asm, 0), {"train": pools["train"], "test": np.array([], dtype=np.int64)}, splits,
                 n_trials=1)
    with pytest.raises(ValueError, match="at least 1"):
        evaluate(asm, res, random_policy(asm, 0), pools, splits, n_trials=0)


def test_parquet_ledgers(tmp_path):
    _, asm, pools, splits = prepared("v4_no_lookahead")
    res = resolve_small("v4_no_lookahead", 'eval.ledger_format="parquet"', evaluators_override(("trade_metrics",)))
    out = evaluate(asm, res, random_policy(asm, 0), pools, splits, n_trials=1, run_dir=tmp_path)
    assert sorted(p.name for p in out.paths) == ["ledger_test.parquet", "ledger_train.parquet", "results.json"]
    assert read_results(tmp_path)["ledgers"] == {"test": "ledger_test.parquet", "train": "ledger_train.parquet"}
    assert len(read_ledger(tmp_path / "ledger_test.parquet")) == len(pools["test"]) * (1 + len(GRID_NAMES))


def test_before_write_is_asked_before_any_file_is_written(tmp_path):
    """The runner checks there that the run is still its own: a run taken over while it
    evaluated wrote its ledgers and results.json over the new owner's (a review)."""
    from exitcore.errors import NotOwner

    _, asm, pools, splits = prepared("v4_no_lookahead")
    res = resolve_small("v4_no_lookahead", evaluators_override(("trade_metrics",)))

    def taken():
        raise NotOwner("run x is now running under process 1 on elsewhere")

    with pytest.raises(NotOwner):
        evaluate(asm, res, random_policy(asm, 0), pools, splits, n_trials=1, run_dir=tmp_path, before_write=taken)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- walk-forward


def test_walk_forward_windows_are_consecutive_with_the_purge_gap():
    windows = walk_forward_windows(1000, 600, 4, purge=10)
    assert [(w.train_end, w.test_start, w.test_end) for w in windows] == [
        (600, 610, 700), (700, 710, 800), (800, 810, 900), (900, 910, 1000)]
    with pytest.raises(DataError, match="window 1"):
        walk_forward_windows(1000, 600, 40, purge=10)
    with pytest.raises(ValueError):
        walk_forward_windows(1000, 600, 0, purge=10)
    with pytest.raises(TypeError, match="bar position"):  # the old meaning, a fraction, is refused
        walk_forward_windows(1000, 0.6, 2, purge=10)


def test_walk_forward_trains_on_the_past_and_tests_on_each_window(tmp_path):
    res = resolve_small("v4_no_lookahead", "eval.walk_forward=3", "eval.bootstrap_samples=200")
    from evalkit import host

    from exitcore.assembly import assemble
    from exitcore.data.pipeline import load_bars

    bars = load_bars(res.config.data, host())
    seen = []

    def train_fn(assembled, pool):
        seen.append(pool.clone())
        return random_policy(assembled, seed=len(seen))

    out = walk_forward(res, bars, train_fn, run_dir=tmp_path)
    assert len(seen) == 3 and len(out.windows) == 3
    last_bar = assemble(res, bars).table.last_bar
    for w, pool in zip(out.windows, seen):
        bounds = w["bars"]
        assert pool.numel() == w["n_train_trades"] > 0
        # every training trade's window ends before the test window (and its purge gap) starts
        assert int(last_bar[pool].max()) < bounds["train_end"] < bounds["test_start"]
        assert w["metrics"]["rl"]["n_trades"] == w["n_test_trades"] and w["best_baseline"] in GRID_NAMES
        assert w["metrics"]["best_baseline"]["total_pnl"] == pytest.approx(w["metrics"][w["best_baseline"]]["total_pnl"])
    for a, b in zip(out.windows, out.windows[1:]):
        assert a["bars"]["test_end"] == b["bars"]["train_end"]  # consecutive: the next window trains on this one too
        assert len(seen[1]) >= len(seen[0])
    agg = out.aggregate
    assert agg["metrics"]["rl"]["n_trades"] == sum(w["n_test_trades"] for w in out.windows)
    assert agg["metrics"]["rl"]["label"] == "TEST (out-of-sample)" and "dsr" in agg["dsr"]
    assert set(out.ledger["window"]) == {1, 2, 3} and "best_baseline" in set(out.ledger["policy"])
    assert math.isfinite(agg["rl_vs_best_baseline"]["sharpe"]["estimate"])
    assert {p.name for p in tmp_path.iterdir()} == {"walk_forward.json", "ledger_walk_forward.csv"}
    back = read_ledger(tmp_path / "ledger_walk_forward.csv")
    assert len(back) == len(out.ledger)


def test_walk_forward_starts_where_a_dated_train_split_ends():
    from evalkit import host

    from exitcore.data.pipeline import load_bars

    res = resolve_small("v4_no_lookahead", "eval.walk_forward=2", "eval.bootstrap_samples=200")
    bars = load_bars(res.config.data, host())
    cut = bars.frame.index[int(0.3 * len(bars))]  # far from the split.train fraction (0.6)
    dated = resolve_small("v4_no_lookahead", "eval.walk_forward=2", "eval.bootstrap_samples=200",
                          f'split.train_end="{cut.isoformat()}"')
    out = walk_forward(dated, bars, lambda assembled, pool: random_policy(assembled, seed=0))
    assert out.windows[0]["bars"]["train_end"] == int(bars.frame.index.searchsorted(cut))


def test_policy_ledgers_accept_tensor_pools():
    res, asm, pools, splits = prepared("v4_no_lookahead")
    policy = random_policy(asm, 0)
    as_array = evaluate_module.policy_ledgers(asm, pools["test"], "test", policy)
    as_tensor = evaluate_module.policy_ledgers(asm, torch.as_tensor(pools["test"]), "test", policy)
    for name in as_array:
        pd.testing.assert_frame_equal(as_array[name], as_tensor[name])


def test_large_csv_ledgers_point_to_parquet(tmp_path, monkeypatch):
    """M1 data wrote 170 MB of CSV ledgers in 25 s without a word: above LARGE_CSV_BYTES the run
    says how to write them as Parquet."""
    from exitcore.evaluation import evaluate as ev

    small, big = tmp_path / "ledger_test.csv", tmp_path / "ledger_train.csv"
    small.write_bytes(b"x" * 10)
    big.write_bytes(b"x" * 30)
    monkeypatch.setattr(ev, "LARGE_CSV_BYTES", 39)
    assert ev._large_csv_note((small, big)) == (
        "the CSV ledgers take 0 MB; --set eval.ledger_format=parquet (pip install 'exitcore[parquet]') writes them "
        "smaller and faster")
    monkeypatch.setattr(ev, "LARGE_CSV_BYTES", 40)
    assert ev._large_csv_note((small, big)) == ""
    parquet = tmp_path / "ledger_test.parquet"
    parquet.write_bytes(b"x" * 100)
    assert ev._large_csv_note((parquet,)) == ""
