"""``exitcore runs --record``: record run directories that a runs directory's registry lacks.

A run directory carries what its registry row held: ``run.json`` names the run's id,
experiment, configuration hash, seed, data hash and source, and the request it was started
with; ``results.json``, once the run was evaluated, its headline metrics. So run directories
copied in from another machine, or left by a registry that was deleted or replaced, can be
recorded again: listed, found by experiment name, compared, resumed, and counted as trials by
the deflated Sharpe ratio (whose ``N`` silently shrinks while they are missing).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from exitcore.errors import ExitcoreError
from exitcore.evaluation import jsonable
from exitcore.evaluation.rundir import RUN_FILE


class NoRunInfo(ExitcoreError):
    """A run directory without ``run.json``: what a registry row needs is not there."""


class Misnamed(ExitcoreError):
    """A run directory whose name is not the run id its ``run.json`` gives (``named``)."""

    def __init__(self, named: str, message: str):
        super().__init__(message)
        self.named = named


@attrs.frozen
class Recorded:
    """What :func:`record_run_dirs` did with one run directory."""

    run_dir: Path
    #: the run's id (its directory's name) when it was recorded, else None
    run_id: str | None
    #: ``done`` (evaluated) or ``interrupted`` (no results yet: resumable), when recorded
    status: str | None = None
    experiment: str | None = None
    #: why it was not recorded, when it was not
    why_not: str | None = None


def row_of(run_dir: Path, *, own_name: bool = True) -> dict[str, Any]:
    """The registry row that ``run_dir`` describes, from its ``run.json`` and ``results.json``.

    A run with results that belong to it is ``done`` with their headline metrics; one without
    results stopped before its evaluation (interrupted, failed or killed: the directory does not
    say which) and is recorded ``interrupted``, so ``exitcore run --resume`` can take it up from
    its checkpoint. Raises :class:`ExitcoreError` saying why a directory cannot be recorded;
    with ``own_name`` false, a directory under another name than its run id (a copy kept aside)
    gives the row of the run its ``run.json`` names instead of :class:`Misnamed`.
    """
    from exitcore.evaluation.rundir import RESULTS_FILE, RunDirError, check_results_belong, read_results, read_run_info
    from exitcore.registry import _last_write

    info_path = run_dir / RUN_FILE
    if not info_path.is_file():
        raise NoRunInfo(f"{info_path}: no such file (the run's metadata)")
    info = read_run_info(run_dir)
    data = info.get("data") or {}
    missing = [key for key, value in (("run_id", info.get("run_id")), ("experiment", info.get("experiment")),
                                      ("config_hash", info.get("config_hash")), ("seed", info.get("seed")),
                                      ("data.hash", data.get("hash"))) if value in (None, "")]
    if missing:
        raise ExitcoreError(f"{info_path} lacks {', '.join(missing)}: it was not written by exitcore, or is damaged")
    if own_name and info["run_id"] != run_dir.name:
        raise Misnamed(info["run_id"], f"{info_path} names run {info['run_id']}, not {run_dir.name}: a copy or "
                                       f"a renamed directory; a run directory is named by its run id (rename it "
                                       f"{info['run_id']})")
    seed = info["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ExitcoreError(f"{info_path}: key 'seed' should be a whole number, not {seed!r}: the file is damaged")
    created = _created_at(info["run_id"]) or jsonable.iso_time(
        dt.datetime.fromtimestamp(info_path.stat().st_mtime, dt.timezone.utc))
    status, metrics, ended = "interrupted", {}, _last_write(run_dir)
    error = "recorded from its run directory, which has no results: it stopped before its evaluation"
    if not (run_dir / RESULTS_FILE).is_file():
        _refuse_if_still_running(run_dir, info)
    else:
        try:
            results = read_results(run_dir)
        except RunDirError as exc:  # damaged: the run still is a trial (trial Z 12), and a resume evaluates it again
            results, walk, why = None, {}, f"its {RESULTS_FILE} is damaged ({_without_path(str(exc), run_dir)}); " \
                                           "resume it to evaluate it again"
        if results is not None:
            check_results_belong(run_dir, results, info)
            headline = results.get("headline")
            walk, why = _walk_forward_of(run_dir, results)
        if why:  # evaluated, but stopped in (or lost) its walk-forward windows, or its results damaged: not done
            error = f"recorded from its run directory: {why}"
        else:
            status, metrics, error = "done", {**(headline if isinstance(headline, dict) else {}), **walk}, ""
            ended = _finished_at(info) or jsonable.iso_time(
                dt.datetime.fromtimestamp((run_dir / RESULTS_FILE).stat().st_mtime, dt.timezone.utc))
    request = info.get("request")
    return {
        "id": info["run_id"],
        "experiment": info["experiment"],
        "config_hash": str(info["config_hash"]),
        "data_hash": str(data["hash"]),
        "data_source": str(data.get("source") or ""),
        "seed": seed,
        "status": status,
        "run_dir": run_dir.name if own_name else str(run_dir),  # relative: the registry's runs directory holds it
        "created_at": created,
        "started_at": created,
        "ended_at": ended,
        "heartbeat_at": None,
        "pid": None,  # no process owns it: nothing here can be mistaken for a live run
        "hostname": info.get("host") if isinstance(info.get("host"), str) else None,
        "proc_start": None,
        "error": error,
        # the plugin code is part of the run's trial (RunRecord.trial); none before exitcore kept it
        "params": jsonable.dumps({**(request if isinstance(request, dict) else {}),
                                  **({"code_hash": info["code_hash"]} if isinstance(info.get("code_hash"), str) else {}),
                                  **_trial_params(run_dir, info)}),
        "metrics": jsonable.dumps(metrics),
    }


def _trial_params(run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """What else run.json says of the run's trial (:attr:`~exitcore.registry.RunRecord.trial`):
    the digest of its bars' other columns, and the steps at which a plugin ended its training
    and its walk-forward windows' (a run that recorded a stop without its step, before exitcore
    kept it: the last step its training log records)."""
    from exitcore.data.bars import columns_digest
    from exitcore.evaluation.report import trained_steps
    from exitcore.registry import COLUMNS_HASH, STOPPED_AT_STEP, WINDOWS_STOPPED_AT

    out: dict[str, Any] = {}
    data = info.get("data") if isinstance(info.get("data"), dict) else {}
    if isinstance(data.get("column_hashes"), dict) and (digest := columns_digest(data["column_hashes"])):
        out[COLUMNS_HASH] = digest
    step = info.get("stopped_early_step")
    if info.get("stopped_early") and not isinstance(step, int):
        step = trained_steps(run_dir)
    if isinstance(step, int) and info.get("stopped_early"):
        out[STOPPED_AT_STEP] = step
    windows = info.get("walk_forward_stopped_early_steps")
    if isinstance(windows, dict) and windows:
        out[WINDOWS_STOPPED_AT] = {str(k): v for k, v in windows.items() if isinstance(v, int)}
    return out


def _walk_forward_of(run_dir: Path, results: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The walk-forward figures a finished run records with its headline (as ``run`` does), and
    why the run is not finished when its configuration asks for walk-forward windows and its
    ``walk_forward.json`` is missing or not its own (the run stopped in its windows: a resume
    continues them)."""
    from exitcore.evaluation.rundir import RunDirError, read_config, read_walk_forward, walk_forward_headline

    try:
        config = read_config(run_dir)
    except RunDirError:
        config = None  # a run recorded without its config.toml: its results are all there is
    wf, why = read_walk_forward(run_dir, results, config)
    planned = (config.get("eval") or {}).get("walk_forward") if isinstance(config, dict) else None
    if wf is None:  # only a run that asked for windows is unfinished without them (not one beside another's file)
        asked = isinstance(planned, int) and planned > 0
        return {}, (why or "") if asked else ""
    return {k: v for k, v in walk_forward_headline(wf).items() if v is not None}, ""


