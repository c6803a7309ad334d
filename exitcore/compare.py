"""``exitcore compare``: finished runs side by side, with what differs between them.

Each argument is a run id (or a unique prefix) or an experiment name (its latest ``done``
run; after the first argument, its latest on the same data as the first run when it has one). The numbers are recomputed from each run's out-of-sample RL ledger with the same metric
functions (:mod:`exitcore.evaluation.metrics`), so every column is computed the same way
whatever version wrote the run. Runs on different data or different split boundaries are
flagged loudly: their numbers are not comparable.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from exitcore.errors import ExitcoreError
from exitcore.words import command, statistic

#: the rows of the comparison, in order: (label, key in the metrics dict or a special key)
ROWS: tuple[tuple[str, str], ...] = (
    ("experiment", "experiment"),
    ("split", "label"),
    ("period from", "span_start"),
    ("period to", "span_end"),
    ("days (weekdays; with an exit)", "n_days"),
    ("trades", "n_trades"),
    ("mean return per trade (bp)", "mean_return"),
    ("std return per trade (bp)", "std_return"),
    ("win rate", "win_rate"),
    ("scratch rate (closed at PnL 0)", "scratch_rate"),
    ("profit factor", "profit_factor"),
    ("Sharpe (daily, annualised)", "sharpe"),
    ("Sharpe interval (bootstrap)", "sharpe_interval"),
    ("deflated Sharpe (trials at run time)", "dsr_recorded"),
    ("deflated Sharpe (today's trials)", "dsr_today"),
    ("Sortino (daily, annualised)", "sortino"),
    ("avg bars held", "avg_bars"),
    ("min bars held", "min_bars"),
    ("quick exits (<= 3 bars)", "quick_exit_rate"),
    ("ambiguous exit bars (stop taken)", "ambiguous"),
    ("blocked rate", "blocked_rate"),
    ("max drawdown (PnL fraction)", "max_drawdown"),
    ("total PnL (account currency)", "total_pnl_ccy"),
    ("sampled actions (% of decisions)", "action_distribution"),
    ("exit reasons", "exit_reasons"),
    ("best baseline (chosen on train)", "best_baseline"),
    ("best baseline Sharpe", "best_baseline_sharpe"),
    ("look-ahead audit", "audit_verdict"),
    ("data hash", "data_hash"),
)

#: rows shown when a compared run has walk-forward results (its walk_forward.json, as recorded)
WALK_FORWARD_ROWS: tuple[tuple[str, str], ...] = (
    ("walk-forward windows", "walk_forward_windows"),
    ("walk-forward Sharpe (RL, all windows)", "walk_forward_sharpe"),
    ("walk-forward Sharpe interval", "walk_forward_sharpe_interval"),
    ("walk-forward best baseline Sharpe", "walk_forward_best_baseline_sharpe"),
    ("walk-forward deflated Sharpe", "walk_forward_dsr"),
)


@attrs.frozen
class RunView:
    """What compare knows about one run."""

    ref: str
    run_id: str
    run_dir: Path
    experiment: str
    data_hash: str
    splits: tuple[tuple[str, str, str], ...]  # (name, start, end)
    config: dict[str, Any]
    metrics: dict[str, Any]
    #: bars between the end of each split and the start of the next (None: not recorded)
    purge: int | None = None
    #: the evaluators that gave the run's audit verdict (results.json's ``audit_verdict_from``)
    verdict_from: tuple[str, ...] = ()
    #: why a FAIL found no leak (:func:`~exitcore.evaluation.verdicts.audit_why`), else None
    verdict_why: str | None = None
    #: the bars as run.json describes them (source, timeframe, count, span), for the warnings
    data_words: str = ""
    #: the Sharpe ratio the run's evaluation recorded, where today's metric reads another one
    #: from the same ledger (an earlier exitcore's definition); None where they agree
    evaluated_sharpe: float | None = None
    #: the run's trial, ``(config_hash, seed, code_hash)`` as its registry row records it
    trial: tuple[str, int, str] | None = None
    #: torch version, threads and device it trained with (:func:`~exitcore.evaluation.rundir.training_setup`)
    setup: str = ""
    #: why the run's walk-forward results are not shown (missing, damaged, another run's), else None
    walk_forward_problem: str | None = None
    #: the steps it trained (its training log's last ``global_step``); None without a log
    trained_steps: int | None = None
    #: why a plugin ended its training early (run.json's ``stopped_early``), else None
    stopped_early: str | None = None
    #: the runs directory whose registry counts its trials today (``dsr_today_trials``), else None
    registry: Path | None = None
    #: a run directory read alone, which no registry records (copied in, or its registry lost)
    unrecorded: bool = False
    #: the data warnings run.json recorded when the run read its bars
    #: (:class:`~exitcore.evaluation.report.DataFindings`), else None
    data_findings: Any = None
    #: the plugins that supplied its components, as ``{name: "version, source hash"}`` (run.json)
    plugin_code: dict[str, str] = attrs.field(factory=dict)
    #: the hashes of the bars' columns besides timestamps and OHLC (run.json's
    #: ``data.column_hashes``), None where the run recorded none
    column_hashes: dict[str, str] | None = None


def collect(refs: list[str], registry: Any | None, experiments_file: Any | None) -> list[RunView]:
    """Find each ref's finished run and recompute its out-of-sample metrics.

    ``registry`` answers run ids and experiment names; it may be None where every ref is a run
    directory's path. A run directory is looked up in the registry of the directory holding it
    (a run that is not done is refused), and one that no registry records is read from the
    directory alone (:func:`exitcore.recording.record_of`), as ``report`` reads it."""
    from exitcore.evaluation.rundir import is_run_dir, run_id_of
    from exitcore.registry import AmbiguousName, RegistryError, runs_dir_words

    views = []
    for ref in refs:
        if is_run_dir(ref):
            record, path, recorded = _run_dir_record(Path(ref))
            runs_dir = registry.runs_dir if registry is not None else None
            view = _view(ref, record, path, runs_dir)
            if not recorded:
                from exitcore.evaluation.report import current_trials

                # a copy whose run the runs directory's registry records is counted there
                view = attrs.evolve(view, unrecorded=current_trials(path, runs_dir) is None)
            views.append(view)
            continue
        if registry is None:
            raise RegistryError(f"{ref!r} is not a run directory, and no runs directory was given to look it up in")
        record = None
        try:
            record = registry.get(run_id_of(ref))
        except RegistryError as run_error:
            name, not_recorded = ref, None
            try:  # a recorded experiment or one the file defines: exact, or a prefix unique among both
                name = registry.recorded_experiment(ref, experiments_file.names if experiments_file is not None else ())
            except AmbiguousName:
                raise
            except RegistryError as exc:
                not_recorded = exc  # names the experiments that have runs, with a suggestion
            if not registry.list(experiment=name):
                # run ids start with their date: say what fits what was typed; an experiment the
                # experiments file defines is named as having no runs (not "did you mean" another)
                why = run_error if ref[:1].isdigit() or not_recorded is None else not_recorded
                if name != ref or (experiments_file is not None and _defines(experiments_file, name)):
                    # the budget: the experiment's own length is hours of training (trial AB 11)
                    why = (f"experiment {name} has no runs recorded there; `{command()} run {name} --budget quick"
                           f"{runs_dir_words(registry.runs_dir)}` makes one in minutes (without --budget: its "
                           "full training)")
                raise RegistryError(f"{ref!r} is neither a run nor an experiment with runs in {registry.runs_dir} "
                                    f"({why})") from None
            # `compare v3 v4`: v4's latest run on the bars the first run used, if it has one
            # (its latest on any data would compare across data sets, warned but rarely meant)
            record = (registry.latest_done(name, views[0].data_hash) if views else None) or registry.latest_done(name)
            if record is None:
                from exitcore.registry import RunNotDone, RunStillRunning

                runs = registry.list(experiment=name)  # oldest first
                statuses = sorted({r.status for r in runs})
                state = RunStillRunning if "running" in statuses else RunNotDone  # exit 75 or 4
                raise state(f"experiment {name} has no finished run (runs are {', '.join(statuses)}); "
                            + _unfinished_advice(name, runs, runs_dir_words(registry.runs_dir)))
        record = registry.require_done(record.id)
        views.append(_view(ref, record, registry.path_of(record), registry.runs_dir))
    return views


def _unfinished_advice(name: str, runs: Sequence[Any], where: str) -> str:
    """What to do about an experiment none of whose ``runs`` (oldest first) is done: wait for
    the one running, resume the latest interrupted one (it never finishes on its own), or start
    one."""
    start = f"`{command()} run {name}{where}` starts one"
    running = [r for r in runs if r.status == "running"]
    if running:
        return f"wait for run {running[-1].id} to finish"
    interrupted = [r for r in runs if r.status == "interrupted"]
    if interrupted:
        latest = "the latest" if interrupted[-1] is runs[-1] else "the latest interrupted one"
        return f"`{command()} run --resume {interrupted[-1].id}{where}` continues {latest}, or {start}"
    return start


def _run_dir_record(path: Path) -> tuple[Any, Path, bool]:
    """The record of the run in directory ``path``, its directory, and whether a registry records
    it: the registry's row where the directory holding it records it (refused unless done), else
    what the directory itself says, so run directories copied out of their runs directory compare
    as they report."""
    from exitcore.evaluation.rundir import holder_record
    from exitcore.recording import record_of
    from exitcore.registry import Registry

    record = holder_record(path)
    if record is not None:
        with Registry(path.resolve().parent, read_only=True) as registry:
            return registry.require_done(record.id), path, True
    return record_of(path), path, False


def _view(ref: str, record: Any, run_dir: Path, runs_dir: Path | None = None) -> RunView:
    from exitcore.evaluation.ledger_schema import read_ledger
    from exitcore.evaluation.metrics import compute_metrics
    from exitcore.evaluation.report import data_findings, trained_steps
    from exitcore.evaluation.rundir import (
        RUN_FILE,
        RunDirError,
        as_frozen_then,
        check_ledger_complete,
        check_ledger_file,
        check_results_belong,
        config_edited,
        existing_run_dir,
        read_config,
        read_results,
        read_run_info,
        read_walk_forward,
        training_setup,
        walk_forward_headline,
        with_worked_out_setup,
    )

    existing_run_dir(record.id, run_dir)  # as report and audit say it (not "no results: was it evaluated?")
    results = read_results(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise RunDirError(f"{run_dir / RUN_FILE}: no such file (the run's metadata): the run directory is incomplete")
    meta = read_run_info(run_dir)
    check_results_belong(run_dir, results, meta, record)
    edited = config_edited(run_dir, meta)
    if edited:  # its costs and configuration differences would be compared as the run's
        raise RunDirError(edited)
    config = as_frozen_then(read_config(run_dir))  # a key added since, as the run meant it (data_holes)
    split = results.get("split", "test")
    ledger_name = (results.get("ledgers") or {}).get(split)
    if not ledger_name:
        raise ExitcoreError(f"{run_dir}: results.json names no {split} ledger")
    span = (results.get("spans") or {}).get(split)
    if span is None:
        raise RunDirError(f"{run_dir / 'results.json'}: key 'spans' has no {split!r} span: the file is damaged; "
                          "restore it or run the experiment again")
    ledger = read_ledger(run_dir / ledger_name)  # first: a file that does not parse is named damaged
    check_ledger_file(run_dir / ledger_name, results, split)
    check_ledger_complete(run_dir / ledger_name, ledger, results, split)
    start, end = span
    metrics = compute_metrics(ledger[ledger["policy"] == "rl"], start=start, end=end, split=split, policy="rl")
    best = results.get("best_baseline") or {}
    if best.get("name"):
        base = ledger[ledger["policy"] == best["name"]]
        if len(base):
            metrics["best_baseline_sharpe"] = compute_metrics(base, start=start, end=end, split=split)["sharpe"]
    metrics.update(_recorded_significance(results))
    today, registry = _dsr_today(run_dir, results, split, runs_dir)
    metrics.update(today)
    walk_forward, walk_forward_problem = read_walk_forward(run_dir, results, config)
    metrics.update(walk_forward_headline(walk_forward))
    metrics.update(
        experiment=record.experiment,
        best_baseline=best.get("name"),
        audit_verdict=results.get("audit_verdict") or "not audited",
        data_hash=record.data_hash,
    )
    recorded = meta.get("splits", [])
    splits = tuple((s["name"], str(s.get("start")), str(s.get("end"))) for s in recorded)
    gaps = [b.get("start_bar") - a.get("end_bar") for a, b in zip(recorded, recorded[1:])
            if isinstance(a.get("end_bar"), int) and isinstance(b.get("start_bar"), int)]
    from exitcore.evaluation.verdicts import audit_why

    sources = results.get("audit_verdict_from")
    return RunView(ref, record.id, run_dir, record.experiment, record.data_hash, splits, config, metrics,
                   gaps[0] if gaps else None, tuple(sources) if isinstance(sources, list) else (),
                   audit_why(results.get("evaluators") or {}), _data_words(meta.get("data") or {}),
                   _evaluated_sharpe(results, metrics), record.trial, training_setup(with_worked_out_setup(meta, config)),
                   walk_forward_problem, trained_steps(run_dir),
                   str(meta["stopped_early"]) if meta.get("stopped_early") else None, registry,
                   data_findings=data_findings(meta, results), plugin_code=_plugin_code(meta, config),
                   column_hashes=_column_hashes(meta))


def _column_hashes(meta: dict[str, Any]) -> dict[str, str] | None:
    data = meta.get("data")
    hashes = data.get("column_hashes") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in hashes.items()} if isinstance(hashes, dict) else None


def _plugin_code(meta: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """``{plugin: "distribution version, source hash"}`` of the plugins run.json records as
    supplying a component the run's configuration names (others may differ freely). A plugin
    is taken from the run's last resume where that lists it (run.json's ``resumes``): a resume
    may change only evaluator plugins' code, and it is the code that evaluated the run."""
    named = {f"{kind}:{ref.get('name')}" for kind, key in _COMPONENT_KEYS for ref in _refs(config, key)}
    resumes = meta.get("resumes") if isinstance(meta.get("resumes"), list) else []
    last = resumes[-1].get("plugins") if resumes and isinstance(resumes[-1], dict) else None
    evaluated = {str(p.get("name")): p for p in last or [] if isinstance(p, dict)}
    out = {}
    for plugin in meta.get("plugins") or []:
        if isinstance(plugin, dict):
            plugin = evaluated.get(str(plugin.get("name")), plugin)
        if isinstance(plugin, dict) and named & set(plugin.get("components") or []):
            out[str(plugin.get("name"))] = (f"{plugin.get('distribution') or 'no distribution'} {plugin.get('version') or ''}"
                                            f"".strip() + f", source {plugin.get('source_hash') or 'not recorded'}")
    return out


