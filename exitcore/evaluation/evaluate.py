"""Evaluate a trained policy: ledgers, baselines, evaluator plugins, results (design.md §7).

:func:`evaluate` is the one function the run orchestrator calls after training:

1. the RL ledger on the evaluated split (``test``): the deterministic policy, plus
   ``eval.sample_seeds`` sampled-policy ledgers; and the deterministic RL ledger on the
   training split, for in-sample figures that are reported as such;
2. the baseline exits (:mod:`exitcore.evaluation.baselines`) on the same trades of both splits,
   and the best baseline chosen on the **training** split only;
3. every evaluator listed in ``eval.evaluators`` (``evaluator(rl_ledger, EvalContext)``), each
   result namespaced by the evaluator's name;
4. the ledgers (``ledger_test.csv``, ``ledger_train.csv``, or Parquet) and ``results.json``
   written atomically into the run directory.

:func:`walk_forward` evaluates over consecutive test windows instead: for window ``i`` it
trains (through the caller's ``train_fn``, so evaluation never imports the trainer) on every bar
before the window, tests on the window after the purge gap, and reports each window and the
aggregate of the concatenated out-of-sample ledgers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch

from exitcore.errors import ConfigError, DataError, ExitcoreError, PluginError, describe_exception
from exitcore.evaluation import jsonable
from exitcore.evaluation.baselines import DEFAULT_GRID, Baseline, baseline_ledgers, best_baseline_choice, choose_best
from exitcore.evaluation.context import EvalContext, split_span
from exitcore.evaluation.ledger import (
    RL_POLICY,
    ledger_file_name,
    make_ledger,
    policy_actor,
    sampled_ledgers,
    trade_rows_numpy,
    write_atomic_ledger,
    write_ledgers,
)
from exitcore.evaluation.metrics import compute_metrics, headline, split_label
from exitcore.evaluation.rundir import RESULTS_FILE, WALK_FORWARD_FILE, write_json_atomic
from exitcore.evaluation.verdicts import VERDICT_RANK, audit_why, verdict_sources, worst_verdict
from exitcore.threads import one_torch_thread
from exitcore.words import plural

RESULTS_FORMAT = "exitcore.results"
RESULTS_VERSION = 1

Progress = Callable[[str], None]


@attrs.frozen(eq=False)
class EvalResults:
    """What :func:`evaluate` produced.

    ``results`` — the JSON-ready results (what ``results.json`` holds, see :func:`evaluate`);
    ``ledgers`` — ``{split: {policy: ledger}}``; ``headline`` — the RL policy's headline metrics
    on the evaluated split (:func:`~exitcore.evaluation.metrics.headline`, plus ``audit_verdict``) for
    the run registry; ``audit_verdict`` — the worst ``verdict`` an evaluator returned (``PASS``,
    ``SUSPECT``, ``FAIL``) or ``None`` when no evaluator audits; ``paths`` — files written.
    """

    results: dict[str, Any]
    ledgers: dict[str, dict[str, pd.DataFrame]]
    headline: dict[str, Any]
    audit_verdict: str | None
    paths: tuple[Path, ...] = ()

    @property
    def summary(self) -> str:
        """A few lines for the end of ``exitcore run``: audit verdict, RL vs the best baseline, DSR."""
        from exitcore.evaluation.report import summary_text

        return summary_text(self.results)


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None and message:
        progress(message)


def _pool(pools: Mapping[str, Any], name: str) -> np.ndarray:
    return trade_rows_numpy(pools.get(name, ()))


def _spans(market: Any, splits: Sequence[Any]) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    return {sp.name: split_span(market, sp.start_bar, sp.end_bar) for sp in splits}


def policy_ledgers(
    assembled: Any,
    pool: np.ndarray,
    split: str,
    policy: torch.nn.Module,
    *,
    sample_seeds: int = 0,
    seed: int = 0,
    grid: Sequence[Baseline] = DEFAULT_GRID,
) -> dict[str, pd.DataFrame]:
    """``{policy name: ledger}`` on one split: ``rl``, ``rl_sample_<k>`` and every baseline."""
    out = {RL_POLICY: make_ledger(assembled, pool, split, policy_actor(policy), RL_POLICY)}
    out.update(sampled_ledgers(assembled, pool, split, policy, sample_seeds, seed))
    out.update(baseline_ledgers(assembled, pool, split, grid))
    return out


def evaluate(
    assembled: Any,
    resolved: Any,
    policy: torch.nn.Module,
    pools: Mapping[str, Any],
    splits: Sequence[Any],
    *,
    n_trials: int,
    trials_source: str = "",
    recorded_sharpes: Sequence[float] = (),
    data_hash: str = "",
    run_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    seed: int = 0,
    split: str = "test",
    grid: Sequence[Baseline] = DEFAULT_GRID,
    before_write: Callable[[], None] | None = None,
) -> EvalResults:
    """Evaluate ``policy`` on ``split`` of ``assembled`` and run the experiment's evaluators.

    ``pools`` maps split names to trade rows (:func:`exitcore.data.splits.assign_trades`),
    ``splits`` are the :class:`~exitcore.data.splits.Split` objects (their spans bound the
    daily series). ``n_trials`` is the run registry's trial count for this dataset (this run
    included), ``trials_source`` a note on where it came from (shown in reports),
    ``recorded_sharpes`` the per-day Sharpes of the other trials recorded on the dataset and
    split (:func:`exitcore.evaluation.significance.recorded_trial_sharpes`; the DSR's trial
    variance is the larger of theirs, with this run's, and the null ``1/(T-1)``), ``data_hash``
    the bars' content hash (recorded so that a report can tell results of other bars). ``progress``
    receives a line per stage. With ``run_dir``, ``before_write`` (if given) is called and then
    the ledgers and ``results.json`` are written
    there (format ``eval.ledger_format``).

    ``results.json``: ``format``, ``version``, ``experiment``, ``config_hash``, ``data_hash``
    (when given), ``split``,
    ``label``, ``in_sample``, ``spans`` (``{split: [start, end]}``), ``n_trades`` per split,
    ``policies``, ``best_baseline`` (``name``, ``chosen_on: "train"``, the in-sample
    ``train_sharpes`` it was chosen by), ``n_trials``, ``trials_source``, ``headline``,
    ``evaluators`` (``{name: result}``), ``audit_verdict``, ``ledgers`` (file names), ``seed``.
    """
    cfg = resolved.config
    if policy is None:
        raise ValueError("evaluate() needs the trained policy")
    if n_trials < 1:
        raise ValueError(f"n_trials counts this run, so it is at least 1; got {n_trials}")
    names = {sp.name for sp in splits}
    test_pool, train_pool = _pool(pools, split), _pool(pools, "train")
    if split not in names or test_pool.size == 0:
        raise DataError(
            f"the {split} split has no trades to evaluate ({test_pool.size} trades in {split!r}; splits: "
            f"{', '.join(f'{k}={len(v)}' for k, v in pools.items())}); use more data, a larger split.{split} share "
            "or an entry strategy that trades more often"
        )
    if train_pool.size == 0:
        raise DataError("the train split has no trades: the best baseline is chosen on it")
    spans = _spans(assembled.market, splits)

    sampled = f" (deterministic, and sampled with {plural(cfg.eval.sample_seeds, 'seed')})" if cfg.eval.sample_seeds else ""
    # one torch thread: a busy 2-core machine made the replays 12x slower with two (24 s against
    # 1.9 s), a quiet one is as fast with one (docs/benchmarks.md); the ledgers are the same
    with one_torch_thread():
        _say(progress, f"replaying the {split} split's {test_pool.size:,} trades: the policy{sampled} and the baselines")
        ledgers = {split: policy_ledgers(assembled, test_pool, split, policy, sample_seeds=cfg.eval.sample_seeds,
                                         seed=seed, grid=grid)}
        if split != "train":
            _say(progress, f"replaying the train split's {train_pool.size:,} trades (in-sample: the best baseline is "
                           "chosen there)")
            ledgers["train"] = policy_ledgers(assembled, train_pool, "train", policy, grid=grid)
    train = ledgers["train"]
    baselines_train = {k: v for k, v in train.items() if k != RL_POLICY}
    best, train_sharpes = choose_best(baselines_train, *spans["train"])

    from exitcore.evaluation.audit import make_rebuild

    ctx = EvalContext(
        split=split,
        in_sample=split == "train",
        start=spans[split][0],
        end=spans[split][1],
        spans=spans,
        assembled=assembled,
        pools={k: _pool(pools, k) for k in pools},
        ledgers=ledgers[split],
        train_ledgers=train,
        best_baseline=best,
        baseline_train_sharpes=train_sharpes,
        n_trials=int(n_trials),
        trials_source=trials_source,
        config=cfg.eval,
        policy=policy,
        rebuild=make_rebuild(assembled),
        seed=seed,
        recorded_sharpes=tuple(float(s) for s in recorded_sharpes),
    )
    evaluator_results = run_evaluators(resolved, assembled, ctx, progress)
    verdict = worst_verdict(evaluator_results)
    sources = verdict_sources(evaluator_results, verdict)
    head = headline(compute_metrics(ctx.rl_ledger, start=ctx.start, end=ctx.end, split=split, policy=RL_POLICY))
    if verdict is not None:
        head["audit_verdict"] = verdict
        head["audit_verdict_from"] = sources
        if verdict == "FAIL" and audit_why(evaluator_results):
            head["audit_why"] = audit_why(evaluator_results)
    fmt = cfg.eval.ledger_format
    results: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "experiment": cfg.name,
        "config_hash": resolved.config_hash() if hasattr(resolved, "config_hash") else "",
        **({"data_hash": data_hash} if data_hash else {}),
        "split": split,
        "label": split_label(split),
        "in_sample": split == "train",
        "spans": {k: [a.isoformat(), b.isoformat()] for k, (a, b) in spans.items()},
        "n_trades": {k: len(v[RL_POLICY]) for k, v in ledgers.items()},
        "policies": list(ledgers[split]),
        "best_baseline": best_baseline_choice(best, train_sharpes, split_label("train")),
        "n_trials": int(n_trials),
        "trials_source": trials_source,
        "headline": head,
        "evaluators": evaluator_results,
        "audit_verdict": verdict,
        "audit_verdict_from": sources,
        "ledgers": {k: ledger_file_name(k, fmt) for k in ledgers},
        "seed": seed,
    }
    results = jsonable.from_jsonable(jsonable.to_jsonable(results))  # plain data, checked serialisable
    paths: tuple[Path, ...] = ()
    if run_dir is not None:
        if before_write is not None:
            before_write()  # e.g. the runner's check that the run is still this process's
        _say(progress, f"writing ledgers and {RESULTS_FILE} to {run_dir}")
        paths = tuple(write_run_outputs(run_dir, ledgers, results, fmt))
        _say(progress, _large_csv_note(paths))
    return EvalResults(results, ledgers, head, verdict, paths)


#: CSV ledgers larger than this in all get the note of :func:`_large_csv_note`
LARGE_CSV_BYTES = 100 * 2**20


def _large_csv_note(paths: tuple[Path, ...]) -> str:
    """A note where the CSV ledgers are large (M1 data: 170 MB, 25 s to write): Parquet
    (``eval.ledger_format``) is several times smaller and faster to write and read; else ``""``."""
    size = sum(p.stat().st_size for p in paths if p.suffix == ".csv" and p.is_file())
    if size <= LARGE_CSV_BYTES:
        return ""
    return (f"the CSV ledgers take {size / 2**20:,.0f} MB; --set eval.ledger_format=parquet (pip install "
            "'exitcore[parquet]') writes them smaller and faster")


def run_evaluators(resolved: Any, assembled: Any, ctx: EvalContext, progress: Progress | None = None) -> dict[str, Any]:
    """Build and run every evaluator of ``resolved.evaluators``; ``{name: JSON-ready result}``.

    A failure names the evaluator, its plugin and its place in the experiment.
    """
    out: dict[str, Any] = {}
    for rc in resolved.evaluators:
        _say(progress, f"running evaluator {rc.name}")
        fn = rc.build(assembled.ctx)
        where = f"{rc.path} (evaluator {rc.name!r} from {rc.component.origin})"
        try:
            result = fn(ctx.rl_ledger, ctx)
        except ExitcoreError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
        except Exception as exc:
            raise PluginError(f"{where} failed: {describe_exception(exc)}") from exc
        if not isinstance(result, Mapping):
            raise PluginError(f"{where} returned {type(result).__name__}, expected a dict of results")
        if result.get("verdict") is not None and result["verdict"] not in VERDICT_RANK:
            # a misspelt verdict ("FAILED") would otherwise be ignored and the run pass
            raise PluginError(f"{where} returned verdict {result['verdict']!r}; expected one of "
                              f"{', '.join(VERDICT_RANK)} (or none)")
        try:
            out[rc.name] = jsonable.from_jsonable(jsonable.to_jsonable(result))
        except TypeError as exc:
            raise PluginError(f"{where} returned a result that cannot be written as JSON: {exc}") from exc
    return out


def check_ledger_format(fmt: str) -> None:
    """Refuse a ledger format this installation cannot write (Parquet without pyarrow): the run
    checks it before loading data, so it does not fail after training."""
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigError([("eval.ledger_format", "'parquet' needs pyarrow (pip install 'exitcore[parquet]'), "
                                                      "or use 'csv'")]) from None


def write_run_outputs(
    run_dir: str | os.PathLike[str], ledgers: Mapping[str, Mapping[str, pd.DataFrame]], results: Any, fmt: str = "csv"
) -> list[Path]:
    """The ledgers (one file per split) and ``results.json``, each written atomically;
    ``results["ledger_sha256"]`` records each ledger file's sha256, so a ledger replaced or
    changed since (one copied from another run with as many trades) is told apart
    (:func:`~exitcore.evaluation.rundir.check_ledger_file`)."""
    from exitcore.evaluation.rundir import file_sha256

    check_ledger_format(fmt)
    paths = write_ledgers(ledgers, run_dir, fmt)
    if isinstance(results, dict):
        results["ledger_sha256"] = {k: file_sha256(Path(run_dir) / ledger_file_name(k, fmt)) for k in ledgers}
    paths.append(write_json_atomic(Path(run_dir) / RESULTS_FILE, results))
    return paths


# --------------------------------------------------------------------------- walk-forward


@attrs.frozen
class Window:
    """Walk-forward window ``index``: train on bars ``[0, train_end)``, test on ``[test_start, test_end)``."""

    index: int
    train_end: int
    test_start: int
    test_end: int


def walk_forward_windows(n_bars: int, start: int, windows: int, purge: int) -> list[Window]:
    """Consecutive test windows over the bars from position ``start`` (where the training split ends).

    The bars ``[start, n)`` are cut into ``windows`` equal consecutive pieces
    ``[a_i, a_{i+1})``. Window ``i`` trains on every bar before ``a_i`` (an expanding window:
    all the past) and tests on ``[a_i + purge, a_{i+1})``: the purge gap keeps every bar that
    feeds a training episode out of the test episodes, as between the ordinary splits.
    """
    if windows < 1:
        raise ValueError(f"walk-forward needs at least one window, got {windows}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):  # it was a fraction before
        raise TypeError(f"start is the bar position where the train split ends, got {start!r}")
    edges = np.linspace(start, n_bars, windows + 1).round().astype(np.int64)
    out = []
    for i in range(windows):
        a, b = int(edges[i]), int(edges[i + 1])
        if b - (a + purge) <= 0 or a <= 0:
            raise DataError(
                f"eval.walk_forward = {windows}: window {i + 1} would test on bars {a + purge}..{b - 1} after the purge gap "
                f"of {purge} bars (the data has {n_bars} bars); use fewer windows or more data"
            )
        out.append(Window(i + 1, a, a + purge, b))
    return out


def walk_forward_plan(assembled: Any, windows: int) -> list[tuple[Window, dict[str, np.ndarray]]]:
    """The walk-forward windows of an assembled experiment (:func:`walk_forward_windows`) with
    each window's ``train`` and ``test`` trade rows; :class:`DataError` when a window cannot be
    tested (too many windows for the data, or a test window without trades). Cheap: ``run``
    checks it before training, ``experiments check --build`` too."""
    from exitcore.data.splits import Split, assign_trades, make_splits, purge_gap

    cfg = assembled.resolved.config
    bars = assembled.bars
    lookback = assembled.components.lookback
    origins = assembled.resolved.split_origins
    purge = purge_gap(cfg.split, cfg.env.max_bars + lookback, origins=origins)
    # the first test window starts where the experiment's train split ends (split.train_end
    # when dates are set, else the split.train fraction), as the ordinary test split would
    train_end = make_splits(bars.frame.index, cfg.split, cfg.env.max_bars + lookback, origins=origins)[0].end_bar
    plan = []
    for w in walk_forward_windows(len(bars), train_end, windows, purge):
        pools = assign_trades([Split("train", 0, w.train_end), Split("test", w.test_start, w.test_end)],
                              assembled.table, lookback)
        if pools["test"].size == 0:
            raise DataError(f"eval.walk_forward = {windows}: walk-forward window {w.index} (bars {w.test_start}.."
                            f"{w.test_end - 1}) has no trades; use fewer windows or more data")
        plan.append((w, pools))
    return plan


@attrs.frozen(eq=False)
class WalkForwardResult:
    """Per-window results, the aggregate over the concatenated out-of-sample ledgers, and the ledgers.

    ``ledger`` holds every window's test rows of every policy plus ``best_baseline`` (each
    window's train-chosen baseline on that window) and a ``window`` column.
    """

    windows: list[dict[str, Any]]
    aggregate: dict[str, Any]
    ledger: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (what ``walk_forward.json`` holds)."""
        return jsonable.from_jsonable(jsonable.to_jsonable({"windows": self.windows, "aggregate": self.aggregate}))


def walk_forward(
    resolved: Any,
    bars: Any,
    train_fn: Callable[[Any, torch.Tensor], torch.nn.Module],
    *,
    windows: int | None = None,
    device: Any = "cpu",
    n_trials: int | Callable[[], int] = 1,
    grid: Sequence[Baseline] = DEFAULT_GRID,
    data_hash: str = "",
    run_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> WalkForwardResult:
    """Walk-forward evaluation of ``resolved`` on ``bars`` over ``windows`` windows
    (default ``eval.walk_forward``; see :func:`walk_forward_windows`).

    ``train_fn(assembled, train_pool)`` trains a policy on the decidable trades ``train_pool``
    (a tensor of trade rows whose windows end before the test window) and returns it. Each
    window reports every policy's metrics on its test window and the baseline chosen on its
    training part; the aggregate concatenates the windows' test ledgers and reports their
    metrics over the whole tested span, RL against the walk-forward best baseline (each window
    using its own train-chosen baseline), with bootstrap intervals (resampling seed
    :data:`~exitcore.evaluation.significance.BOOTSTRAP_SEED`, as a run's) and the deflated Sharpe
    ratio (``n_trials`` from the registry, or a function counting them once the windows trained:
    a window a plugin ended early makes the run another trial; its trial variance the null ``1/(T-1)`` alone: the
    registry's recorded Sharpes are the test split's, not this span's). With ``run_dir``,
    ``walk_forward.json`` (the run's ``experiment``, ``config_hash``, ``seed`` and ``data_hash``
    when given, then ``windows`` and ``aggregate``) and ``ledger_walk_forward.<fmt>`` are written
    there.
    """
    from exitcore.assembly import assemble
    from exitcore.data.splits import Split
    from exitcore.evaluation import significance as sig

    cfg = resolved.config
    windows = cfg.eval.walk_forward if windows is None else windows
    assembled = assemble(resolved, bars, device=device)
    plan = walk_forward_plan(assembled, windows)
    table, market = assembled.table, assembled.market
    per_window, frames = [], []
    for w, pools in plan:
        train_sp, test_sp = Split("train", 0, w.train_end), Split("test", w.test_start, w.test_end)
        decidable = pools["train"][table.decidable.cpu().numpy()[pools["train"]]]
        _say(progress, f"window {w.index}/{len(plan)}: training on {decidable.size:,} trades before bar {w.train_end:,}")
        policy = train_fn(assembled, torch.as_tensor(decidable, device=assembled.device))
        spans = _spans(market, [train_sp, test_sp])
        test = policy_ledgers(assembled, pools["test"], "test", policy, grid=grid)
        train_baselines = baseline_ledgers(assembled, pools["train"], "train", grid)
        best, train_sharpes = choose_best(train_baselines, *spans["train"])
        test["best_baseline"] = test[best].assign(policy="best_baseline")
        per_window.append(
            {
                "window": w.index,
                "train_span": [spans["train"][0].isoformat(), spans["train"][1].isoformat()],
                "test_span": [spans["test"][0].isoformat(), spans["test"][1].isoformat()],
                "bars": {"train_end": w.train_end, "test_start": w.test_start, "test_end": w.test_end},
                "n_train_trades": int(decidable.size),
                "n_test_trades": int(pools["test"].size),
                "best_baseline": best,
                "baseline_train_sharpes": train_sharpes,
                "metrics": {p: compute_metrics(df, start=spans["test"][0], end=spans["test"][1], split="test", policy=p)
                            for p, df in test.items()},
            }
        )
        frames += [df.assign(window=w.index) for df in test.values()]
    ledger = pd.concat(frames, ignore_index=True)
    start = split_span(market, plan[0][0].test_start, plan[0][0].test_end)[0]
    end = split_span(market, plan[-1][0].test_start, plan[-1][0].test_end)[1]
    metrics = {p: compute_metrics(g.drop(columns="window"), start=start, end=end, split="test", policy=p)
               for p, g in ledger.groupby("policy", sort=False)}
    rl, best_bl = ledger[ledger["policy"] == RL_POLICY], ledger[ledger["policy"] == "best_baseline"]
    boot = dict(n_samples=cfg.eval.bootstrap_samples, confidence=cfg.eval.confidence, seed=sig.BOOTSTRAP_SEED)
    trials = int(n_trials() if callable(n_trials) else n_trials)
    aggregate: dict[str, Any] = {
        "span": [start.isoformat(), end.isoformat()],
        "label": split_label("test"),
        "windows": len(plan),
        "metrics": metrics,
        "intervals": {p: sig.bootstrap_metrics(g, start=start, end=end, **boot) for p, g in (("rl", rl), ("best_baseline", best_bl))},
        "rl_vs_best_baseline": sig.paired_difference(rl, best_bl, start=start, end=end, **boot),
        "dsr": sig.or_error(lambda: sig.ledger_dsr(rl, start, end, trials)),
        "n_trials": trials,
    }
    result = WalkForwardResult(per_window, aggregate, ledger)
    if run_dir is not None:
        check_ledger_format(cfg.eval.ledger_format)
        write_atomic_ledger(ledger, Path(run_dir) / ledger_file_name("walk_forward", cfg.eval.ledger_format))
        # whose results these are, as results.json says it: a report refuses another run's
        identity = {"experiment": cfg.name, "config_hash": resolved.config_hash(), "seed": cfg.ppo.seed,
                    **({"data_hash": data_hash} if data_hash else {})}
        write_json_atomic(Path(run_dir) / WALK_FORWARD_FILE, {**identity, **result.to_dict()})
    return result


__all__ = [
    "EvalResults",
    "RESULTS_FILE",
    "WALK_FORWARD_FILE",
    "WalkForwardResult",
    "Window",
    "evaluate",
    "policy_ledgers",
    "run_evaluators",
    "walk_forward",
    "walk_forward_plan",
    "walk_forward_windows",
    "worst_verdict",
    "write_json_atomic",
    "write_run_outputs",
]