def record_of(run_dir: Path) -> Any:
    """The :class:`~exitcore.registry.RunRecord` that ``run_dir`` describes (:func:`row_of`), for a
    run directory no registry records (``compare`` of run directories copied out of their runs
    directory, or beside a lost registry)."""
    from exitcore.evaluation.rundir import RunDirError
    from exitcore.registry import RunRecord

    try:
        return RunRecord.from_row(row_of(run_dir, own_name=False))
    except NoRunInfo as exc:  # as compare says it of a recorded run's directory
        raise RunDirError(f"{exc}: the run directory is incomplete") from None


def _finished_at(info: dict[str, Any]) -> str | None:
    """When a finished run ended, as its run.json records it (``finished_at``, kept since
    2026-11-29: a copy's file times are the copy's), else None."""
    try:
        return jsonable.iso_time(info.get("finished_at"))
    except (TypeError, ValueError):  # not a time: the file times it is
        return None


def _created_at(run_id: str) -> str | None:
    """The creation time a run id starts with, as an ISO time, else None."""
    from exitcore.registry import run_id_created

    stamp = run_id_created(run_id)
    return jsonable.iso_time(stamp) if stamp is not None else None


def _refuse_if_still_running(run_dir: Path, info: dict[str, Any]) -> None:
    """Refuse to record as ``interrupted`` a run directory whose process, as run.json names it
    (``owner``: recorded since 2026-11-30), still runs on this host: a resume of it would train a
    second process in it beside the first (trial Z: a registry deleted under a live run, then
    ``runs --record``, then ``--resume``)."""
    from exitcore.process_identity import on_this_host, process_alive

    owner = info.get("owner")
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or not on_this_host(owner.get("host")):
        return
    if process_alive(owner["pid"], owner.get("token")):
        raise ExitcoreError(f"it has no results and the process that ran it (pid {owner['pid']}) is still running: "
                            "its registry was deleted or replaced under it; record it once that process has stopped, "
                            "or a resume would train a second process in it beside the first")