#: (component kind, where an experiment's configuration names components of it)
_COMPONENT_KEYS = (("entry", "entry"), ("feature", "features"), ("reward", "rewards"), ("guard", "guards"),
                   ("mask", "masks"), ("evaluator", "eval.evaluators"), ("policy", "ppo.policy"),
                   ("data_source", "data.source"))


def _refs(config: dict[str, Any], key: str) -> list[dict[str, Any]]:
    node: Any = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, str):  # ppo.policy: a name
        return [{"name": node}]
    if isinstance(node, dict):
        return [node]
    return [r for r in node or [] if isinstance(r, dict)]


def _defines(experiments_file: Any, name: str) -> bool:
    """Whether ``experiments_file`` defines experiment ``name`` (exactly)."""
    try:
        return experiments_file.resolve_name(name) == name
    except ExitcoreError:
        return False


def _dsr_today(run_dir: Path, results: dict[str, Any], split: str,
               runs_dir: Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """The run's deflated Sharpe ratio with the trials its registry records on its data today
    (``dsr_today`` over ``dsr_today_trials``), as ``report`` gives it: the recorded one counts
    only the trials made before the run, so runs made one after another are deflated for ever
    more trials, and their recorded values do not compare. The recorded one where no trial was
    added, and where the registry now records fewer than the run was deflated for (runs deleted,
    or a rebuilt registry): trials made are not unmade by losing their records. None where the
    run recorded none, or no registry records it. With the runs directory whose registry counted."""
    from exitcore.evaluation.report import current_trials, dsr_with_trials_today

    dsr = ((results.get("evaluators") or {}).get("significance") or {}).get("dsr") or {}
    trials = current_trials(run_dir, runs_dir, split=split) if _is_number(dsr.get("dsr")) else None
    if trials is None:
        return {"dsr_today": None, "dsr_today_trials": None}, None
    today = dsr_with_trials_today(dsr, trials)
    if today is not None:
        return {"dsr_today": today.value, "dsr_today_trials": today.n_trials}, trials.registry
    recorded = dsr.get("n_trials") if _is_number(dsr.get("n_trials")) else None
    return {"dsr_today": dsr["dsr"], "dsr_today_trials": recorded}, trials.registry


def _evaluated_sharpe(results: dict[str, Any], metrics: dict[str, Any]) -> float | None:
    """results.json's headline Sharpe where it differs from the one recomputed from the ledger
    (a run evaluated by an exitcore whose definition has changed since), else None."""
    then, now = (results.get("headline") or {}).get("sharpe"), metrics.get("sharpe")
    if not (_is_number(then) and _is_number(now)):
        return None
    if not (math.isfinite(then) and math.isfinite(now)):  # undefined or infinite: the same only if both are
        return None if str(float(then)) == str(float(now)) else float(then)
    return float(then) if not math.isclose(then, now, rel_tol=1e-9, abs_tol=1e-12) else None


def _different_columns(views: list[RunView]) -> list[str]:
    """DIFFERENT DATA for runs on the same timestamps and prices whose other columns (volume,
    spread) differ, as their run.json recorded them: a feature reading them saw other data; and
    OTHER COLUMNS UNKNOWN for runs recorded before run.json kept those columns' hashes, beside
    runs whose bars have such columns."""
    from exitcore.data.bars import column_differences

    runs = list(dict((v.run_id, v) for v in views).values())
    recorded = [v for v in runs if v.column_hashes is not None]
    if not recorded:
        return []
    out = []
    first = recorded[0]
    changes = [(v, column_differences(first.column_hashes, v.column_hashes)) for v in recorded[1:]]
    changes = [(v, words) for v, words in changes if words]
    if changes:
        said = "; ".join(f"{v.run_id} against {first.run_id}: {words}" for v, words in changes)
        out.append(f"DIFFERENT DATA: these runs' bars have the same timestamps and prices (hash {first.data_hash}) but "
                   f"other values in their other columns ({said}); a feature reading those columns saw other data, so "
                   "their numbers may not be comparable (each is a trial of its own)")
    unknown = [v.run_id for v in runs if v.column_hashes is None]
    with_columns = [v for v in recorded if v.column_hashes]
    if unknown and with_columns:
        columns = sorted(set().union(*(v.column_hashes for v in with_columns)))
        runs_words = ", ".join(v.run_id for v in with_columns)
        out.append(f"OTHER COLUMNS UNKNOWN: {' and '.join(unknown)} recorded no hashes of {'its' if len(unknown) == 1 else 'their'} "
                   f"bars' columns besides the prices (run before exitcore kept them), so whether "
                   f"{'its' if len(unknown) == 1 else 'their'} {', '.join(map(repr, columns))} agreed with those of {runs_words} "
                   "is unknown; a feature reading them may have seen other data")
    return out


def _data_words(data: dict[str, Any]) -> str:
    """``dukascopy: DIR, 15min, 125,261 bars 2006-01-02 -> 2010-12-31`` from run.json's ``data``
    (what is recorded of it), so runs on different bars say how they differ, not only by hash."""
    parts = [str(data["source"])] if data.get("source") else []
    if data.get("timeframe"):
        parts.append(str(data["timeframe"]))
    span = " -> ".join(str(data[k])[:10] for k in ("start", "end") if data.get(k))
    bars = f"{data['n_bars']:,} bars" if isinstance(data.get("n_bars"), int) else ""
    if bars or span:
        parts.append(" ".join(filter(None, (bars, span))))
    return ", ".join(parts)


#: what :func:`_recorded_significance` records; each None when the run did not record it
SIGNIFICANCE_KEYS = ("sharpe_interval", "sharpe_interval_confidence", "dsr_recorded", "dsr_trials")


def _recorded_significance(results: dict[str, Any]) -> dict[str, Any]:
    """RL's bootstrap Sharpe interval and deflated Sharpe ratio as evaluated (the significance
    evaluator's), so two Sharpe ratios side by side come with how far apart chance puts them:
    ``sharpe_interval`` ``[low, high]`` at ``sharpe_interval_confidence`` (0.95), ``dsr_recorded``
    over ``dsr_trials`` trials; each None when not recorded."""
    sig = (results.get("evaluators") or {}).get("significance") or {}
    out: dict[str, Any] = dict.fromkeys(SIGNIFICANCE_KEYS)
    iv = ((sig.get("intervals") or {}).get("rl") or {}).get("sharpe") or {}
    low, high = iv.get("low"), iv.get("high")
    if _is_number(low) and _is_number(high):
        out["sharpe_interval"] = [low, high]
        out["sharpe_interval_confidence"] = sig.get("confidence") if _is_number(sig.get("confidence")) else None
    dsr = sig.get("dsr") or {}
    if _is_number(dsr.get("dsr")):
        out["dsr_recorded"] = dsr["dsr"]
        out["dsr_trials"] = dsr.get("n_trials") if _is_number(dsr.get("n_trials")) else None
    return out


def _rows(views: list[RunView]) -> tuple[tuple[str, str], ...]:
    """The table's rows: the walk-forward ones too when a run has walk-forward results."""
    if any(v.metrics.get("walk_forward_windows") for v in views):
        return ROWS + WALK_FORWARD_ROWS
    return ROWS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _significance_text(key: str, metrics: dict[str, Any]) -> str | None:
    """``sharpe_interval`` and ``dsr_recorded`` as the table writes them,
    ``[-9.03, -5.27] 95%`` and ``0.000 (N = 1)``; None when not recorded. Either is NaN when the
    run's data could not support it (resamples without a defined Sharpe, too few active days):
    ``undefined`` (the report says why)."""
    if key == "sharpe_interval" and metrics.get("sharpe_interval") is not None:
        (low, high), conf = metrics["sharpe_interval"], metrics.get("sharpe_interval_confidence")
        shown = f"[{low:.2f}, {high:.2f}]" if math.isfinite(low) and math.isfinite(high) else "undefined"
        return shown + (f" {100 * conf:.0f}%" if conf is not None else "")
    if key == "dsr_recorded" and metrics.get("dsr_recorded") is not None:
        trials = metrics.get("dsr_trials")
        value = metrics["dsr_recorded"]
        shown = f"{value:.3f}" if math.isfinite(value) else "undefined"
        return f"{shown} (N = {'?' if trials is None else trials})"
    return None


def warnings(views: list[RunView]) -> list[str]:
    """Loud notes on what makes the runs not comparable."""
    out = []
    ids = [v.run_id for v in views]
    for run_id in sorted({i for i in ids if ids.count(i) > 1}):
        copies = [v for v in views if v.run_id == run_id]
        dirs = list(dict.fromkeys(str(v.run_dir.resolve()) for v in copies))
        if len(dirs) == 1:
            out.append(f"SAME RUN: {run_id} is listed more than once (an experiment name stands for "
                       "its latest run); its columns are identical")
        else:  # run directories read alone: copies of one run, kept in several places
            same = all(_own(v.metrics) == _own(copies[0].metrics) for v in copies)
            out.append(f"SAME RUN: {run_id} is read from {len(dirs)} directories ({', '.join(dirs)}), copies of one "
                       "run; " + ("their columns are identical" if same else
                                  "their results differ: one was changed, or resumed and evaluated elsewhere"))
    if len({v.data_hash for v in views}) > 1:
        pairs = "; ".join(f"{v.run_id}: {v.data_hash}" + (f" ({v.data_words})" if v.data_words else "")
                          for v in dict((v.run_id, v) for v in views).values())
        out.append(f"DIFFERENT DATA: these runs were trained and evaluated on different bars ({pairs}); "
                   "their numbers are not comparable")
    else:
        out.extend(_different_columns(views))
    if len({v.splits for v in views}) > 1:
        message = ("DIFFERENT SPLITS: the train/test boundaries differ between these runs; "
                   "their out-of-sample numbers cover different periods")
        purges = {v.purge for v in views}
        train_ends = {v.splits[0][2] if v.splits else None for v in views}
        if len(purges) > 1 and None not in purges and len(train_ends) == 1:
            # same training period, only the gap after it differs: max_bars + the longest feature
            # lookback, or split.purge_bars
            widest = max(purges)
            message += (f". Only their purge gaps differ ({', '.join(f'{v.run_id}: {v.purge} bars' for v in views)}: "
                        "max_bars + the longest feature lookback, or split.purge_bars); run the others with "
                        f"--set split.purge_bars={widest} to test on the same period")
        out.append(message)
    trades = _different_trades(views)
    if trades:
        out.append(trades)
    setups = _different_setups(views)
    if setups:
        out.append(setups)
    out += [note for note in (_different_costs(views), _different_training(views), _seeds_of_one_configuration(views),
                              _same_trial(views), _different_registries(views), _different_code(views)) if note]
    counted = {v.run_id for v in views if not v.unrecorded}  # a copy beside its recorded original: SAME RUN says it
    for v in _distinct_runs(views):
        if v.unrecorded and v.run_id not in counted:
            from exitcore.evaluation.report import not_recorded_words

            out.append(f"NOT RECORDED: {not_recorded_words(v.run_id, v.run_dir)}")
    for v in _distinct_runs(views):
        found = v.data_findings
        if found is not None:  # a hole's zero days dilute its Sharpe, interval and deflated Sharpe
            why = found.zero_days("its")
            out.append(f"DATA FINDINGS: {v.run_id}: its data's findings, recorded when it read its bars: "
                       + " | ".join(found.listed()) + (f"; {why}" if why else ""))
    for v in _distinct_runs(views):
        if v.evaluated_sharpe is not None:
            out.append(f"RECOMPUTED: {v.run_id}'s Sharpe is {statistic(v.metrics['sharpe'], '.2f')} here, recomputed "
                       f"from its ledger, and {statistic(v.evaluated_sharpe, '.2f')} in its results.json (its report, "
                       "`runs`, `show`): an earlier exitcore's definition, or a ledger changed since; its interval and "
                       "deflated Sharpe are results.json's")
    shown = any(v.metrics.get("walk_forward_windows") for v in views)  # else the table has no walk-forward rows
    for v in _distinct_runs(views):
        if v.walk_forward_problem:
            out.append(f"WALK-FORWARD: {v.run_id}: {v.walk_forward_problem}; "
                       + ("its walk-forward rows are empty" if shown else "no walk-forward figures are shown"))
    for v in views:  # as show and report open: a failed audit is not a row to find near the bottom
        verdict = v.metrics.get("audit_verdict")
        if verdict in ("FAIL", "SUSPECT"):
            from exitcore.evaluation.verdicts import describe_verdict

            out.append(f"AUDIT {verdict}: {v.run_id} ({v.experiment}): "
                       f"{describe_verdict(verdict, v.verdict_from, v.verdict_why)}; do not trust its numbers")
    return list(dict.fromkeys(out))  # a run listed twice is warned about once


def _different_setups(views: list[RunView]) -> str | None:
    """The DIFFERENT SETUP note for runs of one trial (configuration, seed, bars) trained with
    another torch (numpy, pandas) version, thread count, device, compilation or micro-batch size: their numbers
    differ by that alone, where the same setup repeats them to the last bit (docs/ppo.md,
    Determinism)."""
    groups = _by_trial(views, lambda v: (*v.trial, v.data_hash))
    differing = [g for g in groups if len({_comparable_setup(v.setup, g) for v in g}) > 1]
    if not differing:
        return None
    each = "; ".join(f"{v.run_id}: {v.setup or 'not recorded'}" for g in differing for v in g)
    return (f"DIFFERENT SETUP: runs of the same configuration, seed and bars trained with another torch, numpy or pandas version, "
            f"thread count, device, compilation or micro-batch size ({each}); the same setup repeats a run to the last bit, another one does not, "
            "so their differences are not the configuration's")


def _comparable_setup(setup: str, group: list[RunView]) -> str:
    """``setup`` without the numpy and pandas versions when a run of ``group`` does not record
    them (runs from before 2026-11-30): unknown is not different."""
    if all(" numpy " in f" {v.setup}" for v in group):
        return setup
    return re.sub(r"(?:^|, )(?:numpy|pandas) [^,]+", "", setup).lstrip(", ")


def _different_code(views: list[RunView]) -> str | None:
    """The DIFFERENT CODE note for runs of one configuration, seed and bars whose plugins'
    versions or source differed: their configurations are identical, their numbers need not be
    (each is a trial of its own: the trial includes the plugin code, ``RunRecord.trial``)."""
    said = []
    for group in _by_trial(views, lambda v: (*v.trial[:2], v.data_hash)):  # one configuration and seed, any code
        names = sorted({n for v in group for n in v.plugin_code})
        # the source only (another version of the same code is the same code), and only what both
        # recorded: an older run without source hashes is not "different"
        changed = [n for n in names if len({_source_in_label(v.plugin_code.get(n, "")) for v in group} - {None}) > 1]
        if changed:
            counted = ("a run recorded without a code hash (before exitcore kept it) or with a hand-edited one "
                       "counts as one trial with the others here" if len({v.trial[2] for v in group}) == 1 else
                       "each code is a trial of its own in the deflated Sharpe's N")
            said.append("; ".join(f"{v.run_id}: " + ", ".join(f"{n} {v.plugin_code.get(n, 'not used')}" for n in changed)
                                  for v in group) + f" ({counted})")
    if not said:
        return None
    return ("DIFFERENT CODE: runs of the same configuration, seed and bars whose plugins' code differed, so their "
            f"configurations read identical but their numbers are the code's too: {' | '.join(said)}")


def _source_in_label(code: str) -> str | None:
    """The source hash in a plugin's recorded code (``"dist version, source HASH"``); None where
    it was not recorded."""
    source = code.rpartition(", source ")[2]
    return None if not source or source == "not recorded" else source


def _own(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics without what its registry adds (today's trials: a copy read alone has none)."""
    return {k: v for k, v in metrics.items() if k not in ("dsr_today", "dsr_today_trials")}


def _by_trial(views: list[RunView], key: Callable[[RunView], tuple[Any, ...]]) -> list[list[RunView]]:
    """The distinct runs whose registry recorded their trial, grouped by ``key``."""
    groups: dict[tuple[Any, ...], list[RunView]] = {}
    for v in _distinct_runs(views):
        if v.trial is not None:
            groups.setdefault(key(v), []).append(v)
    return list(groups.values())


def _distinct_runs(views: list[RunView]) -> list[RunView]:
    """Each run once (an experiment name and its run's id name the same run)."""
    return list(dict((v.run_dir.resolve(), v) for v in views).values())


#: the costs every PnL figure depends on (costs.notional and account_currency size only the
#: account-currency total, and the table gives each run's currency)
PIP_COSTS = ("spread_pips", "slippage_pips", "commission_pips")


def _different_costs(views: list[RunView]) -> str | None:
    """The DIFFERENT COSTS warning: spread, slippage and commission change every PnL figure, the
    baselines' too, so runs under other costs do not compare (a trial compared them silently).
    Another notional is noted apart: it scales the account-currency total alone."""
    runs = _distinct_runs(views)
    costs = [{k: (v.config.get("costs") or {}).get(k) for k in PIP_COSTS} for v in runs]
    if len({json.dumps(c, sort_keys=True) for c in costs}) > 1:
        each = "; ".join(f"{v.run_id}: {_costs_words(v.config.get('costs') or {})}" for v in runs)
        return (f"DIFFERENT COSTS: these runs pay different trading costs ({each}); every PnL figure, the baselines' "
                "too, depends on them: their numbers are not comparable")
    sizes = [_notional_words(v.config.get("costs") or {}) for v in runs]
    if len(set(sizes)) > 1:
        each = "; ".join(f"{v.run_id}: {size}" for v, size in zip(runs, sizes))
        return (f"DIFFERENT NOTIONAL: these runs size each trade differently ({each}): their total PnL in the account "
                "currency differs by that alone; the returns, Sharpe ratios and other PnL fractions compare")
    return None


def _costs_words(costs: dict[str, Any]) -> str:
    return ", ".join(f"{k.removesuffix('_pips')} {costs[k]}" for k in PIP_COSTS if k in costs) + " pips"


def _notional_words(costs: dict[str, Any]) -> str:
    notional, currency = costs.get("notional"), costs.get("account_currency")
    amount = f"{notional:,.0f}" if _is_number(notional) else "default"
    return f"notional {amount} {currency or 'default currency'}"


def _different_training(views: list[RunView]) -> str | None:
    """The DIFFERENT TRAINING LENGTH warning: runs that trained for different numbers of steps (a
    budget or ``--timesteps`` shortened one, or a plugin stopped it early), as their training logs
    record them; the asked ``ppo.total_timesteps`` where a run has no log. ``compare v3 v4``
    takes each experiment's latest run, whatever its budget. Asked numbers that round up to the
    same whole updates trained the same."""
    runs = _distinct_runs(views)
    steps = [v.trained_steps if v.trained_steps is not None else _asked_steps(v) for v in runs]
    if len(set(map(str, steps))) <= 1:
        return None
    each = "; ".join(f"{v.run_id}: {_trained_words(v)}" for v in runs)
    return (f"DIFFERENT TRAINING LENGTH: these runs trained for different numbers of steps ({each}); a run shortened by a "
            "budget or --timesteps, or stopped early, is not its experiment's full training (`exitcore report RUN` "
            "names its budget)")


def _asked_steps(view: RunView) -> Any:
    return (view.config.get("ppo") or {}).get("total_timesteps")


def _trained_words(view: RunView) -> str:
    """``262,144 steps``, ``16,384 of 262,144 steps (stopped early: REASON)``, or ``262,144 steps
    asked (no training log)``."""
    asked = _asked_steps(view)
    asked_words = f"{asked:,}" if isinstance(asked, int) else "?"
    if view.trained_steps is None:
        return f"{asked_words} steps asked (no training log)"
    if isinstance(asked, int) and view.trained_steps < asked:
        return (f"{view.trained_steps:,} of {asked_words} steps (stopped early"
                + (f": {view.stopped_early})" if view.stopped_early else ")"))
    return f"{view.trained_steps:,} steps"


def _seeds_of_one_configuration(views: list[RunView]) -> str | None:
    """The SEEDS note: runs of one configuration on the same bars that differ only in their seed
    differ by the training's randomness alone, which no bootstrap interval here covers (each
    resamples the days of one trained policy)."""
    groups: dict[tuple[str, str], list[RunView]] = {}
    for v in _distinct_runs(views):
        groups.setdefault((_unseeded(v.config), v.data_hash), []).append(v)
    seeded = [g for g in groups.values() if len({str(_seed(v)) for v in g}) > 1]
    if not seeded:
        return None
    each = "; ".join(", ".join(f"{v.run_id} (seed {_seed(v)})" for v in g) for g in seeded)
    if all(len({str(_seed(v)) for v in g}) == len(g) for g in seeded):
        which = "differ only in their training seed: the spread of their numbers"
    else:  # two of them share a seed: one trial, not "differ only in their seed"
        which = "are runs of one configuration with different training seeds: the spread of their numbers across seeds"
    return (f"SEEDS OF ONE CONFIGURATION: {each} {which} is the training's randomness, which the bootstrap intervals "
            "do not cover (each resamples the days of one trained policy); compare versions over several seeds each")


def _same_trial(views: list[RunView]) -> str | None:
    """The SAME TRIAL note: runs of one configuration and seed on the same bars (one trial, as the
    registry counts it) whose deflated Sharpes at run time were deflated for different numbers of
    trials, the trials recorded when each ran: their recorded deflated Sharpes differ by that."""
    apart = [g for g in _by_trial(views, lambda v: (*v.trial, v.data_hash)) if len(g) > 1 and len({v.metrics.get("dsr_trials") for v in g}) > 1]
    if not apart:
        return None
    each = "; ".join(", ".join(f"{v.run_id} (N = {_or_unknown(v.metrics.get('dsr_trials'))})" for v in g) for g in apart)
    return (f"SAME TRIAL: {each} are runs of one configuration and seed on the same bars, one trial, whose deflated "
            "Sharpes at run time were deflated for the trials recorded when each ran: compare their deflated Sharpe "
            "with today's trials")


def _or_unknown(value: Any) -> Any:
    return "?" if value is None else value


def _seed(view: RunView) -> Any:
    return (view.config.get("ppo") or {}).get("seed", view.trial[1] if view.trial else "?")


def _unseeded(config: dict[str, Any]) -> str:
    """A frozen configuration without its seed (and names), as text: equal for seeds of one
    configuration (the config hash covers the seed)."""
    from exitcore.experiments import hash_config

    plain = json.loads(json.dumps(config, default=str))
    plain.get("ppo", {}).pop("seed", None)
    return hash_config(plain)


def _different_registries(views: list[RunView]) -> str | None:
    """The DIFFERENT REGISTRIES warning: runs on the same bars whose trials today are counted by
    the registries of different runs directories; each deflated Sharpe counts only its own
    directory's trials, so choosing among them is a selection none of them counts."""
    places: dict[str, set[Path]] = {}
    for v in _distinct_runs(views):
        if v.registry is not None and v.metrics.get("dsr_today_trials") is not None:
            places.setdefault(v.data_hash, set()).add(v.registry)
    apart = sorted({str(p) for where in places.values() if len(where) > 1 for p in where})
    if not apart:
        return None
    return (f"DIFFERENT REGISTRIES: runs on the same bars are counted in different runs directories ({', '.join(apart)}): "
            "each one's deflated Sharpe counts only its own directory's trials, so their deflated Sharpes do not compare; "
            "keep a study's runs in one runs directory")


def _entry_words(config: dict[str, Any]) -> str:
    """A run's entry strategy as written in its frozen config: ``donchian`` or
    ``ma_cross(fast=10, slow=40)`` (its parameters, when it has any)."""
    entry = config.get("entry") or {}
    params = entry.get("params") or {}
    args = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{entry.get('name', '?')}({args})" if args else str(entry.get("name", "?"))


def _different_trades(views: list[RunView]) -> str | None:
    """The DIFFERENT TRADES warning when the runs manage different trade sets: other entry
    strategies (or parameters), or another number of trades on the evaluated split. The exit
    agent's numbers then also measure the entries, not only the exits."""
    entries = [_entry_words(v.config) for v in views]
    counts = [v.metrics.get("n_trades") for v in views]
    if len(set(entries)) == 1 and len(set(counts)) == 1:
        return None
    if len(set(entries)) == 1:  # one strategy (on other bars, or other splits): said once
        each = ", ".join(f"{v.run_id}: {n if n is not None else '?'} trades" for v, n in zip(views, counts))
        return (f"DIFFERENT TRADES: these runs manage different trade sets ({each}, all from {entries[0]}); "
                "their numbers compare the entries as well as the exits")
    each = ", ".join(f"{v.run_id}: {n if n is not None else '?'} trades from {e}"
                     for v, n, e in zip(views, counts, entries))
    return (f"DIFFERENT TRADES: these runs manage different trade sets ({each}); their numbers compare the "
            "entries as well as the exits")


def config_differences(views: list[RunView]) -> list[tuple[str, list[Any]]]:
    """Config keys whose values differ between any of the runs: ``[(key, [value per run])]``,
    the values as each run has them. Split dates are compared in their one spelling: the same
    date typed ``2019/07/01`` and ``2019-07-01`` is no difference (one trial, one config hash)."""
    from exitcore.experiments import flatten_config, with_canonical_dates

    flat = [flatten_config(v.config) for v in views]
    same = [flatten_config(with_canonical_dates(v.config)) for v in views]
    keys = sorted(set().union(*flat))
    ignore = ("name", "description", "assumptions", "lineage")
    return [(k, [f.get(k) for f in flat]) for k in keys
            if len({json.dumps(f.get(k), sort_keys=True) for f in same}) > 1 and k.split(".")[0].split("[")[0] not in ignore]


# --------------------------------------------------------------------------- rendering


def _fmt(key: str, metrics: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """Metric ``key`` of one run as the table shows it (``config``: the run's frozen config)."""
    from exitcore.costs import account_currency
    from exitcore.evaluation.metrics import format_value

    value = metrics.get(key)
    if key in ("sharpe_interval", "dsr_recorded"):
        return _significance_text(key, metrics) or "-"
    if key == "dsr_today":
        return _significance_text("dsr_recorded", {"dsr_recorded": value, "dsr_trials": metrics.get("dsr_today_trials")}) or "-"
    if key in ("span_start", "span_end"):  # to the minute: a bar's open or close
        return str(value)[:16] if value else "-"
    if key == "n_days":
        active = metrics.get("active_days")
        return f"{value} ({active if active is not None else '?'})" if value is not None else "-"
    if key == "walk_forward_sharpe_interval":
        return _significance_text("sharpe_interval", {"sharpe_interval": value, "sharpe_interval_confidence":
                                                      metrics.get("walk_forward_sharpe_interval_confidence")}) or "-"
    if key == "walk_forward_dsr":
        return _significance_text("dsr_recorded", {"dsr_recorded": value, "dsr_trials": metrics.get("walk_forward_dsr_trials")}) or "-"
    if key == "walk_forward_windows":
        return str(value) if value else "-"
    if key in ("walk_forward_sharpe", "walk_forward_best_baseline_sharpe"):
        return statistic(value, ".2f")
    if key == "total_pnl_ccy" and isinstance(value, (int, float)):  # in each run's own account currency
        return f"{value:,.0f} {account_currency(config) or '(account ccy)'}"
    if key in ("mean_return", "std_return"):  # basis points of the entry price, as the report shows them
        return f"{value * 1e4:.2f}" if isinstance(value, (int, float)) else "-"
    return format_value(key, value)


def as_table(views: list[RunView]) -> str:
    """A text table: one column per run, the metric rows, then the config differences."""
    header = ["", *[v.run_id for v in views]]
    rows = [header]
    for label, key in _rows(views):
        rows.append([label, *[_fmt(key, v.metrics, v.config) for v in views]])
    diffs = config_differences(views)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = []
    for note in warnings(views):
        lines.append(f"!! {note}")
    if lines:
        lines.append("")
    for i, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    from exitcore.evaluation.metrics import SHARES_LEGEND

    lines += [SHARES_LEGEND, ""]
    if diffs:
        lines.append("configuration differences:")
        for key, values in diffs:
            lines.append(f"  {key}: " + "  |  ".join(json.dumps(v) for v in values))
    else:
        lines.append("configuration: identical")
    return "\n".join(lines)


def as_json(views: list[RunView]) -> dict[str, Any]:
    """Machine-readable comparison (``compare --json``, docs/json.md): per run its metrics, plus
    warnings and config differences."""
    from exitcore.evaluation.jsonable import iso_time

    return {
        "runs": [{"ref": v.ref, "run_id": v.run_id, "run_dir": str(v.run_dir), "experiment": v.experiment,
                  "metrics": {**v.metrics, "span_start": iso_time(v.metrics["span_start"]),
                              "span_end": iso_time(v.metrics["span_end"])}} for v in views],
        "warnings": warnings(views),
        "config_differences": [{"key": k, "values": vals} for k, vals in config_differences(views)],
    }


def as_csv(views: list[RunView]) -> str:
    """One row per metric, one column per run (values as plain numbers where they are numbers)."""
    from exitcore.evaluation import jsonable

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["metric", *[v.run_id for v in views]])
    for label, key in _rows(views):
        writer.writerow([key, *[_csv_value(key, v.metrics) for v in views]])
        if key in CSV_COMPANIONS:  # the table's "[low, high] 95%" / "0.008 (N = 1)" as numbers
            companion = CSV_COMPANIONS[key]
            writer.writerow([companion, *[_csv_value(companion, v.metrics) for v in views]])
    for key, values in config_differences(views):
        # strict JSON per cell (an infinite parameter is "Infinity", quoted, not a bare token)
        writer.writerow([f"config.{key}", *[jsonable.dumps(x) for x in values]])
    return buf.getvalue()


#: CSV rows written right after a row: what the table writes in the same cell as text
CSV_COMPANIONS = {"sharpe_interval": "sharpe_interval_confidence", "dsr_recorded": "dsr_trials",
                  "dsr_today": "dsr_today_trials", "n_days": "active_days",
                  "walk_forward_sharpe_interval": "walk_forward_sharpe_interval_confidence",
                  "walk_forward_dsr": "walk_forward_dsr_trials"}


def _csv_value(key: str, metrics: dict[str, Any]) -> Any:
    """Metric ``key`` of one run as a CSV cell (docs/json.md)."""
    value = metrics.get(key)
    if isinstance(value, (dict, list)):  # strict JSON, as the config cells
        from exitcore.evaluation import jsonable

        return jsonable.dumps(value, sort_keys=True)
    return "" if value is None else value
