"""``exitcore runs`` and ``exitcore show RUN``: what the run registry records."""

from __future__ import annotations

import math
import os
import shlex
from pathlib import Path
from typing import Any

import click

from exitcore.cli.options import experiments_option, runs_dir_option
from exitcore.evaluation.verdicts import describe_verdict
from exitcore.words import command, plural, statistic

# the registry's statuses, repeated here so `--help` does not import the registry (sqlite3);
# tests/test_registry.py checks the two lists agree
STATUS_CHOICES = ("pending", "running", "done", "failed", "interrupted")


def _open(runs_dir: str | os.PathLike[str] | None) -> Any:
    from exitcore.registry import Registry, resolve_runs_dir

    return Registry(resolve_runs_dir(runs_dir), read_only=True)  # works on an archived, read-only runs directory


def _note_unrecorded(dirs: list, directory: Any) -> None:
    """A note on stderr for run directories the registry does not record (their trials would
    otherwise vanish from the deflated Sharpe ratio without a word)."""
    from exitcore.registry import unrecorded_words

    if dirs:
        click.echo(f"note: {unrecorded_words(dirs, directory)}", err=True)


def _note_gone(records: list, directory: Any) -> None:
    """A note on stderr for listed runs whose directory is gone (trial AB: `runs` listed a
    deleted run as done, with its Sharpe, while report, compare and audit refused it)."""
    if records:
        first = records[0]
        one = len(records) == 1
        click.echo(f"note: {plural(len(records), 'listed run')} {'has' if one else 'have'} no directory in {directory} "
                   f"any more (e.g. {first.id}: moved or deleted): {'it' if one else 'they'} "
                   f"cannot be reported, compared, audited or resumed, and still {'counts as a trial' if one else 'count as trials'} "
                   "for the deflated Sharpe ratio (a registry row is never removed); move a moved one back", err=True)


def _when(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _value(v: Any) -> str:
    if not isinstance(v, float):
        return statistic(v) if v is None else str(v)  # ints and flags as written
    # fixed notation: 4 significant digits read -2.621e+04 for a P&L of -26,210.37
    return statistic(v, ",.2f" if math.isfinite(v) and abs(v) >= 1000 else ".4g")


#: headline metrics shown in the units the report uses (they are stored as plain fractions)
_UNITS: dict[str, Any] = {
    "mean_return": lambda v: f"{v * 1e4:.2f} bp of the entry price per trade",
    "win_rate": lambda v: f"{100 * v:.1f} % (trades with PnL > 0)",
    "scratch_rate": lambda v: f"{100 * v:.1f} % (trades closed at PnL 0: breakeven stops or exits)",
    "sharpe": lambda v: f"{v:.2f} (daily, annualised)",
    "sortino": lambda v: f"{v:.2f} (daily, annualised)",
    "max_drawdown": lambda v: f"{v:.4g} (PnL fraction)",
    "avg_bars": lambda v: f"{v:.1f} bars held per trade",
    "quick_exit_rate": lambda v: f"{100 * v:.1f} % (trades held <= {_quick_exit_bars()} bars)",
    "walk_forward_sharpe": lambda v: f"{v:.2f} (daily, annualised, over every walk-forward window's test)",
    "walk_forward_best_baseline_sharpe": lambda v: f"{v:.2f} (each window's baseline chosen on its training part)",
}


def _quick_exit_bars() -> int:
    from exitcore.evaluation.metrics import QUICK_EXIT_BARS  # imported when shown: `--help` stays light

    return QUICK_EXIT_BARS


def _shares(shares: dict[str, Any]) -> str:
    """``stop 41.2 %, agent 30.1 %, ...``: shares of trades, largest first (exit reasons)."""
    from exitcore.words import share_percent

    def pct(v: Any) -> str:
        return f"{share_percent(v)} %" if isinstance(v, float) and math.isfinite(v) else _value(v)

    ordered = sorted(shares.items(), key=lambda kv: -kv[1] if isinstance(kv[1], (int, float)) else 0.0)
    return ", ".join(f"{k} {pct(v)}" for k, v in ordered if v != 0) or "-"  # reasons no trade had: left out


def _metric(key: str, v: Any, currency: str | None = None) -> str:
    """A headline metric as ``show`` prints it: in the report's units where it has one, PnL in
    the run's account currency (``costs.account_currency``)."""
    if key in _UNITS and isinstance(v, float) and math.isfinite(v):
        return _UNITS[key](v)
    if key == "total_pnl_ccy":
        return f"{_value(v)} {currency or '(account currency)'}"
    if key.endswith("_interval") and isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) for x in v):
        return f"[{v[0]:.2f}, {v[1]:.2f}] (bootstrap)"
    return _value(v)


