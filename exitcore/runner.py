"""``exitcore run``: resolve an experiment, load data, train, evaluate, record.

The stages, in order (the terminal announces four of them, ``[1/4] loading data`` to ``[4/4]
evaluating``, and a fifth for walk-forward windows):

1. **resolve** the experiment (budget, ``--data``, ``--set``, ``--seed``, ``--device``,
   ``--timesteps`` folded in as overrides, so everything is validated like the file);
2. **load** the bars (the synthetic generator unless data is given) and hash them;
3. **assemble**: entry trades, market tensors, components; time splits with the purge gap and
   the trade pools of each split;
4. **record**: a registry row and a run directory holding the frozen resolved config
   (``config.toml``) and ``run.json`` (plugins and versions, git commit, data source and hash,
   split boundaries, features, seed, device, options);
5. **train** with masked PPO (checkpoints, log and progress bar in the run directory);
6. **evaluate** on the held-out split (ledger, metrics, baselines, significance, audit);
7. mark the run ``done`` with its headline metrics.

Ctrl-C (or SIGTERM) during training writes a checkpoint and marks the run ``interrupted``;
``exitcore run --resume RUN`` continues it exactly, after checking that neither the resolved
configuration nor the data changed. A crash marks the run ``failed``; a killed process is marked
``interrupted`` by the next registry open.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import click

from exitcore.atomic import file_identity, remove_stale_temporaries, write_text_atomic
from exitcore.errors import MACHINE_ERRNOS, CheckpointError, ConfigError, DataError, ExitcoreError, NotOwner, RunDirGone
from exitcore.evaluation.rundir import (
    CONFIG_FILE,
    RUN_FILE,
    absolute_source,
    config_file_digest,
    data_path_missing,
    last_read_path,
    read_run_info,
)
from exitcore.evaluation.verdicts import describe_verdict
from exitcore.resume import (
    check_checkpoint,
    check_code_unchanged,
    check_config_unchanged,
    check_data_unchanged,
    drop_recorded_device,
    relocated_resume_data,
    resolve_resume,
    resume_request,
    resumed_twice,
)
from exitcore.stop_signals import STOP_SIGNALS
from exitcore.words import command, plural


class RunFailed(ExitcoreError):
    """The run started but could not finish (training diverged, a plugin failed mid-run)."""

    exit_code = 1


class RunInterrupted(Exception):
    """Ctrl-C outside training (while evaluating), an OS error (a full disk, a closed pipe) or a
    failure of the evaluation after a complete training (an evaluator plugin's bug): the run is
    marked ``interrupted``, so it can be resumed from its checkpoint. ``cause`` says why (None
    for Ctrl-C)."""

    def __init__(self, run_id: str, run_dir: Path, cause: str | None = None):
        self.run_id, self.run_dir, self.cause = run_id, run_dir, cause
        super().__init__(f"run {run_id} interrupted" + (f": {cause}" if cause else ""))


def _override_tuple(overrides: Any) -> tuple[str, ...]:
    """``RunRequest.overrides`` as ``KEY=VALUE`` strings: a dict of keys to values written as
    TOML, a lone string refused (review AK: it was read one character at a time)."""
    from exitcore.experiments import override_texts

    return tuple(override_texts(overrides))


@attrs.frozen
class RunRequest:
    """What the user asked for on the command line (all optional but the experiment)."""

    experiment: str | None = None
    budget: str | None = None
    #: ``--set`` strings; from Python also a dict of keys to values (:func:`_override_tuple`)
    overrides: tuple[str, ...] = attrs.field(default=(), converter=lambda v: _override_tuple(v))
    data: str | None = None
    timesteps: int | None = None
    device: str | None = None
    seed: int | None = None
    resume: str | None = None
    #: a run (id or directory) whose frozen configuration a new run starts from (``--from``)
    from_run: str | None = None
    runs_dir: str | None = None
    progress: bool | None = None

    def all_overrides(self) -> list[str]:
        """``--set`` plus the dedicated options, as overrides validated like the file."""
        out = list(self.overrides)
        if self.timesteps is not None:
            out.append(f"ppo.total_timesteps={self.timesteps}")
        if self.seed is not None:
            out.append(f"ppo.seed={self.seed}")
        if self.device is not None:
            out.append(f'ppo.device="{self.device}"')
        return out

    def data_again(self) -> str:
        """`` --data PATH`` for the next resume command when this resume was given ``--data``:
        its config.toml keeps the old place of its bars, so the next one needs it again."""
        return f" --data {shlex.quote(self.data)}" if self.resume and self.data else ""

    def to_dict(self) -> dict[str, Any]:
        """The request as stored in ``run.json`` (to resume with the same options)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.asdict(self).items()
                if k not in ("resume", "progress", "runs_dir")}


@attrs.frozen(eq=False)
class RunInfo:
    """A run as plugins see it (``run_started``, ``iteration_end``, ``run_finished``)."""

    run_id: str
    run_dir: Path
    resolved: Any  # ResolvedExperiment
    data_hash: str
    #: (device, inode) of ``run_dir`` once the run wrote its files there: the directory every
    #: later write checks it still writes into (:func:`_run_dir_watch`)
    dir_id: tuple[int, int] | None = None

    @property
    def experiment(self) -> Any:
        """The resolved :class:`~exitcore.config.ExperimentConfig`."""
        return self.resolved.config


@attrs.frozen
class RunOutcome:
    """How a run ended and where it went."""

    run_id: str
    run_dir: Path
    status: str
    results: dict[str, Any]
    headline: dict[str, Any]
    report: str = ""


# --------------------------------------------------------------------------- terminal