def record_run_dirs(registry: Any, run_dirs: Iterable[Path]) -> list[Recorded]:
    """Record each of ``run_dirs`` (directories directly in ``registry.runs_dir``) in ``registry``.

    One transaction per directory: a directory that cannot be recorded (no or a damaged
    ``run.json``, results of another run, an id the registry already has) is reported with why
    and leaves the registry as it was; the others are recorded.
    """
    done = []
    for run_dir in run_dirs:
        try:
            row = row_of(run_dir)
        except Misnamed as exc:
            why = str(exc)
            if registry.has(exc.named):  # the run itself is recorded: this is a copy of it, or it renamed
                where = registry.path_of(registry.get(exc.named, exact=True))
                why = (f"a copy of run {exc.named} (its run.json names that run), which the registry records "
                       f"already in {where}: delete the copy or move it out" if where.is_dir() else
                       f"run {exc.named} renamed (its run.json names that run, which the registry records in {where}, "
                       f"gone): rename it back to {where.name}")
            done.append(Recorded(run_dir, None, why_not=_without_path(why, run_dir)))
            continue
        except (ExitcoreError, OSError) as exc:
            done.append(Recorded(run_dir, None, why_not=_why_not(exc, run_dir)))
            continue
        if not registry.record_existing(row):
            existing = registry.get(row["id"], exact=True)
            where = registry.path_of(existing)
            if where.resolve() == run_dir.resolve():  # recorded meanwhile (another `runs --record`): done
                done.append(Recorded(run_dir, row["id"], existing.status, existing.experiment))
            else:
                done.append(Recorded(run_dir, None, why_not=f"the registry already records a run {row['id']} "
                                                            f"in another directory ({where})"))
            continue
        done.append(Recorded(run_dir, row["id"], row["status"], row["experiment"]))
    return done


def _why_not(exc: ExitcoreError | OSError, run_dir: Path) -> str:
    """Why :func:`row_of` refused ``run_dir`` (``exc``), for ``runs --record``'s report."""
    if isinstance(exc, NoRunInfo):
        if (run_dir / "results.json").is_file():  # evaluated: its metadata was lost, not never written
            return (f"it has no {RUN_FILE} though it has results: the run's metadata (its id, data, plugins) was "
                    f"deleted; restore {RUN_FILE} (from a backup) to record it")
        return (f"it has no {RUN_FILE} (the run stopped before recording its data and plugins): it cannot be "
                "resumed; delete it, or run the experiment again")
    why = f"{exc.filename or run_dir}: {exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
    return _without_path(why, run_dir)


def why_not_recordable(run_dir: Path) -> str | None:
    """Why ``runs --record`` would not record ``run_dir`` as it is, or None where it would (a run
    the registry records under another directory is judged by :func:`record_run_dirs` only)."""
    try:
        row_of(run_dir)
    except Misnamed as exc:
        return str(exc)
    except (ExitcoreError, OSError) as exc:
        return _why_not(exc, run_dir)
    return None


def _without_path(why: str, run_dir: Path) -> str:
    """``why`` without a leading path inside ``run_dir``, which the report names already."""
    prefix = f"{run_dir}{os.sep}"
    return why[len(prefix):] if why.startswith(prefix) else why