def _account_currency(run_path: Any) -> str | None:
    """``costs.account_currency`` of the run's frozen ``config.toml``; None when it cannot be read."""
    from exitcore.costs import account_currency
    from exitcore.evaluation.rundir import RunDirError, read_config

    try:
        return account_currency(read_config(run_path))
    except RunDirError:
        return None


def _sharpe(v: Any) -> str:
    """Sharpe ratios to two decimals, as every other table shows them."""
    return f"{v:.2f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else _value(v)


def _data(record: Any) -> str:
    """``dukascopy aaea34fb``: the data source's kind and the start of the data hash, so runs on
    different bars are told apart (the same hash is the same bars)."""
    kind = (record.data_source or "").split(":", 1)[0].strip() or "-"
    return f"{kind} {(record.data_hash or '-')[:8]}"


def _measured_on(metrics: dict[str, Any]) -> str:
    """Which split the headline metrics were measured on, in-sample marked, and whether the run
    has walk-forward results too (``show`` and ``compare`` give them)."""
    label = str(metrics["label"]) if "label" in metrics else str(metrics.get("split", "-"))
    windows = metrics.get("walk_forward_windows")
    return f"{label} + walk-forward ({windows} windows)" if isinstance(windows, int) and windows else label


@click.command()
@click.option("--experiment", "-e", default=None, metavar="NAME",
              help="Only runs of this experiment (a unique prefix works: v4). An experiment with no runs "
                   "yet lists none (`[]` with --json); a name no registry row or experiments file knows is refused.")
@click.option("--status", "-s", type=click.Choice(STATUS_CHOICES), default=None, help="Only runs in this status.")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (every field, metrics included).")
@click.option("--record", is_flag=True,
              help="Record the run directories in the runs directory that its registry lacks (copied in, or "
                   "left by a deleted or replaced registry), from their run.json and results.json, creating "
                   "the registry if there is none.")