class Stages:
    """Announce the run's stages on stderr with their duration."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.n, self.quiet = total, 0, quiet

    def say(self, message: str) -> None:
        """A progress line inside the current stage."""
        if not self.quiet:
            click.echo(f"      {message}", err=True)

    @contextlib.contextmanager
    def stage(self, what: str) -> Iterator[Callable[[str], None]]:
        """``with stages.stage("loading data") as note: ... note("74,880 bars")``."""
        self.n += 1
        notes: list[str] = []
        if not self.quiet:
            click.echo(f"[{self.n}/{self.total}] {what} ...", err=True)
        t0 = time.perf_counter()
        yield notes.append
        if not self.quiet:
            detail = "; ".join(notes)
            click.echo(f"      {detail + ' ' if detail else ''}({time.perf_counter() - t0:.1f} s)", err=True)


# --------------------------------------------------------------------------- the run


@attrs.define
class _Origin:
    """Where a run starts from (:func:`_origin`): the resolved experiment and, on a resume or a
    ``--from``, the run it continues or copies."""

    request: RunRequest  # on a resume, merged with the resumed run's own request
    resolved: Any  # ResolvedExperiment
    #: `` --data PATH`` for the next resume command (:meth:`RunRequest.data_again`), from this
    #: command's own --data: the merged request keeps the run's first one
    again: str = ""
    data_given: str | None = None  # this command's own --data (a resume's merged request keeps the run's first one)
    previous: Any = None  # the resumed run's registry record
    previous_dir: Path | None = None
    from_source: dict[str, Any] = attrs.Factory(dict)  # the run --from names, as run.json records it
    trained_on: str | None = None  # a resume's --device naming the device the run trained on
    relocated: Any = None  # a resume's --data: where the run's bars are now


def execute(request: RunRequest, file: Any, host: Any, quiet: bool = False,
            registered: Callable[[str, Path], None] | None = None) -> RunOutcome:
    """Run (or resume) one experiment end to end; see the module docstring.

    ``file`` is the experiments file, or a callable returning it: a resume reads it only for a
    ``--budget`` given again, as it continues the configuration frozen in the run directory.
    ``registered(run_id, runs_dir)`` is called once the run is recorded as running in the
    registry of ``runs_dir`` (a script's ``run --json`` then reports it however it ends).
    """
    from exitcore.costs import summarize_costs
    from exitcore.device import select_device
    from exitcore.evaluation.evaluate import check_ledger_format
    from exitcore.evaluation.rundir import runs_dir_for, walk_forward_headline
    from exitcore.ppo.rng import seed_everything
    from exitcore.registry import Registry, resolve_runs_dir, runs_dir_words

    stages = Stages(total=4, quiet=quiet)  # one more with walk-forward, set below
    # the plugins' source hashes, read now: the code was imported just before, and a file saved
    # while the data loads must not be recorded as the code this run ran (the host caches them)
    host.plugin_infos()
    # --resume may name the run's directory: its registry is then the directory holding it
    runs_dir = runs_dir_for([request.resume], request.runs_dir) if request.resume else resolve_runs_dir(request.runs_dir)
    # Nothing is created before the request is known to be good: bad input leaves no trace.
    check_runs_dir_writable(runs_dir)
    origin = _origin(request, file if callable(file) else (lambda: file), host, runs_dir)
    request, resolved, previous = origin.request, origin.resolved, origin.previous
    cfg = resolved.config
    check_ledger_format(cfg.eval.ledger_format)  # before the data: not after an hour of training
    # the frozen "auto" would pick a GPU where the run trained on the CPU: the device it names
    # wins; a device this machine lacks is refused before the data loads
    device = select_device(origin.trained_on or cfg.ppo.device)
    stages.total += 1 if cfg.eval.walk_forward > 0 else 0  # before the first stage is numbered
    if previous is None:
        _warn_few_updates(cfg.ppo, request)
        _warn_unannealed(cfg.ppo, request)
    else:
        code_note = check_code_unchanged(previous, origin.previous_dir, resolved, host,
                                         f"{command()} run --from {previous.id}{runs_dir_words(runs_dir)}")
        if code_note:
            click.echo(f"note: {code_note}", err=True)
    if not quiet:
        resuming = (f" (resuming {previous.id})" if previous is not None else
                    f" (the configuration of {Path(request.from_run).name})" if request.from_run else "")
        # "envs" in RL words: each environment manages one trade at a time
        click.echo(f"exitcore run {cfg.name}{resuming}: {plural(cfg.ppo.trained_timesteps, 'training step')}, "
                   f"{plural(cfg.ppo.n_envs, 'trade')} at a time (n_envs), {_network(cfg.ppo)}, seed {cfg.ppo.seed}", err=True)

    bars, data_hash = _load_data(stages, origin, host, runs_dir)
    costs = summarize_costs(cfg.costs, bars.pip_size, bars.frame["close"].to_numpy())
    cheap = costs.warning()
    if cheap:  # shown even with --quiet: it changes what every number means
        click.echo(f"warning: {cheap}", err=True)
    if previous is not None:
        with Registry(runs_dir, create=False) as old:
            previous = old.get(previous.id, exact=True)  # fresh status (another process may have taken it)
            if previous.status == "running":
                raise resumed_twice(previous)
            check_data_unchanged(previous, data_hash, origin.previous_dir, bars.column_hashes(), bars)

    seed_everything(cfg.ppo.seed)
    with stages.stage(f"building episodes on {device}") as note:
        assembled, splits, pools, counts = _build_episodes(resolved, bars, device, note, first=previous is None)

    registry = Registry(runs_dir)
    run_id, run_dir = _register(registry, origin, bars, data_hash, device, host)
    if registered is not None:
        registered(run_id, registry.runs_dir)
    info = RunInfo(run_id, run_dir, resolved, data_hash)
    with _recorded(registry, host, info, "writing its configuration", resumable=previous is not None):
        meta = _run_metadata(run_id, request, resolved, bars, data_hash, assembled, splits, counts, device, host)
        _write_run_files(run_dir, origin, meta, costs, device)
    # the directory the run writes into from now on: one moved away later, even before training
    # starts (a plugin's run_started), is not recreated at the old path (review AJ)
    info = attrs.evolve(info, dir_id=file_identity(run_dir))

    with _recorded(registry, host, info, "training"):
        host.run_started(info)
        result, policy = _train(stages, info, assembled, pools, device, host, registry, resume=previous is not None,
                                progress=request.progress)
    if result.status == "interrupted":
        with stop_signals_ignored():
            registry.mark_interrupted(run_id, f"stopped after update {result.updates}")
            host.run_finished(info, "interrupted", {})
        return RunOutcome(run_id, run_dir, "interrupted", {}, {})

    # SIGTERM as Ctrl-C here too: the run is marked interrupted at once (exit 130, the resume
    # command printed) instead of dying with 143 and waiting to be found dead
    with _sigterm_as_interrupt():
        with (_recorded(registry, host, info, "evaluating", trained=True, again=origin.again),
              stages.stage("evaluating on the held-out split") as note):
            evaluation = _evaluate(assembled, resolved, policy, pools, splits, registry, data_hash, run_dir,
                                   cfg.ppo.seed, _with_heartbeat(stages.say, registry, run_id, run_dir=run_dir,
                                                                 dir_id=info.dir_id), request.progress,
                                   _owned(registry, run_id, run_dir, info.dir_id), trial=registry.get(run_id, exact=True).trial)
            note(_evaluated_words(evaluation))
            headline, summary = evaluation.headline, evaluation.summary
        if cfg.eval.walk_forward > 0:  # its own stage in the registry: a window's failure is not the evaluation's
            with _recorded(registry, host, info, "walking forward (training and testing its windows)"):
                with stages.stage(f"walk-forward over {cfg.eval.walk_forward} windows (one training each)") as note:
                    wf = _walk_forward(info, bars, device, host, registry, data_hash, stages.say, request.progress,
                                       resume=previous is not None)
                    note(f"aggregate out-of-sample Sharpe {wf.aggregate['metrics']['rl']['sharpe']:.2f} (RL) vs "
                         f"{wf.aggregate['metrics']['best_baseline']['sharpe']:.2f} (walk-forward best baseline)")
                walk = {k: v for k, v in walk_forward_headline(wf.to_dict()).items() if v is not None}
                headline, summary = {**headline, **walk}, f"{summary}\n{_walk_forward_words(walk)}"
        with _recorded(registry, host, info, "recording its end", trained=True, again=origin.again):
            # kept with the run: `runs --record` of a copied directory read its files' times
            _record_in_run_json(run_dir, finished_at=_utc_now())
    registry.mark_done(run_id, headline)  # show and runs give the walk-forward figures too
    host.run_finished(info, "done", evaluation.results)
    return RunOutcome(run_id, run_dir, "done", evaluation.results, headline, summary)


def _origin(request: RunRequest, file_of: Callable[[], Any], host: Any, runs_dir: Path) -> _Origin:
    """Resolve what the run starts from: a resume's frozen configuration (checked against its
    run directory before any output: a refused resume must not look like a start), another
    run's (``--from``), or the experiments file's."""
    from exitcore.data.pipeline import data_config_from_spec
    from exitcore.evaluation.rundir import run_id_of
    from exitcore.registry import Registry, runs_dir_words

    if request.from_run and not request.resume:
        resolved, from_source = _resolve_from(request, file_of, host, data_config_from_spec)
        return _Origin(request, resolved, data_given=request.data, from_source=from_source)
    if not request.resume:
        return _Origin(request, _resolve(request, file_of(), host, data_config_from_spec), data_given=request.data)
    again = request.data_again()
    with Registry(runs_dir, create=False) as old:
        previous = old.get(run_id_of(request.resume))
        previous_dir = old.path_of(previous)
    given = drop_recorded_device(request, previous_dir)
    trained_on = request.device if given.device is None and request.device is not None else None
    merged = resume_request(previous, given, runs_dir_words(runs_dir), previous_dir)
    resolved = resolve_resume(previous_dir, given, merged, file_of, host, previous.id)
    check_config_unchanged(previous, resolved, previous_dir)
    check_checkpoint(previous_dir, resolved)
    # the run's bars, where they are now (its configuration keeps their old place)
    relocated = relocated_resume_data(previous, resolved.config.data, given.data, host) if given.data else None
    if relocated is None and data_path_missing(resolved.config.data):
        # config.toml's path is not found from here (a relative one, resumed from another
        # directory): where run.json says the run last read its bars (their hash is checked)
        try:
            last = last_read_path(read_run_info(previous_dir))
        except ExitcoreError:
            last = None
        if last:
            relocated = relocated_resume_data(previous, resolved.config.data, last, host)
    return _Origin(merged, resolved, again=again, data_given=given.data, previous=previous,
                   previous_dir=previous_dir, trained_on=trained_on, relocated=relocated)


def _load_data(stages: Stages, origin: _Origin, host: Any, runs_dir: Path) -> tuple[Any, str]:
    """The loading stage: the bars and their content hash, with the data's warnings (and, for a
    ``--from`` run, whether these are the bars that run read)."""
    from exitcore.data.bars import column_differences
    from exitcore.data.pipeline import load_bars
    from exitcore.registry import runs_dir_words

    request, cfg, previous, from_source = origin.request, origin.resolved.config, origin.previous, origin.from_source
    with stages.stage("loading data") as note:
        # where a bad data path was set: the experiments file, or the run's (or --from run's) frozen config.toml
        where = (f"{origin.previous_dir / CONFIG_FILE}: data" if previous is not None else
                 f"{Path(from_source['run_dir']) / CONFIG_FILE}: data" if from_source else origin.resolved.data_where)
        # data given as --data is named as given (on a resume, only this command's own --data:
        # the run's first one is in its config.toml)
        named_as_given = bool(origin.relocated) or bool(request.data and previous is None)
        try:
            bars = load_bars(origin.relocated or cfg.data, host, where=where, spec_where="--data" if named_as_given else "",
                             # where each key was written, for a run resolved from the experiments file
                             origins=origin.resolved.data_origins if previous is None and not from_source else None)
        except DataError as exc:
            if origin.data_given or getattr(exc, "param", None) != "path" or (previous is None and not from_source):
                raise
            # the run's data file moved (or was deleted): a resume may read the same bars elsewhere
            if previous is not None:
                raise DataError(f"{exc}; if the file moved, resume with `{command()} run --resume {previous.id} --data "
                                f"NEW_PATH{runs_dir_words(runs_dir)}` (the bars must be the same: their hash is checked)") from None
            raise DataError(f"{exc}; if the file moved, give its new place: `{command()} run --from {request.from_run} "
                            f"--data NEW_PATH{runs_dir_words(runs_dir)}` (read as that run read it; the same bars read "
                            "from another path count as another trial)") from None
        data_hash = bars.content_hash()
        note(f"{bars.source}: {len(bars):,} bars {bars.start:%Y-%m-%d} -> {bars.end:%Y-%m-%d}, hash {data_hash}")
    # where to see every warning: on a resume the experiments file may no longer say what the run read
    _warn_data(bars, None if previous is not None else shlex.quote(request.data) if request.data else f"-e {cfg.name}")
    if from_source.get("data_hash") not in (None, data_hash):
        changed = ("the file at its data path changed" if not request.data else
                   f"--data read as it read its own: {_reading_words(cfg.data)}; other options go after a '?', "
                   "e.g. --data 'PATH?timezone=UTC'")
        click.echo(f"warning: these bars are not the ones run {from_source['run_id']} ran on (hash "
                   f"{from_source['data_hash']} then, {data_hash} now; {changed}); this run does not reproduce it",
                   err=True)
    elif from_source and (columns := column_differences(from_source.get("column_hashes"), bars.column_hashes())):
        click.echo(f"warning: these bars have the timestamps and prices run {from_source['run_id']} ran on (hash "
                   f"{data_hash}) but other values in their other columns ({columns}); a feature reading them sees "
                   "other data, so this run may not reproduce it (and is another trial)", err=True)
    return bars, data_hash


def _build_episodes(resolved: Any, bars: Any, device: Any, note: Callable[[str], None],
                    first: bool) -> tuple[Any, list, dict, dict[str, int]]:
    """The episodes stage: the assembled experiment, its splits, its trade pools and the count
    of trades the agent manages per split. ``first``: a new run, whose components must survive
    their first step (a failure there is bad input: no run, no trial)."""
    from exitcore.assembly import assemble, split_pools

    assembled = assemble(resolved, bars, device=device)
    splits, pools = split_pools(assembled)
    counts = {name: int(p.numel()) for name, p in pools["decidable"].items()}
    # evaluation also books the trades that close on their entry bar, before any decision
    booked = {name: int(p.numel()) for name, p in pools["valid"].items()}
    note(trades_words(assembled.table.n, resolved.entry.name, counts, booked))
    if first:
        from exitcore.env.sweep import first_steps

        first_steps(assembled)
    walk_forward = resolved.config.eval.walk_forward
    if walk_forward > 0:  # windows the data cannot test: refused now, not after the training
        from exitcore.evaluation.evaluate import walk_forward_plan

        walk_forward_plan(assembled, walk_forward)
    return assembled, splits, pools, counts


def _register(registry: Any, origin: _Origin, bars: Any, data_hash: str, device: Any, host: Any) -> tuple[str, Path]:
    """Record the run as running in ``registry`` (a new row, or the resumed run's): its id and
    directory. Warns of run directories the registry lacks and of runs crowding the CPU."""
    import torch

    from exitcore.data.bars import columns_digest
    from exitcore.registry import COLUMNS_HASH, unrecorded_words

    unrecorded = registry.unrecorded_dirs()
    if unrecorded:  # their trials are missing from this run's deflated Sharpe ratio
        click.echo(f"warning: {unrecorded_words(unrecorded, registry.runs_dir)}", err=True)
    running = [(r, _recorded_threads(registry.path_of(r))) for r in registry.list(status="running")]
    crowded = crowded_cpu_words(running, device, torch.get_num_threads(), os.cpu_count() or 1)
    if crowded:
        click.echo(f"warning: {crowded}", err=True)
    if origin.previous is None:
        resolved, cfg = origin.resolved, origin.resolved.config
        run_id = registry.create_run(
            cfg.name, resolved.config_hash(), data_hash, data_source=bars.source, seed=cfg.ppo.seed,
            # the plugin code is part of the trial (RunRecord.trial): an edited reward term is another
            # trial, and so are the bars' volume or spread columns (where they have any)
            params={**origin.request.to_dict(), "code_hash": run_code_hash(resolved, host),
                    **({COLUMNS_HASH: digest} if (digest := columns_digest(bars.column_hashes())) else {})},
        )
        run_dir = registry.path_of(registry.get(run_id, exact=True))
    else:
        run_id, run_dir = origin.previous.id, registry.path_of(origin.previous)
    _start(registry, run_id)  # first: a second resume of the same run stops here, before touching its files
    return run_id, run_dir


def _write_run_files(run_dir: Path, origin: _Origin, meta: dict[str, Any], costs: Any, device: Any) -> None:
    """Write the run directory's frozen configuration and ``run.json`` (a resume keeps the
    provenance its first start recorded)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / CONFIG_FILE, origin.resolved.to_toml())
    # the file as written: report and compare, which read it without resolving it, tell an edit
    meta["config_sha256"] = config_file_digest(run_dir)
    meta["costs"] = costs.to_dict()
    if origin.from_source:
        meta["from_run"] = origin.from_source
    if origin.previous is not None:
        meta = _keep_provenance(run_dir / RUN_FILE, meta)
        _warn_other_threads(meta, device)
    write_text_atomic(run_dir / RUN_FILE, json.dumps(meta, indent=2, default=str))
    remove_stale_temporaries(run_dir)  # left by a kill in the middle of an atomic write


def _evaluated_words(evaluation: Any) -> str:
    """The evaluation stage's note: the trades evaluated and the audit's verdict."""
    verdict = evaluation.audit_verdict
    n_trades = evaluation.headline.get("n_trades")
    described = (describe_verdict(verdict, evaluation.headline.get("audit_verdict_from"),
                                  evaluation.headline.get("audit_why")) if verdict else "")
    return (plural(n_trades, "trade") if isinstance(n_trades, int) else "? trades") + " evaluated" + (
        f"; {described}" if verdict else "")


def _walk_forward_words(walk: dict[str, Any]) -> str:
    """The walk-forward line of the run's summary (its figures: :func:`walk_forward_headline`)."""
    from exitcore.words import statistic

    interval, confidence = walk.get("walk_forward_sharpe_interval"), walk.get("walk_forward_sharpe_interval_confidence")
    shown = (f" [{interval[0]:.2f}, {interval[1]:.2f}]" + (f" {100 * confidence:.0f}%" if confidence else "")) if interval else ""
    return (f"walk-forward over {plural(walk.get('walk_forward_windows', 0), 'window')}: RL Sharpe "
            f"{statistic(walk.get('walk_forward_sharpe'), '.2f')}{shown} vs walk-forward best baseline "
            f"{statistic(walk.get('walk_forward_best_baseline_sharpe'), '.2f')}; deflated Sharpe "
            f"{statistic(walk.get('walk_forward_dsr'), '.3f')} (N = {walk.get('walk_forward_dsr_trials', '?')})")


#: fewer PPO updates than this is hardly training: warned about
FEW_UPDATES = 4


#: the data's other validation warnings ``run`` prints before pointing to ``data inspect``
SHOW_DATA_WARNINGS = 3