@experiments_option
@click.pass_obj
def runs(session: Any, experiment: str | None, status: str | None, runs_dir: str | None, as_json: bool,
         record: bool) -> None:
    """List recorded runs, oldest first: id, experiment, status, seed, start, duration (from
    the first start: a resumed run's includes the time it stood interrupted), data
    (source and the start of its hash: runs on different bars differ here), Sharpe, look-ahead
    audit verdict.

    Runs whose process died are shown as `interrupted`, never `running`; a finished,
    interrupted or failed run whose directory is gone as `done (dir missing)` (and so on). The Sharpe column is
    the run's headline annualised daily Sharpe, with the split it was measured on; read it
    with the audit column beside it (a FAIL means the number comes from look-ahead).

    With --record, run directories the registry does not record are recorded instead: an
    evaluated run as done with its headline metrics, one without results (or with a damaged
    results.json) as interrupted (so it can be resumed, and evaluated again). They are then listed, compared, and counted as trials by the deflated
    Sharpe ratio. The status is 2 when a directory could not be recorded (each is named, with why).
    """
    from exitcore.cli.output import echo_json
    from exitcore.registry import RUNS_DIR_ENV, Registry, resolve_runs_dir, run_dirs_in

    directory = resolve_runs_dir(runs_dir)
    if record:
        if experiment is not None or status is not None:
            raise click.UsageError("--record records every unrecorded run directory; it takes no --experiment or --status")
        _record(directory, as_json)
        return
    chosen = runs_dir is not None or bool(os.environ.get(RUNS_DIR_ENV))
    if not directory.exists() and not chosen:  # a first `exitcore runs`, before any run: nothing wrong
        if as_json:
            echo_json([])
        else:
            click.echo(f"no runs recorded yet ({directory.resolve()} does not exist; `exitcore run NAME` records one there)")
        return
    if not directory.is_dir():  # a typo in --runs-dir is an error, as in show and compare
        from exitcore.registry import RegistryError

        raise RegistryError(Registry.missing(directory))
    if not Registry.exists(directory):
        if as_json:
            echo_json([])
        else:
            click.echo(f"no runs recorded in {directory}")
        _note_unrecorded(run_dirs_in(directory), directory)  # on stderr: --json's reader still learns of them
        return
    with _open(runs_dir) as registry:
        if experiment is not None:
            experiment = _experiment_filter(registry, experiment, session)
        records = registry.list(experiment=experiment, status=status)
        unrecorded = registry.unrecorded_dirs()
        # a pending or running run may not have made its directory yet
        gone = {r.id for r in records if r.status in ("done", "interrupted", "failed") and not registry.path_of(r).is_dir()}
    _note_unrecorded(unrecorded, directory)
    _note_gone([r for r in records if r.id in gone], directory)
    if as_json:
        echo_json([{**r.to_dict(), **({"run_dir_missing": True} if r.id in gone else {})} for r in records])
        return
    if not records:
        filters = ", ".join(f"{k} {v}" for k, v in (("experiment", experiment), ("status", status)) if v)
        click.echo(f"no runs in {directory}" + (f" with {filters}" if filters else ""))
        return
    header = ("id", "experiment", "status", "seed", "started", "duration", "data", "sharpe", "audit", "measured on",
              "options")
    rows = [
        (
            r.id,
            r.experiment,
            r.status + (" (dir missing)" if r.id in gone else ""),
            str(r.seed),
            _when(r.started_at),
            _duration(r.duration_s),
            _data(r),
            "damaged" if "metrics" in r.damaged else _sharpe(r.metrics.get("sharpe")),
            str(r.metrics.get("audit_verdict") or "-"),  # a FAIL's Sharpe is a look-ahead artefact
            _measured_on(r.metrics) if r.metrics else "-",
            _options(r.params),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _options(params: dict[str, Any]) -> str:
    """What a run's command changed of its experiment, for the runs table: its budget, ``--set``
    overrides, ``--timesteps`` and ``--from`` (a `--set` variant has its experiment's name)."""
    said = [f"--budget {params['budget']}"] if params.get("budget") else []
    said += [f"--set {o}" for o in params.get("overrides") or ()]
    said += [f"--timesteps {params['timesteps']}"] if params.get("timesteps") is not None else []
    said += [f"--from {Path(str(params['from_run'])).name}"] if params.get("from_run") else []
    return " ".join(said) or "-"


def _experiment_filter(registry: Any, name: str, session: Any) -> str:
    """The experiment ``runs -e NAME`` lists: a recorded one (exact or a unique prefix), else one
    the experiments file defines that has no runs yet (an empty list, not an error, so that
    ``for e in v1 v3 v4; do exitcore runs -e $e --json; done`` works); a typo is still refused."""
    from exitcore.errors import ExitcoreError
    from exitcore.registry import AmbiguousName, RegistryError

    try:
        defined = session.experiments_file().names
    except ExitcoreError:  # a broken experiments file: the recorded experiments alone
        defined = []
    try:
        return registry.recorded_experiment(name, defined)
    except AmbiguousName:
        raise
    except RegistryError as not_recorded:
        try:
            return session.experiments_file().resolve_name(name)
        except ExitcoreError:  # unknown there too (or the experiments file is broken): the registry's words
            raise not_recorded from None


def _record(directory: Any, as_json: bool) -> None:
    """``runs --record``: record the run directories ``directory``'s registry lacks."""
    from exitcore.cli.output import echo_json
    from exitcore.errors import ExitcoreError
    from exitcore.recording import record_run_dirs
    from exitcore.registry import REGISTRY_FILE, Registry, run_dirs_in, runs_dir_words

    if not directory.is_dir():
        raise ExitcoreError(Registry.missing(directory))
    if Registry.exists(directory):
        with Registry(directory, create=False) as registry:
            dirs = registry.unrecorded_dirs()
    else:
        dirs = run_dirs_in(directory)
    if not dirs:
        if as_json:
            echo_json([])
        else:
            click.echo(f"every run directory in {directory} is recorded in its registry" if Registry.exists(directory)
                       else f"no run directories in {directory}: nothing to record")
        return
    with Registry(directory) as registry:  # created here when there was none
        outcomes = record_run_dirs(registry, dirs)
    recorded = [o for o in outcomes if o.run_id]
    refused = [o for o in outcomes if not o.run_id]
    if as_json:
        echo_json([{"run_dir": str(o.run_dir), "run_id": o.run_id, "status": o.status,
                    "experiment": o.experiment, "not_recorded": o.why_not} for o in outcomes])
    else:
        for o in recorded:
            click.echo(f"recorded {o.run_id}: {o.experiment}, {o.status}")
        for o in refused:
            click.echo(f"not recorded {o.run_dir.name}: {o.why_not}", err=True)
        if recorded:
            click.echo(f"{plural(len(recorded), 'run')} recorded in {directory / REGISTRY_FILE}; "
                       f"`{command()} runs{runs_dir_words(directory)}` lists them")
    if refused:
        raise ExitcoreError(f"{plural(len(refused), 'run directory', 'run directories')} in {directory} could not "
                            f"be recorded ({'not_recorded in the JSON above' if as_json else 'why is above'})")


def _unrecorded_run_dir(run: str) -> Path | None:
    """``run`` as a path, when it is a run directory that the registry of the directory holding
    it (if any) does not record; None otherwise (a run id, or a recorded run's directory)."""
    from exitcore.evaluation.rundir import holder_record, is_run_dir

    return Path(run) if is_run_dir(run) and holder_record(run) is None else None


def _records(runs_dir: str | None, run_id: str) -> bool:
    """Whether the registry of ``runs_dir`` (``resolve_runs_dir``) records run ``run_id``, as
    ``report`` asks it of a run directory read alone (read only; False where none can be read)."""
    from exitcore.errors import ExitcoreError
    from exitcore.registry import Registry, resolve_runs_dir

    directory = resolve_runs_dir(runs_dir)
    try:
        if Registry.exists(directory):
            with Registry(directory, read_only=True) as registry:
                return registry.has(run_id)
    except ExitcoreError:
        pass
    return False


@click.command()
@click.argument("run")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(run: str, runs_dir: str | None, as_json: bool) -> None:
    """Show one run: its record, headline metrics and run directory.

    RUN is a run id, a unique prefix or suffix (`fa29`) of one, or the path of a run directory
    (its registry is then the directory holding it). A run directory that no registry records
    (copied out of its runs directory, or its registry lost) is shown from its own files, as
    `report` reads it, with a note on stderr.
    """
    from exitcore.cli.output import echo_json
    from exitcore.evaluation.rundir import run_id_of, runs_dir_for
    from exitcore.registry import runs_dir_words

    unrecorded = _unrecorded_run_dir(run)
    if unrecorded is not None:
        from exitcore.evaluation.report import not_recorded_words
        from exitcore.recording import record_of

        record, run_path = record_of(unrecorded), unrecorded
        report = f"{command()} report {shlex.quote(run)}"
        if not _records(runs_dir, record.id):  # a copy of a run --runs-dir's registry records: counted there
            click.echo(f"note: {not_recorded_words(record.id, unrecorded)}", err=True)
    else:
        with _open(runs_dir_for([run], runs_dir)) as registry:
            record = registry.get(run_id_of(run))
            run_path = registry.path_of(record)
            # the commands printed below must find the run: --runs-dir unless it is the default
            report = f"{command()} report {record.id}{runs_dir_words(registry.runs_dir)}"
    if as_json:
        # a run directory read alone is named as `runs --record` would record it: by its name
        named = {"run_dir": unrecorded.resolve().name} if unrecorded is not None else {}
        echo_json({**record.to_dict(), **named, "run_path": str(run_path)})
        return
    fields = [
        ("run", record.id),
        ("experiment", record.experiment),
        ("status", record.status + (f" ({record.error})" if record.error else "")),
        ("seed", str(record.seed)),
        ("config hash", record.config_hash),
        ("data hash", record.data_hash + (f" ({record.data_source})" if record.data_source else "")),
        ("created", record.created_at),
        ("started", record.started_at or "-"),
        ("ended", record.ended_at or "-"),
        ("duration", _duration(record.duration_s)),
        ("last heartbeat", record.heartbeat_at or "-"),
        ("process", f"pid {record.pid} on {record.hostname}" if record.pid else "-"),
        ("run dir", f"{run_path}" + ("" if run_path.is_dir() else " (missing)")),
    ]
    fields += [(f"param {k}", _value(v)) for k, v in record.params.items()]
    fields += [(f"{column} (damaged)", why) for column, why in record.damaged.items() if column != "metrics"]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        click.echo(f"{key:<{width}}  {value}")
    if "metrics" in record.damaged:
        click.echo(f"metrics: damaged in the registry ({record.damaged['metrics']}); `{report}` "
                   "reads them from the run directory")
        return
    if not record.metrics:
        click.echo("metrics: none recorded")
        return
    verdict = record.metrics.get("audit_verdict")
    if verdict in ("FAIL", "SUSPECT"):  # as report and compare do: the numbers below are not to be trusted
        click.echo(f"!! {describe_verdict(verdict, record.metrics.get('audit_verdict_from'), record.metrics.get('audit_why'))}: do not trust these "
                   f"metrics; `{report}` has the details")
    click.echo(f"metrics (measured on {_measured_on(record.metrics)}):")
    mwidth = max(len(k) for k in record.metrics)
    currency = _account_currency(run_path)
    for key, value in record.metrics.items():
        if key in ("audit_verdict_from", "audit_why"):  # said in the line above when it matters
            continue
        if key == "exit_reasons" and isinstance(value, dict):
            value = _shares(value) + " (of trades)"
        elif isinstance(value, dict):
            value = " ".join(f"{k}={_value(v)}" for k, v in value.items())
        click.echo(f"  {key:<{mwidth}}  {_metric(key, value, currency)}")