def _warn_data(bars: Any, spec: str | None) -> None:
    """The data's validation warnings as ``warning:`` lines (shown with -q too): every hole longer
    than a week (two data sets joined train on signals and features that span years as if they
    were a weekend), then the first :data:`SHOW_DATA_WARNINGS` others (duplicates dropped, partly
    filled resampled bars, a file without a clock...), which were only recorded in the run, and
    where to see all (``spec``: what to give ``data inspect``; None: say it without one)."""
    from exitcore.data.validate import LongHole

    others = []
    for f in bars.findings:
        if isinstance(f, LongHole):
            click.echo(str(f), err=True)
        elif f.level == "warning":
            others.append(f)
    for f in others[:SHOW_DATA_WARNINGS]:
        click.echo(str(f), err=True)
    if len(others) > SHOW_DATA_WARNINGS:
        see = (f"`{command()} data inspect {spec}` lists them all" if spec
               else f"`{command()} data inspect` on this data lists them all")
        click.echo(f"warning: {len(others) - SHOW_DATA_WARNINGS} more data warnings: {see}", err=True)


def _warn_few_updates(ppo: Any, request: RunRequest) -> None:
    """One ``warning:`` line (shown with -q too) when the timesteps asked for round up to fewer
    than :data:`FEW_UPDATES` updates: training runs whole updates of ``n_envs x n_steps`` steps,
    and ``--timesteps 500000`` with v4's 256 x 2,048 is one update."""
    per_update = ppo.n_envs * ppo.n_steps
    updates = ppo.trained_timesteps // per_update
    if updates >= FEW_UPDATES:
        return
    asked = "--timesteps" if request.timesteps is not None else "ppo.total_timesteps"
    # the rollout length that fits FEW_UPDATES updates into the steps asked for, if one does
    fitting = ppo.total_timesteps // (FEW_UPDATES * ppo.n_envs)
    shorter = (f", or shorten each update's rollout (--set ppo.n_steps={fitting} gives {FEW_UPDATES} updates)"
               if 1 <= fitting < ppo.n_steps and ppo.n_envs * fitting >= ppo.batch_size else "")
    click.echo(f"warning: {asked} {ppo.total_timesteps:,} trains {plural(updates, 'PPO update')} "
               f"({plural(ppo.trained_timesteps, 'step')}): each update takes n_envs x n_steps = {ppo.n_envs:,} x "
               f"{ppo.n_steps:,} = {per_update:,} steps; ask for at least {FEW_UPDATES * per_update:,} timesteps"
               f"{shorter}{'' if request.budget else _SHORT_BUDGETS}", err=True)


#: where a short run is wanted: the budgets made for one (trial AB: the advice only went up)
_SHORT_BUDGETS = "; for a short run, take a budget made for one (--budget smoke: seconds, --budget quick: minutes)"


def _warn_unannealed(ppo: Any, request: RunRequest) -> None:
    """One ``warning:`` line when ``--timesteps`` shortens a run below ``ppo.entropy_anneal_steps``:
    its entropy coefficient never reaches ``entropy_coef_end`` (trial AB: v4's 7 M-step schedule
    in a 150 k-step run stayed at its start value, without a word)."""
    if request.timesteps is None or ppo.entropy_anneal_steps <= ppo.trained_timesteps:
        return
    if ppo.entropy_coef_start == ppo.entropy_coef_end:
        return
    reached = ppo.entropy_coef_start + (ppo.entropy_coef_end - ppo.entropy_coef_start) * (
        ppo.trained_timesteps / ppo.entropy_anneal_steps)
    click.echo(f"warning: --timesteps {ppo.total_timesteps:,} trains {plural(ppo.trained_timesteps, 'step')}, fewer than "
               f"ppo.entropy_anneal_steps {ppo.entropy_anneal_steps:,}: the entropy coefficient goes from "
               f"{ppo.entropy_coef_start:g} only to {reached:.3g}, not to entropy_coef_end {ppo.entropy_coef_end:g}; "
               f"--set ppo.entropy_anneal_steps={ppo.trained_timesteps} anneals it within the run", err=True)


def _run_dir_watch(run_dir: Path | None, run_id: str, first: tuple[int, int] | None = None) -> Callable[[], None]:
    """A check that the run's directory is still the one at its path, as it was when the check
    was made: a directory moved (a whole runs directory moved to a bigger disk) or deleted while
    the run trains raises :class:`~exitcore.errors.RunDirGone`, instead of the run writing its
    next checkpoint into a directory made afresh at the old path (trial Z 2). ``first``: the
    directory's identity when the run wrote its files into it (``RunInfo.dir_id``), else now.
    Cheap (one stat)."""
    if run_dir is None:
        return lambda: None
    first = first if first is not None else file_identity(run_dir)

    def check() -> None:
        if first is not None and file_identity(run_dir) != first:
            from exitcore.registry import runs_dir_words

            runs_dir = Path(run_dir).parent
            raise RunDirGone(
                f"its directory {run_dir} was moved or deleted while the run ran, so nothing more is written "
                f"there. What it wrote (its checkpoint, if any) went with the directory: where the whole runs directory was moved, "
                f"continue it there with `{command()} run --resume {run_id} --runs-dir NEW_PLACE`; "
                f"where only the run's directory was, move it back into {runs_dir} and continue it with "
                f"`{command()} run --resume {run_id}{runs_dir_words(runs_dir)}`")

    return check


def _heartbeat(registry: Any, run_id: str, every_s: float = 30.0, run_dir: Path | None = None,
               dir_id: tuple[int, int] | None = None) -> Callable[[], None]:
    """A ``beat()`` that records the run's heartbeat at most every ``every_s`` seconds, so long
    training or evaluation is not taken for a dead run by another host (the registry's stale
    limit); cheap to call often. ``run_dir``: checked at every call to be still in place
    (:func:`_run_dir_watch`)."""
    from exitcore.registry import RegistryTrouble

    last = [time.monotonic()]
    missed = [0]
    in_place = _run_dir_watch(run_dir, run_id, dir_id)

    def beat(now: bool = False) -> None:
        in_place()
        if now or time.monotonic() - last[0] > every_s:
            try:
                registry.heartbeat(run_id)
                missed[0] = 0
            except RegistryTrouble as exc:
                # another process holds the registry's lock (a sqlite3 shell), or its disk is
                # full: the run goes on and tries again; a run silent for the registry's stale
                # limit may be taken for gone, and a file written then checks ownership first
                if now:
                    raise
                if missed[0] == 0:
                    click.echo(f"warning: {exc}; the run goes on and records its heartbeat again in "
                               f"{every_s:g} s", err=True)
                missed[0] += 1
            last[0] = time.monotonic()

    return beat


def _owned(registry: Any, run_id: str, run_dir: Path | None = None,
           dir_id: tuple[int, int] | None = None) -> Callable[[], None]:
    """A check before the run writes a file (a checkpoint, the ledgers, results.json): a heartbeat
    now, which raises :class:`~exitcore.errors.NotOwner` where another process has taken the run
    over (a suspended process resumed hours later: its own clock says no time went by), and
    :class:`~exitcore.errors.RunDirGone` where ``run_dir`` is no longer in place."""
    in_place = _run_dir_watch(run_dir, run_id, dir_id)

    def owned() -> None:
        in_place()
        registry.heartbeat(run_id)

    return owned


def _with_heartbeat(say: Any, registry: Any, run_id: str, every_s: float = 30.0, run_dir: Path | None = None,
                    dir_id: tuple[int, int] | None = None) -> Any:
    """``say`` that also records a heartbeat (at once, then at most every ``every_s`` seconds)."""
    _run_dir_watch(run_dir, run_id, dir_id)()
    registry.heartbeat(run_id)
    beat = _heartbeat(registry, run_id, every_s, run_dir, dir_id)

    def say_and_beat(message: str) -> None:
        say(message)
        beat()

    return say_and_beat


def check_runs_dir_writable(runs_dir: Path) -> None:
    """Fail early, creating nothing, when ``runs_dir`` could not be created or written, or holds
    a registry that cannot be read (opening an existing one may bring its schema up to date)."""
    import tempfile

    from exitcore.registry import RegistryError

    probe = Path(runs_dir)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise RegistryError(f"runs directory {runs_dir} is not writable: {probe} exists and is not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".write-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError):  # e.g. under /proc: "No such file" alone misleads
            reason = f"files cannot be created in {probe} ({reason})"
        raise RegistryError(f"runs directory {runs_dir} is not writable: {reason}") from None
    from exitcore.registry import Registry

    if Registry.exists(runs_dir):  # a damaged registry, found now rather than after the data and episodes
        with Registry(runs_dir, read_only=True):
            pass


def _machine_trouble(exc: BaseException) -> bool:
    """The machine's trouble, not the run's: a full disk, a closed pipe (an OS error of
    :data:`~exitcore.errors.MACHINE_ERRNOS`), a registry locked or unwritable for longer than its
    busy timeout (:class:`~exitcore.registry.RegistryTrouble`)."""
    from exitcore.registry import RegistryTrouble

    return (isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS) or isinstance(exc, RegistryTrouble)


@contextlib.contextmanager
def _recorded(registry: Any, host: Any, info: RunInfo, doing: str, resumable: bool = True,
              trained: bool = False, again: str = "") -> Iterator[None]:
    """Record in the registry (and tell plugins) how a stage of a registered run ended badly.

    Ctrl-C outside the trainer's own handling marks the run ``interrupted`` (it can be resumed:
    the last checkpoint is complete), and so does the machine's trouble (a full disk, a closed
    output pipe: :data:`~exitcore.errors.MACHINE_ERRNOS`), since hours of training must not be written off for
    it; any other exception (a plugin's missing file too: resuming would meet it again) marks
    it ``failed``. ``resumable=False``: the stage comes before anything a resume could start
    from (a new run's configuration), so it fails. ``trained``: the stage comes after the
    training, complete and checkpointed (the evaluation): any failure there (an evaluator
    plugin's bug) leaves the run ``interrupted``, so that a resume evaluates the trained policy
    again once the cause is fixed, instead of writing the training off. A run another process
    has taken over (:class:`~exitcore.errors.NotOwner`, from the stage or from marking it) is
    left as it is. ``again``: what the resume command printed for exitcore's own bug needs
    after the run id (:meth:`RunRequest.data_again`).
    """
    try:
        with _marked(registry, host, info, doing, resumable, trained, again):
            yield
    except NotOwner as exc:  # from the stage, or from marking the run: the row and the run
        # directory are another process's now, and are left to it
        raise RunFailed(f"stopped while {doing}: {exc}") from exc


def _try_mark_interrupted(registry: Any, run_id: str, why: str) -> str:
    """Mark the run interrupted; where the registry itself is the trouble (still locked, the
    disk full), ``""`` is not returned but what happens instead: the next command finds this
    process gone and marks the run interrupted then."""
    from exitcore.registry import RegistryTrouble

    try:
        registry.mark_interrupted(run_id, why)
    except RegistryTrouble:
        return ("; the registry could not record it now, so the run shows as running until the next exitcore "
                "command finds this process gone and marks it interrupted")
    return ""


@contextlib.contextmanager
def _marked(registry: Any, host: Any, info: RunInfo, doing: str, resumable: bool, trained: bool,
            again: str = "") -> Iterator[None]:
    """:func:`_recorded`'s marking of the run as the stage ended (see there)."""
    try:
        yield
    except RunDirGone as exc:  # recorded where the registry is (it may have moved with the run)
        with stop_signals_ignored():
            _try_mark_interrupted(registry, info.run_id, f"stopped while {doing}: {_one_line(exc)}")
            host.run_finished(info, "interrupted", {})
        raise
    except NotOwner:
        raise
    except KeyboardInterrupt:
        with stop_signals_ignored():
            registry.mark_interrupted(info.run_id, f"interrupted while {doing}")
            host.run_finished(info, "interrupted", {})
        raise RunInterrupted(info.run_id, info.run_dir) from None
    except CheckpointError as exc:
        if not resumable:  # nothing to resume from: recorded as any other failure
            registry.mark_failed(info.run_id, f"while {doing}: {_one_line(exc)}")
            host.run_finished(info, "failed", {})
            raise RunFailed(f"run {info.run_id} failed while {doing}: {with_notes(exc)}") from exc
        # a checkpoint that reads but does not fit the trainer (another network, another
        # environment): the file is at fault, not the run, which a good checkpoint can still resume
        registry.mark_interrupted(info.run_id, f"its checkpoint could not be restored: {_one_line(exc)}")
        host.run_finished(info, "interrupted", {})
        raise CheckpointError(f"run {info.run_id} cannot continue from its checkpoint: {exc}. The run stays "
                              "interrupted: put its own checkpoint back and resume, or start a new run") from exc
    except BaseException as exc:
        if resumable and _machine_trouble(exc):
            unrecorded = _try_mark_interrupted(registry, info.run_id, f"stopped while {doing}: {_one_line(exc)}")
            host.run_finished(info, "interrupted", {})
            raise RunInterrupted(info.run_id, info.run_dir, cause=f"stopped while {doing}: {exc}{unrecorded}") from exc
        if trained and isinstance(exc, Exception):
            # "stopped", not "failed": the run is interrupted, and resumed once the cause is fixed
            registry.mark_interrupted(info.run_id, f"stopped while {doing}: {_one_line(exc)}")
            host.run_finished(info, "interrupted", {})
            if not isinstance(exc, ExitcoreError):  # exitcore's own bug (a plugin's is a PluginError):
                # its traceback is what a bug report needs, so it is kept, with what became of the run
                from exitcore.registry import runs_dir_words

                exc.add_note(f"run {info.run_id} is marked interrupted: its training is complete and checkpointed; "
                             f"once the cause is fixed, `{command()} run --resume {info.run_id}{again}"
                             f"{runs_dir_words(Path(info.run_dir).parent)}` evaluates it again, unless the fix "
                             f"changed exitcore itself: a resume continues the code the run started with, so "
                             f"`{command()} run --from {info.run_id}{again}{runs_dir_words(Path(info.run_dir).parent)}` "
                             "then trains it again")
                raise
            raise RunInterrupted(info.run_id, info.run_dir, cause=(
                f"stopped while {doing}: {with_notes(exc)}; its training is complete: fix the cause and resume it to "
                "evaluate it again")) from exc
        registry.mark_failed(info.run_id, f"while {doing}: {_one_line(exc)}")
        host.run_finished(info, "failed", {})
        if isinstance(exc, (ExitcoreError, OSError)):  # OSError: a vanished directory, a refused path
            raise RunFailed(f"run {info.run_id} failed while {doing}: {with_notes(exc)}{_again_words(info)}") from exc
        raise


def _again_words(info: RunInfo) -> str:
    """What to do after a registered run failed: its checkpoint (the trainer writes the last good
    state whatever stopped it) is there to inspect, not to resume; ``--from`` runs the
    configuration again once the cause is fixed. ``""`` before the configuration is written."""
    from exitcore.ppo.trainer import CHECKPOINT_FILE
    from exitcore.registry import runs_dir_words

    run_dir = Path(info.run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        return ""
    kept = " (its checkpoint is kept to inspect: a failed run is not resumed)" if (run_dir / CHECKPOINT_FILE).is_file() else ""
    return (f"; once the cause is fixed, `{command()} run --from {info.run_id}{runs_dir_words(run_dir.parent)}` runs "
            f"its configuration again{kept}")


def with_notes(exc: BaseException) -> str:
    """``exc``'s message with its notes appended as ``; note`` clauses: the trainer's notes say
    where the last good state went (a diverged run's checkpoint). A message that ends its
    sentence (the compiled-step mismatch's "... to train eagerly.") loses its full stop first,
    so the clauses continue the sentence instead of following ``.;``."""
    text = str(exc)
    notes = getattr(exc, "__notes__", ())
    if notes:
        text = text.rstrip().removesuffix(".") + "".join(f"; {note}" for note in notes)
    return text


def _resolve(request: RunRequest, file: Any, host: Any, data_config_from_spec: Any) -> Any:
    from exitcore.experiments import resolve

    if not request.experiment:
        raise ConfigError([("", "name the experiment to run (exitcore experiments list shows them)")])
    return resolve(file, request.experiment, host, budget=request.budget, overrides=request.all_overrides(),
                   data=_data_option(request, host, data_config_from_spec))


def _resolve_from(request: RunRequest, file_of: Callable[[], Any], host: Any,
                  data_config_from_spec: Any) -> tuple[Any, dict[str, Any]]:
    """The configuration frozen in the run ``request.from_run`` names (its directory, or its
    id in the runs directory), with the request's options on top, for a new run: without
    options, the same configuration, so the same trial, reproduced without the experiments
    file that defined it (read only for a ``--budget``). Also what run.json records of that
    run (``from_run``): its id, directory, bars' hash and its own ``request`` (budget, ``--set``, ...)."""
    from exitcore.evaluation.rundir import find_run_dir, read_run_info, resolve_run

    ref = str(request.from_run)
    try:
        source = find_run_dir(ref, request.runs_dir, require_done=False)
        data = None
        if request.data:  # read as the run read its bars (a colleague's run, the file elsewhere here)
            from exitcore.data.pipeline import relocated_data

            moved = relocated_data(resolve_run(source, host).config.data, request.data, host)
            data = (moved.source, dict(moved.params))
        resolved = resolve_run(source, host, budgets=file_of().budgets if request.budget else None,
                               budget=request.budget, overrides=request.all_overrides(), data=data)
        info = read_run_info(source) if (source / RUN_FILE).is_file() else {}
    except (ExitcoreError, ConfigError) as exc:
        raise ExitcoreError(f"--from {ref}: {exc}") from None
    data = info.get("data") if isinstance(info.get("data"), dict) else {}
    return resolved, {"run_id": str(info.get("run_id") or source.name), "run_dir": str(source.resolve()),
                      "data_hash": data.get("hash"), "column_hashes": data.get("column_hashes"),
                      "request": _asked_of(info)}


def _reading_words(data: Any) -> str:
    """``csv with timezone=Europe/Berlin, sep=;``: how a data section reads its files."""
    options = ", ".join(f"{k}={v}" for k, v in sorted(data.params.items()) if k != "path")
    return f"{data.source} with {options}" if options else f"{data.source} with its defaults"


def _asked_of(info: dict[str, Any]) -> dict[str, Any]:
    """What made a run's configuration, as run.json's ``from_run.request`` records it for the run
    started from it: the run's own request, on top of what its own ``--from`` source's asked for
    (recorded the same way), so that a chain (C from B from A) keeps A's budget and options."""
    asked = dict(info["request"]) if isinstance(info.get("request"), dict) else {}
    source = info.get("from_run") if isinstance(info.get("from_run"), dict) else {}
    theirs = source.get("request") if isinstance(source.get("request"), dict) else {}
    for key in ("budget", "timesteps", "seed", "device", "data"):
        if asked.get(key) is None and theirs.get(key) is not None:
            asked[key] = theirs[key]
    asked["overrides"] = [*(theirs.get("overrides") or []), *(asked.get("overrides") or [])]
    return asked


def _data_option(request: RunRequest, host: Any, data_config_from_spec: Any) -> tuple[str, dict[str, Any]] | None:
    """``--data`` as the (source, params) an experiment's data is replaced with, if given."""
    if not request.data:
        return None
    spec = data_config_from_spec(request.data, host)
    return spec.source, dict(spec.params)


def _train(stages: Stages, info: RunInfo, assembled: Any, pools: dict, device: Any, host: Any, registry: Any,
           resume: bool, progress: bool | None) -> tuple[Any, Any]:
    from exitcore.ppo.logger import last_logged_update
    from exitcore.ppo.policy import build_policy
    from exitcore.ppo.trainer import CHECKPOINT_FILE, PPOTrainer

    cfg = info.resolved.config
    ppo = cfg.ppo
    compile_env = ppo.compiles_env(device.type)
    env = assembled.make_env(pools["decidable"]["train"], n_envs=ppo.n_envs, seed=ppo.seed, compile=compile_env)
    policy = build_policy(info.resolved.policy, ppo, env.obs_dim, env.n_actions, info.resolved.policy_params)
    beat = _heartbeat(registry, info.run_id, run_dir=info.run_dir, dir_id=info.dir_id)
    owned = _owned(registry, info.run_id, info.run_dir, info.dir_id)

    trainers: list[Any] = []  # the trainer, once made: a plugin may end its training early

    def on_update(update: int, metrics: dict[str, Any]) -> None:
        reason = host.iteration_end(info, update, metrics)
        beat()
        if reason:
            trainers[0].stop_early(reason)

    checkpoint = info.run_dir / CHECKPOINT_FILE
    beat()  # before the trainer makes its log in the run directory: still the run's own (review AJ)
    with stages.stage(f"training ({training_words(ppo, device.type)})") as note, _sigterm_as_interrupt():
        if resume and checkpoint.exists():
            trainer = PPOTrainer.resume(checkpoint, env, policy, ppo, run_dir=info.run_dir, on_update=on_update,
                                        progress=progress, before_write=owned)
            ended = _read_run_json(info.run_dir).get("stopped_early")
            if ended:  # a plugin ended it (then evaluating was stopped): it trains no further
                trainer.stop_early(str(ended))
            note(f"resumed at step {trainer.global_step:,}")
        else:
            logged = last_logged_update(info.run_dir) if resume else None
            if logged:  # the log says it trained; without its checkpoint that work is lost
                click.echo(f"warning: no {CHECKPOINT_FILE} in {info.run_dir}, although its training log records "
                           f"{plural(logged, 'update')}: training starts again from step 0", err=True)
            if resume and _read_run_json(info.run_dir).get("stopped_early"):  # a plugin's stop went with it
                _record_in_run_json(info.run_dir, stopped_early=None, stopped_early_step=None)
                registry.set_stopped_at_step(info.run_id, None)
            trainer = PPOTrainer(env, policy, ppo, run_dir=info.run_dir, on_update=on_update, progress=progress,
                                 before_write=owned)
        trainers.append(trainer)
        start_step, t0 = trainer.global_step, time.perf_counter()
        with _policy_named(info.resolved.policy):
            result = trainer.train()
        # the rate of this whole session (first update's compilation included), not the last update's
        trained, elapsed = result.global_step - start_step, time.perf_counter() - t0
        note(f"{result.status} after {plural(result.global_step, 'step')} / {plural(result.updates, 'update')}"
             + (f" ({trained:,} of them now)" if start_step else "")
             + (f", {trained / elapsed:,.0f} steps/s" if trained > 0 and elapsed > 0 else ""))
        if result.stopped_early:  # for its report, and for its resume when interrupted: it trains no further
            note(f"ended early, before the {ppo.total_timesteps:,} steps asked for: {result.stopped_early}")
            _record_in_run_json(info.run_dir, stopped_early=str(result.stopped_early),
                                stopped_early_step=result.global_step)
            # another trial than the run trained to the end, before its evaluation counts trials
            registry.set_stopped_at_step(info.run_id, result.global_step)
        failed = [name.replace("_", " ") for name, state in trainer.graphs.items() if state.startswith("failed")]
        if failed:
            note(f"without the CUDA graph of the {' and '.join(failed)} (its capture failed; see the warning)")
    return result, trainer.policy


#: ppo.precision in words
_PRECISION_WORDS = {"fp32": "float32", "bf16": "bfloat16 matrix products"}


def training_words(ppo: Any, device_type: str) -> str:
    """How the run trains, for the training stage's line: ``262,144 steps on cpu; trade simulator
    not compiled; float32; network updated on batches of 8,192 steps, computed 2,048 at a time``."""
    rows = ppo.micro_batch_rows(device_type)
    chunks = f", computed {rows:,} at a time" if rows < ppo.batch_size else ""
    if ppo.captures_graphs(device_type):
        graphs = "; rollout and updates replayed as CUDA graphs"
    elif ppo.replays_env_graph(device_type):
        graphs = "; simulator step replayed as a CUDA graph"
    else:
        graphs = ""
    compiled = "compiled" if ppo.compiles_env(device_type) else "not compiled"
    trained = ppo.trained_timesteps
    steps = f"{trained:,} steps" + (f" ({ppo.total_timesteps:,} asked, rounded up to whole updates)"
                                     if trained != ppo.total_timesteps else "")
    return (f"{steps} on {device_type}; trade simulator {compiled}; "
            f"{_PRECISION_WORDS.get(ppo.precision, ppo.precision)}; network updated on batches of "
            f"{ppo.batch_size:,} steps{chunks}{graphs}")


def trades_words(n_trades: int, entry: str, managed: dict[str, int], total: dict[str, int]) -> str:
    """The trades per split, for the building stage's line: all of them, then those still open
    after their entry bar, the only ones the agent decides on (and, on train, learns from)."""
    every = ", ".join(f"{k} {total.get(k, v):,}" for k, v in managed.items())
    open_ = ", ".join(f"{k} {v:,}" for k, v in managed.items())
    # the trades no split holds, so that the counts add up (trial AA: 21 went unaccounted for)
    outside = n_trades - sum(total.get(k, v) for k, v in managed.items())
    between = (f", {outside:,} in no split (their window crosses a split's edge or a purge gap)"
               if outside > 0 else "")
    return (f"{n_trades:,} trades from {entry}: {every}{between} (the agent manages {open_}: those still open "
            "after their entry bar; the others count in the results as they closed)")


@contextlib.contextmanager
def _policy_named(component: Any) -> Iterator[None]:
    """Name the policy plugin when training stops on its non-finite outputs: the trainer's
    "non-finite policy outputs" knows the module, not which component built it. (Observations
    are checked first, so finite inputs gave these outputs.)"""
    from exitcore.ppo.trainer import TrainingDiverged

    try:
        yield
    except TrainingDiverged as exc:
        if not exc.quantity.startswith("policy outputs"):
            raise
        detail = (f"policy {component.name!r} from {component.origin}: its forward returned nan or inf for "
                  "finite observations; look for a division by zero or a log of 0 in it")
        named = TrainingDiverged(exc.update, exc.quantity, detail)
        named.checkpoint_path = exc.checkpoint_path
        for note in getattr(exc, "__notes__", ()):  # where the last good state went
            named.add_note(note)
        raise named from exc


def _evaluate(assembled: Any, resolved: Any, policy: Any, pools: dict, splits: list, registry: Any, data_hash: str,
              run_dir: Path, seed: int, say: Callable[[str], None], progress: bool | None = None,
              before_write: Callable[[], None] | None = None, trial: tuple[str, int, str] | None = None) -> Any:
    from exitcore.data.progress import progress_to
    from exitcore.evaluation.evaluate import evaluate

    policy.eval()
    # the audit's long loops report how far they are (every few seconds), as training does
    with progress_to(say if progress is not False else None):
        return evaluate(
            assembled, resolved, policy, pools["valid"], splits,
            n_trials=registry.trial_count(data_hash), trials_source=_trials_source(registry, data_hash),
            recorded_sharpes=other_trials_sharpes(registry, data_hash, trial or (resolved.config_hash(), seed, "")),
            data_hash=data_hash, run_dir=run_dir, seed=seed, progress=say, before_write=before_write,
        )


def other_trials_sharpes(registry: Any, data_hash: str, trial: tuple[str, int, str], split: str = "test") -> list[float]:
    """Per-day Sharpes of the trials recorded on ``data_hash`` other than this run's own
    ``trial`` (``RunRecord.trial``), for the DSR's trial variance (see
    :func:`exitcore.evaluation.significance.recorded_trial_sharpes`)."""
    from exitcore.evaluation.significance import recorded_trial_sharpes

    return recorded_trial_sharpes(registry.list(data_hash=data_hash), split, exclude=trial)


def run_code_hash(resolved: Any, host: Any) -> str:
    """The code hash of a run of ``resolved``: its components' plugins' source (see
    :func:`exitcore.plugins.code_hash`)."""
    from exitcore.plugins import code_hash

    return code_hash(host.plugin_infos(), resolved.plugins_used())


def _trials_source(registry: Any, data_hash: str) -> str:
    # absolute: results.json is read from anywhere, a relative --runs-dir only made sense where it was given
    return (f"run registry {Path(registry.path).resolve()}: distinct (config, seed, plugin code) on data {data_hash}, "
            "every status")


def _walk_forward(info: RunInfo, bars: Any, device: Any, host: Any, registry: Any, data_hash: str,
                  say: Callable[[str], None], progress: bool | None, resume: bool = False) -> Any:
    """Train once per walk-forward window on the past and evaluate on the next window. Plugins'
    ``iteration_end`` hears every window's updates (``metrics["window"]`` says which; update
    numbers restart in each window), and a stop request ends that window's training. On
    ``resume``, a window with a checkpoint continues from it (a finished one trains no more)."""
    from exitcore.evaluation.evaluate import walk_forward
    from exitcore.evaluation.rundir import window_dir
    from exitcore.ppo.policy import build_policy
    from exitcore.ppo.trainer import CHECKPOINT_FILE, PPOTrainer

    ppo = info.resolved.config.ppo
    counter = [0]
    say = _with_heartbeat(say, registry, info.run_id, run_dir=info.run_dir, dir_id=info.dir_id)
    heartbeat = _heartbeat(registry, info.run_id, run_dir=info.run_dir, dir_id=info.dir_id)  # a window's training can be long

    def train_fn(assembled: Any, train_pool: Any) -> Any:
        counter[0] += 1
        window = counter[0]
        env = assembled.make_env(train_pool, n_envs=ppo.n_envs, seed=ppo.seed + window)
        policy = build_policy(info.resolved.policy, ppo, env.obs_dim, env.n_actions, info.resolved.policy_params)
        trainers: list[Any] = []

        def on_update(update: int, metrics: dict[str, Any]) -> None:
            reason = host.iteration_end(info, update, {**metrics, "window": window})
            heartbeat()
            if reason:
                trainers[0].stop_early(reason)

        checkpoint = window_dir(info.run_dir, window) / CHECKPOINT_FILE
        heartbeat()  # before the window's trainer makes its directory
        options = dict(run_dir=checkpoint.parent, on_update=on_update, progress=progress,
                       before_write=_owned(registry, info.run_id, info.run_dir, info.dir_id))
        with _policy_named(info.resolved.policy):
            if resume and checkpoint.exists():  # a window trained (in part) before the run stopped goes on from there
                trainer = PPOTrainer.resume(checkpoint, env, policy, ppo, **options)
                ended = (_read_run_json(info.run_dir).get("walk_forward_stopped_early") or {}).get(str(window))
                if ended:
                    trainer.stop_early(str(ended))
                say(f"window {window}: resumed at step {trainer.global_step:,} of {ppo.total_timesteps:,}")
            else:
                trainer = PPOTrainer(env, policy, ppo, **options)
            trainers.append(trainer)
            result = trainer.train()
        if result.stopped_early:  # recorded when interrupted too: its resume trains no further
            say(f"window {window}: training ended early at step {result.global_step:,} of "
                f"{ppo.total_timesteps:,}: {result.stopped_early}")
            stopped = _read_run_json(info.run_dir).get("walk_forward_stopped_early") or {}
            steps = _read_run_json(info.run_dir).get("walk_forward_stopped_early_steps") or {}
            _record_in_run_json(info.run_dir, walk_forward_stopped_early={**stopped, str(window): str(result.stopped_early)},
                                walk_forward_stopped_early_steps={**steps, str(window): result.global_step})
            registry.set_stopped_at_step(info.run_id, result.global_step, window=window)  # another trial
        if result.status != "done":
            raise KeyboardInterrupt
        return policy.eval()

    # counted once the windows trained: a window a plugin ended early makes the run another trial
    return walk_forward(info.resolved, bars, train_fn, device=device, n_trials=lambda: registry.trial_count(data_hash),
                        data_hash=data_hash, run_dir=info.run_dir, progress=say)


@contextlib.contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP ignored inside (main thread only; restored after): a run that is
    already stopping records itself as interrupted, and a second Ctrl-C pressed meanwhile must
    not cut that short, or the run's resume command is never printed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is None:  # installed outside Python: cannot be put back; Python's default, not ignored
                handler = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, handler)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP (:data:`~exitcore.stop_signals.STOP_SIGNALS`) like Ctrl-C while
    training (a killed job, or one whose terminal closed, still checkpoints) and evaluating; one
    ignored when the run started (``nohup``) stays ignored."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        for signum, was in old.items():
            if was is not signal.SIG_IGN:
                signal.signal(signum, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for signum, was in old.items():
            signal.signal(signum, was if was is not None else signal.SIG_DFL)


def _network(ppo: Any) -> str:
    """The policy network for the run's first line: the built-in MLP's sizes, else the plugin's name and params."""
    if ppo.policy == "mlp":
        return f"network {ppo.hidden}"
    params = ", ".join(f"{k}={v!r}" for k, v in ppo.policy_params.items())
    return f"policy {ppo.policy!r}" + (f" ({params})" if params else "")


def _run_metadata(run_id: str, request: RunRequest, resolved: Any, bars: Any, data_hash: str, assembled: Any,
                  splits: list, counts: dict[str, int], device: Any, host: Any) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import torch

    from exitcore.experiments import operational_settings

    index = bars.frame.index
    cfg = resolved.config
    return {
        "run_id": run_id,
        "experiment": cfg.name,
        "description": cfg.description,
        "lineage": cfg.lineage,
        "config_hash": resolved.config_hash(),
        # with the config hash and seed, the run's trial (RunRecord.trial): its plugins' code
        "code_hash": run_code_hash(resolved, host),
        "request": request.to_dict(),
        "data": {
            # absolute: audit and resume find the bars from another directory (a relative path in
            # the experiments file is read from where exitcore ran; trial AB)
            "source": absolute_source(bars.source),
            "source_component": cfg.data.source,
            "hash": data_hash,
            # the columns besides timestamps and OHLC (volume, spread), which the hash leaves out
            "column_hashes": bars.column_hashes(),
            "n_bars": len(bars),
            "start": str(bars.start),
            "end": str(bars.end),
            "timeframe": bars.timeframe,
            "pip_size": bars.pip_size,
            "findings": [str(f) for f in bars.findings][:50],
        },
        "trade_findings": [str(f) for f in getattr(assembled.trades, "findings", ())][:50],
        "splits": [
            {"name": s.name, "start_bar": s.start_bar, "end_bar": s.end_bar,
             "start": str(index[s.start_bar]) if s.n_bars else None,
             "end": str(index[s.end_bar - 1]) if s.n_bars else None,
             "usable_trades": counts.get(s.name, 0)}
            for s in splits
        ],
        "trades": {"total": assembled.table.n, "valid": int(assembled.table.valid.sum()),
                   "decidable": int(assembled.table.decidable.sum()), "entry": resolved.entry.name},
        "features": list(assembled.components.feature_names),
        "obs_dim": assembled.components.obs_dim,
        "seed": cfg.ppo.seed,
        "device": str(device),
        # what the config hash leaves out (docs/experiments.md), as configured: audit and resume
        # refuse a config.toml whose values differ; and what they made of the step and update
        "operational": operational_settings(resolved.to_dict()),
        "compiled_env": cfg.ppo.compiles_env(device.type),
        **({"rows_per_pass": rows} if (rows := cfg.ppo.micro_batch_rows(device.type)) < cfg.ppo.batch_size else {}),
        "timesteps": cfg.ppo.total_timesteps,
        "plugins": [
            {"name": i.name, "distribution": i.distribution, "version": i.version, "source_hash": i.source,
             "components": [f"{c.kind.value}:{c.name}" for c in i.components]}
            for i in host.plugin_infos()
        ],
        "git": _git_commit(),
        # numpy draws the bootstrap's resamples, pandas parses and resamples the bars (trial AD)
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "pandas": pd.__version__},
        # CPU results are bit-identical only at the same thread count (docs/ppo.md, Determinism)
        "threads": torch.get_num_threads(),
        "host": platform.node(),
        # the process that writes the run now (each start and resume): `runs --record` does not
        # record a run whose process still runs as interrupted (a second process would resume it)
        "owner": _owner(),
        "command": sys.argv,
    }


def _owner() -> dict[str, Any]:
    """This process as run.json names the run's writer: pid, host and start token (the registry's)."""
    from exitcore.process_identity import owner_host, owner_token

    return {"pid": os.getpid(), "host": owner_host(), "token": owner_token()}


#: what run.json records about the process that ran: a resume keeps the first start's and lists its own
_PROVENANCE = ("command", "git", "versions", "threads", "host", "plugins", "code_hash")
#: what run.json records of the run's history, kept by a resume: a plugin's early stop of the
#: run's training and of walk-forward windows (``{window: reason}``), with the steps they ended at,
#: and the run it started from
_RUN_HISTORY = ("stopped_early", "stopped_early_step", "walk_forward_stopped_early", "walk_forward_stopped_early_steps",
                "from_run")


def _keep_provenance(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` for a resumed run: the first start's provenance kept (the code that trained the
    first updates), each resume's own appended under ``resumes``."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return meta  # killed before its run.json was written: this start is the first on record
    if not isinstance(old, dict):
        return meta
    kept = {**meta, **{k: old[k] for k in (*_PROVENANCE, *_RUN_HISTORY) if k in old}}
    if "code_hash" not in old:  # started before exitcore kept it: its trial has none (RunRecord.trial)
        kept.pop("code_hash", None)
    resumes = old.get("resumes") if isinstance(old.get("resumes"), list) else []
    kept["resumes"] = [*resumes, {"at": _utc_now(), **{k: meta[k] for k in _PROVENANCE if k in meta}}]
    return kept


def crowded_cpu_words(running: Sequence[tuple[Any, int | None]], device: Any, threads: int, cores: int) -> str:
    """A warning when other runs recorded ``running`` on this host (``(record, its torch thread
    count or None)``) train beside this one with more threads in all than ``cores``: each
    parallel region then waits for a descheduled thread, and every run is several times slower
    (docs/benchmarks.md measured 2-10x at a load of 2-4 on 2 cores) than the same runs one after
    another or at one thread each. A run's unknown count is taken as this one's."""
    from exitcore.process_identity import on_this_host

    if getattr(device, "type", str(device)) != "cpu":
        return ""
    others = [(r, n or threads) for r, n in running if on_this_host(r.hostname)]
    total = threads + sum(n for _, n in others)
    if not others or total <= cores:
        return ""
    return (f"{plural(len(others), 'other run')} {'is' if len(others) == 1 else 'are'} training on this host "
            f"({', '.join(r.id for r, _ in others[:3])}{', ...' if len(others) > 3 else ''}): {total} torch threads "
            f"in all on {plural(cores, 'core')}, so the runs wait for each other's threads and each is several times "
            "slower; start them with OMP_NUM_THREADS=1, or one after another")


def _recorded_threads(run_dir: Path) -> int | None:
    """The torch thread count of the process now running a run, from its ``run.json``: its last
    resume's where it was resumed (the top-level count is the first start's), else the start's;
    None where it cannot be read."""
    try:
        meta = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        resumes = meta.get("resumes")
        threads = (resumes[-1] if isinstance(resumes, list) and resumes else meta).get("threads")
    except (OSError, ValueError, AttributeError):
        return None
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None


def _record_in_run_json(run_dir: Path, **values: Any) -> None:
    """Add ``values`` to the run's ``run.json`` (atomically), e.g. why its training ended early;
    a value of None removes its key."""
    path = run_dir / RUN_FILE
    meta = {k: v for k, v in {**json.loads(path.read_text(encoding="utf-8")), **values}.items()
            if not (k in values and v is None)}
    write_text_atomic(path, json.dumps(meta, indent=2, default=str))


def _read_run_json(run_dir: Path) -> dict[str, Any]:
    """The run's ``run.json`` as written by this run (``{}`` if it cannot be read)."""
    try:
        meta = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _warn_other_threads(meta: dict[str, Any], device: Any) -> None:
    """On a CPU resume, say when torch's thread count differs from the first start's: the
    continuation then differs from an uninterrupted run in the last bits (a trial measured 6e-8
    in the weights), where the docs promise bit for bit."""
    first, now = meta.get("threads"), (meta.get("resumes") or [{}])[-1].get("threads")
    if getattr(device, "type", str(device)) == "cpu" and isinstance(first, int) and isinstance(now, int) and first != now:
        click.echo(f"warning: this run first trained with {plural(first, 'torch thread')}, and resumes with {now} "
                   f"(OMP_NUM_THREADS): the continuation will not be bit-identical to an uninterrupted run; "
                   f"resume with OMP_NUM_THREADS={first} for that", err=True)


def _utc_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _start(registry: Any, run_id: str) -> None:
    """Mark the run running; a run another process is running already is refused by name."""
    from exitcore.registry import RegistryError

    try:
        registry.mark_running(run_id)
    except RegistryError:
        record = registry.get(run_id, exact=True)
        if record.status == "running":
            raise resumed_twice(record) from None
        raise


def _git_commit() -> dict[str, Any] | None:
    """The project checkout's commit (and whether it had local changes), if it is a git repo."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


ERROR_CHARS = 4000  # the registry's error column: whole messages (a divergence names every reward
# term), capped only against a plugin that puts megabytes into one


def _one_line(exc: BaseException) -> str:
    """``exc`` as the registry records it: its type and whole message (notes included) on one
    line, so that ``show`` and ``runs --json`` say why a run failed after its stderr is gone."""
    text = " ".join(line.strip() for line in with_notes(exc).splitlines() if line.strip())
    line = f"{type(exc).__name__}: {text}"
    if len(line) <= ERROR_CHARS:
        return line
    cut = line.rfind(" ", 0, ERROR_CHARS - 40)  # a whole word, not half a number
    return line[: cut if cut > 0 else ERROR_CHARS - 40] + f" ... ({len(line) - ERROR_CHARS + 40:,} more characters)"
