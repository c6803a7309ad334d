"""Reading a finished run back: its directory, configuration, results and trained policy.

The run orchestrator writes a run directory (``exitcore run``)::

    RUN_DIR/config.toml          the resolved experiment, frozen ([experiment] table)
    RUN_DIR/run.json             metadata (RUN_FILE: id, experiment, data, splits, seed, device, ...)
    RUN_DIR/results.json         exitcore.evaluation.evaluate.evaluate()
    RUN_DIR/ledger_<split>.csv   the ledgers (or .parquet)
    RUN_DIR/walk_forward.json    exitcore.evaluation.evaluate.walk_forward() (when used)
    RUN_DIR/checkpoints/final.pt the trained policy (or RUN_DIR/checkpoint.pt, the trainer's file)
    RUN_DIR/train_log.jsonl      the training log

``exitcore report`` and ``exitcore audit RUN`` read it through this module. A run is named by
its id (or a unique prefix) in the runs directory's registry, or by the path of its directory.
"""

from __future__ import annotations

import glob
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from exitcore.atomic import write_text_atomic
from exitcore.errors import ConfigError, ExitcoreError
from exitcore.evaluation import jsonable
from exitcore.words import plural

RUN_FILE = "run.json"
CONFIG_FILE = "config.toml"
RESULTS_FILE = "results.json"
WALK_FORWARD_FILE = "walk_forward.json"
#: where the walk-forward windows train, one directory each (:func:`window_dir`)
WALK_FORWARD_DIR = "walk_forward"
#: the trainer's log, one JSON record per update (exitcore.ppo.logger writes it)
TRAIN_LOG_FILE = "train_log.jsonl"
#: where the trained policy is looked for, in order
CHECKPOINT_FILES = ("checkpoints/final.pt", "checkpoint.pt")


def window_dir(run_dir: Path, window: int) -> Path:
    """Where walk-forward window ``window`` (from 1) trains: its checkpoint and training log."""
    return Path(run_dir) / WALK_FORWARD_DIR / f"window_{window}"


class RunDirError(ExitcoreError):
    """A run directory that cannot be read: the message names the file."""


class RunDirNotDone(RunDirError):
    """A run directory without results: the run stopped before its evaluation (interrupted or
    failed). Exit status 4, as for a recorded run that is not done, so a script tells it from
    a typo (2) when the directory is read alone, without a registry."""

    exit_code = 4


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory holding a run (its ``run.json`` or ``config.toml``)."""
    p = Path(path)
    return p.is_dir() and ((p / RUN_FILE).is_file() or (p / CONFIG_FILE).is_file())


def run_id_of(ref: str) -> str:
    """``ref`` as a registry lookup key: a run directory's path stands for its run id (the
    directory's name, as the runner names them); anything else is returned unchanged."""
    return Path(ref).resolve().name if is_run_dir(ref) else ref


def runs_dir_for(refs: Iterable[str], runs_dir: str | os.PathLike[str] | None = None) -> Path:
    """The runs directory whose registry answers ``refs``: where a ref is a run directory's
    path, the directory holding it (so ``show runs2/<id>`` needs no ``--runs-dir``); else
    ``resolve_runs_dir(runs_dir)``. Run directories from two runs directories, or one outside
    an explicit ``runs_dir``, are an error. (``compare`` reads each run directory by the
    registry holding it and answers ids by ``resolve_runs_dir(runs_dir)`` alone.)"""
    from exitcore.registry import resolve_runs_dir

    holders = {Path(ref).resolve().parent for ref in refs if is_run_dir(ref)}
    for ref in refs:
        check_path_ref(ref)
    if not holders:
        return resolve_runs_dir(runs_dir)
    if len(holders) > 1:
        raise RunDirError(f"the run directories given lie in different runs directories ({', '.join(sorted(map(str, holders)))}); "
                          "compare runs recorded in one registry")
    (holder,) = holders
    if runs_dir is not None and Path(resolve_runs_dir(runs_dir)).resolve() != holder:
        raise RunDirError(f"the run directory given lies in {holder}, not in --runs-dir {runs_dir}")
    return holder


def check_path_ref(ref: str) -> None:
    """A ``ref`` that is a path (run ids have no ``/``) but not a run directory is refused
    naming it, rather than looked up as an id in the default runs directory."""
    if os.sep not in ref and ref not in (".", "..") or is_run_dir(ref):
        return
    p = Path(ref)
    if not p.exists():
        what = f"{ref}: no such run directory (it may have been moved or deleted)"
    elif not p.is_dir():
        what = f"{ref} is not a run directory: it is a file"
    else:  # the wording of Registry._unknown, which names a path given as a run id the same way
        what = f"{ref} is not a run directory: it holds no {RUN_FILE} or {CONFIG_FILE}"
    raise RunDirError(f"{what}; name a run by its id (`exitcore runs` lists them) or by the path of its run directory")


def find_run_dir(ref: str, runs_dir: str | os.PathLike[str] | None = None, *, require_done: bool = True) -> Path:
    """The directory of run ``ref``: a run directory's path, or a run id (or unique prefix).

    Ids are looked up in the registry of ``runs_dir`` (``resolve_runs_dir``); with
    ``require_done`` a run that is still running, failed or was interrupted is refused
    (:meth:`~exitcore.registry.Registry.require_done`), so partial results are never read as final.
    """
    from exitcore.registry import Registry, resolve_runs_dir

    if is_run_dir(ref):
        # a recorded run is refused unless done, whichever way it is named
        holder, run_id = Path(ref).resolve().parent, Path(ref).resolve().name
        if require_done and Registry.exists(holder):
            with Registry(holder, read_only=True) as registry:
                if any(r.id == run_id for r in registry.list()):
                    registry.require_done(run_id)
        return Path(ref)

    check_path_ref(ref)
    directory = resolve_runs_dir(runs_dir)
    if not Registry.exists(directory):
        raise RunDirError(f"{ref!r} is neither a run directory nor a run id: {Registry.missing(directory)}")
    with Registry(directory, read_only=True) as registry:
        record = registry.require_done(ref) if require_done else registry.get(ref)
        path = registry.path_of(record)
    return existing_run_dir(record.id, path)


def existing_run_dir(run_id: str, path: Path) -> Path:
    """``path``, the directory the registry records for run ``run_id``; a :class:`RunDirError`
    naming both when it is gone (deleted or moved), before any file in it is looked for."""
    if not Path(path).is_dir():
        raise RunDirError(f"run {run_id}: its directory {path} does not exist")
    return Path(path)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file written by exitcore (NaN/infinity restored); errors name the file."""
    try:
        data = jsonable.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object")
    return data


#: the top-level keys of results.json and run.json that readers index, with the JSON type each
#: must have when present (a hand edit or another tool's file must not end in a traceback)
_RESULTS_SHAPE: dict[str, tuple[type, ...]] = {
    "experiment": (str,), "config_hash": (str,), "split": (str,), "label": (str,), "spans": (dict,),
    "n_trades": (dict,), "ledgers": (dict,), "headline": (dict,), "evaluators": (dict,),
    "best_baseline": (dict, type(None)), "audit_verdict": (str, type(None)), "audit_verdict_from": (list, type(None)),
    "policies": (list,), "ledger_sha256": (dict,),
}
_RUN_SHAPE: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "experiment": (str,), "config_hash": (str,), "data": (dict,), "splits": (list,),
    "request": (dict, type(None)), "plugins": (list, type(None)), "costs": (dict, type(None)),
    "config_sha256": (str,),
}
_JSON_TYPES = {str: "a string", dict: "an object", list: "an array", type(None): "null"}


def _check_shape(path: Path, data: dict[str, Any], shape: dict[str, tuple[type, ...]]) -> None:
    """Raise :class:`RunDirError` naming the file and the first key whose value has the wrong JSON type."""
    for key, types in shape.items():
        if key in data and not isinstance(data[key], types):
            expected = " or ".join(_JSON_TYPES[t] for t in types)
            raise RunDirError(f"{path}: key {key!r} should be {expected}, not {json_type(data[key])}: the file is "
                              "damaged or was not written by exitcore; restore it or run the experiment again")


def json_type(value: Any) -> str:
    """``a number``, ``an array``, ... for a message about a JSON value."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """``run.json`` (empty when the run directory has none); a key of the wrong type is a
    :class:`RunDirError` naming the file and the key."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        return {}
    info = read_json(path)
    _check_shape(path, info, _RUN_SHAPE)
    for i, split in enumerate(info.get("splits") or []):
        if not isinstance(split, dict) or not isinstance(split.get("name"), str):
            raise RunDirError(f"{path}: splits[{i}] should be an object with a name: the file is damaged; "
                              "restore it or run the experiment again")
    return info


def read_results(run_dir: Path) -> dict[str, Any]:
    """``results.json``; a run without one has not been evaluated (an error naming the file), a
    key of the wrong type is a :class:`RunDirError` naming the file and the key."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        if _recorded_done(Path(run_dir)):  # evaluated, and the file lost since: damage, not a state
            raise RunDirError(f"{path}: no such file, although the run's registry records it as done: the run "
                              "directory is damaged; restore the file (from a backup) or run the experiment again")
        raise RunDirNotDone(f"{path}: no results: the run was not evaluated: it stopped before its evaluation "
                            f"(interrupted, or failed){_resume_hint(Path(run_dir))}")
    results = read_json(path)
    _check_shape(path, results, _RESULTS_SHAPE)
    for split, name in (results.get("ledgers") or {}).items():
        if not isinstance(name, str):
            raise RunDirError(f"{path}: ledgers[{split!r}] should be a file name, not {json_type(name)}: "
                              "the file is damaged; restore it or run the experiment again")
    for name, span in (results.get("spans") or {}).items():
        if not (isinstance(span, list) and len(span) == 2):
            raise RunDirError(f"{path}: spans[{name!r}] should be a [start, end] pair, not {json_type(span)}: "
                              "the file is damaged; restore it or run the experiment again")
    return results


def holder_record(run_dir: str | os.PathLike[str]) -> Any:
    """The record that the registry of the directory holding ``run_dir`` keeps of the run the
    directory is named after, or None (no registry there, or it does not record the run, or
    it records that run in another directory)."""
    from exitcore.registry import Registry

    here = Path(run_dir).resolve()
    if not Registry.exists(here.parent):
        return None
    with Registry(here.parent, read_only=True) as registry:
        if not registry.has(here.name):  # by id: listing every row would warn of other runs' damage
            return None
        record = registry.get(here.name, exact=True)
        return record if registry.path_of(record).resolve() == here else None


def holder_record_or_none(run_dir: str | os.PathLike[str]) -> Any:
    """:func:`holder_record`, None where that registry cannot be read (named where it is used)."""
    try:
        return holder_record(run_dir)
    except ExitcoreError:
        return None


def _recorded_done(run_dir: Path) -> bool:
    """Whether the registry of the directory holding ``run_dir`` records its run as done."""
    record = holder_record_or_none(run_dir)
    return record is not None and record.status == "done"


def _resume_hint(run_dir: Path) -> str:
    """How to continue a run directory without results, when it is named by its run id (as
    the runner names them; a renamed copy cannot be recorded under that name): record it
    where no registry does yet, then resume it."""
    from exitcore.words import command

    try:
        run_id = read_run_info(run_dir).get("run_id")
    except RunDirError:
        return ""
    if not run_id or run_id != run_dir.resolve().name:
        return ""
    from exitcore.registry import runs_dir_words

    where = runs_dir_words(run_dir.resolve().parent)  # quoted, and none for the default runs directory
    resume = f"`{command()} run --resume {run_id}{where}` continues it"
    if holder_record_or_none(run_dir) is not None:
        return f"; {resume}"
    return f"; `{command()} runs --record{where}` records it, and {resume}"


def _source_path(source: Any) -> tuple[str, str, str] | None:
    """``(kind, path, rest)`` of a ``bars.source`` label (``csv: data/x.csv``, ``histdata: data/*.zip
    (clock UTC-5)``): the path is the text after ``KIND: `` up to a `` (...)`` the source appends,
    whichever cut names local files (a path may hold `` (`` itself); None where none does."""
    if not isinstance(source, str) or ": " not in source:
        return None
    kind, _, text = source.partition(": ")
    cuts = [len(text)] + [i for i in range(len(text) - 1, 0, -1) if text.startswith(" (", i) and text.endswith(")")]
    for cut in cuts:
        path = text[:cut]
        local = os.path.expanduser(path)
        if path and "://" not in path and (os.path.exists(local) or glob.glob(local)):
            return kind, path, text[cut:]
    return None


def last_read_path(info: dict[str, Any]) -> str | None:
    """The file, folder or glob the run last read its bars from, as run.json's ``data.source``
    (``csv: /data/eurusd.csv``, ``histdata: /data/*.zip (clock UTC-5)``) names it, where that
    exists from here; else None."""
    data = info.get("data")
    found = _source_path(data.get("source") if isinstance(data, dict) else None)
    return found[1] if found else None


def data_path_missing(data: Any) -> bool:
    """Whether a data configuration names a file, folder or glob (``params.path``) not found from
    here (moved, or a relative path read from another directory than the run's)."""
    path = (getattr(data, "params", None) or {}).get("path")
    if not isinstance(path, str) or not path:
        return False
    local = os.path.expanduser(path)
    return not (os.path.exists(local) or glob.glob(local))


def absolute_source(source: str) -> str:
    """``bars.source`` (``csv: data/eurusd.csv``, ``metatrader: data/x.csv (clock UTC+2)``) with a
    relative local path (or glob) made absolute, as run.json records it: where the run read its
    bars, from any directory (trial AB)."""
    found = _source_path(source)
    if found is None or os.path.isabs(os.path.expanduser(found[1])):
        return source
    kind, path, rest = found
    return f"{kind}: {os.path.abspath(os.path.expanduser(path))}{rest}"


def check_results_belong(run_dir: Path, results: dict[str, Any], info: dict[str, Any], record: Any = None) -> None:
    """Refuse results.json when it is not this run's: its ``experiment``, ``config_hash``,
    ``seed`` or ``data_hash`` (the bars'; recorded since 2026-11-28) differ from run.json's, or
    its ``experiment``, ``seed`` or ``data_hash`` from the registry's ``record``. A results.json
    copied from another run (even of the same configuration and seed, on other bars) would
    otherwise be reported under this run's id. (The registry keeps the hash the run started
    with: a resume may record another one for the same configuration, e.g. from an older
    exitcore that hashed the data file's path.)"""
    results_path, info_path = Path(run_dir) / RESULTS_FILE, Path(run_dir) / RUN_FILE
    data = info.get("data")
    info_keys = {**info, "data_hash": data.get("hash") if isinstance(data, dict) else None}
    sources = [(info_path, info_keys, ("experiment", "config_hash", "seed", "data_hash"))]
    if record is not None:
        sources.append((f"the registry's row of run {record.id}",
                        {"experiment": record.experiment, "seed": record.seed, "data_hash": record.data_hash},
                        ("experiment", "seed", "data_hash")))
    for where, other, keys in sources:
        for key in keys:
            ours, theirs = results.get(key), other.get(key)
            if ours is not None and theirs is not None and str(ours) != str(theirs):
                raise RunDirError(f"{results_path} does not belong to this run: its {key} is {ours!r}, "
                                  f"{where} says {theirs!r}; it was copied from another run or the run "
                                  "directory was mixed up: restore its own results.json or run the experiment again")


def with_worked_out_setup(info: Mapping[str, Any], config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``info`` (run.json) with ``compiled_env`` and ``rows_per_pass`` worked out from the frozen
    ``config`` and the recorded device where a run recorded before 2026-11-29 lacks them, so its
    setup compares with a newer run's (``info`` as it is when they cannot be worked out)."""
    if "compiled_env" in info or not isinstance(info.get("device"), str):
        return info
    from exitcore.config import PPOConfig, converter

    try:
        ppo = converter.structure(dict(config.get("ppo") or {}), PPOConfig)
    except Exception:  # a configuration this exitcore cannot read: its setup stays as recorded
        return info
    kind = info["device"].split(":")[0]
    rows = ppo.micro_batch_rows(kind)
    return {**info, "compiled_env": ppo.compiles_env(kind), **({"rows_per_pass": rows} if rows < ppo.batch_size else {})}


def training_setup(info: Mapping[str, Any]) -> str:
    """What besides the configuration and seed decides a run's numbers to the last bit, from
    run.json: the torch version (numpy's and pandas' where recorded), the torch thread count (CPU), the device, a compiled env step
    and passes of fewer rows than a minibatch (``ppo.compile`` and ``ppo.micro_batch_size`` as
    they worked out), and every resume that changed one (``torch 2.13.0+cpu, 1 thread, cpu
    (resumed with 2 threads)``); ``""`` when run.json records none of them (docs/ppo.md,
    Determinism)."""
    def setup(entry: Mapping[str, Any]) -> dict[str, str]:
        versions = entry.get("versions") if isinstance(entry.get("versions"), Mapping) else {}
        threads = entry.get("threads")
        return {k: v for k, v in (
            ("torch", f"torch {versions['torch']}" if isinstance(versions.get("torch"), str) else ""),
            # the bootstrap's draws and the bars' parsing (recorded since 2026-11-30, trial AD)
            *((lib, f"{lib} {versions[lib]}" if isinstance(versions.get(lib), str) else "") for lib in ("numpy", "pandas")),
            ("threads", plural(threads, "thread") if isinstance(threads, int) and not isinstance(threads, bool) else ""),
            # a bare "cuda" ran on the current GPU, index 0 unless a process chose another
            ("device", "cuda:0" if entry.get("device") == "cuda" else str(entry["device"])
             if isinstance(entry.get("device"), str) else ""),
            # float rounding too: a compiled env step, an update summed over passes of fewer rows
            ("compiled", "compiled env step" if entry.get("compiled_env") is True else ""),
            ("rows", f"{entry['rows_per_pass']:,}-row passes" if isinstance(entry.get("rows_per_pass"), int) else ""),
        ) if v}

    first = setup(info)
    resumed = []
    for resume in info.get("resumes") or []:
        if not isinstance(resume, Mapping):
            continue
        changed = [v for k, v in setup(resume).items() if k in first and v != first[k]]
        if changed:
            resumed.append(f"resumed with {', '.join(changed)}")
    return ", ".join(first.values()) + (f" ({'; '.join(resumed)})" if resumed else "")


def read_walk_forward(run_dir: Path, results: Mapping[str, Any],
                      config: Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, str | None]:
    """The run's ``walk_forward.json`` when it is there, readable, shaped as written and this
    run's (its experiment, config hash, seed and data hash, where recorded, are results.json's;
    it has as many windows as ``config``, the frozen configuration, asks for); else None and
    why, when the configuration asked for walk-forward or the file is there (report and
    compare show no walk-forward figures then, and say why)."""
    path = Path(run_dir) / WALK_FORWARD_FILE
    section = config.get("eval") if isinstance(config, Mapping) else None
    planned = section.get("walk_forward") if isinstance(section, Mapping) else None
    asked = isinstance(planned, int) and planned > 0
    if not path.is_file():
        return None, f"{path}: no such file, although the run's eval.walk_forward is set" if asked else None
    try:
        wf = read_json(path)
    except RunDirError as exc:
        return None, str(exc)
    windows = wf.get("windows") if isinstance(wf, Mapping) else None
    if not (isinstance(windows, list) and all(isinstance(w, Mapping) for w in windows)
            and isinstance(wf.get("aggregate"), Mapping)):
        return None, f"{path}: not walk-forward results (a 'windows' array of objects and an 'aggregate' object): the file is damaged"
    for key in ("experiment", "config_hash", "seed", "data_hash"):  # the run it names, first: the likeliest reason
        theirs, ours = wf.get(key), results.get(key)
        if theirs is not None and ours is not None and str(theirs) != str(ours):
            return None, (f"{path} does not belong to this run: its {key} is {theirs!r}, {run_dir / RESULTS_FILE} "
                          f"says {ours!r} (copied from another run)")
    if isinstance(planned, int) and planned != len(windows):  # files written before they named their run
        return None, (f"{path} does not belong to this run: it holds {plural(len(windows), 'window')}, the run's "
                      f"eval.walk_forward is {planned} (copied from another run)")
    return wf, None


#: the walk-forward figures of :func:`walk_forward_headline`
WALK_FORWARD_KEYS = ("walk_forward_windows", "walk_forward_sharpe", "walk_forward_sharpe_interval",
                     "walk_forward_sharpe_interval_confidence", "walk_forward_best_baseline_sharpe", "walk_forward_dsr",
                     "walk_forward_dsr_trials")


def walk_forward_headline(wf: Any) -> dict[str, Any]:
    """The walk-forward aggregate of a run's ``walk_forward.json`` as recorded (RL's Sharpe over
    all windows, its bootstrap interval, the walk-forward best baseline's Sharpe, the DSR): the
    :data:`WALK_FORWARD_KEYS`, each None when not recorded (no walk-forward). ``run`` records
    them with the run's headline metrics, ``compare`` shows them."""
    out: dict[str, Any] = dict.fromkeys(WALK_FORWARD_KEYS)
    if not isinstance(wf, Mapping):
        return out
    agg = wf.get("aggregate") or {}

    def get(*keys: str) -> Any:
        d: Any = agg
        for k in keys:
            d = d.get(k) if isinstance(d, Mapping) else None
        return d if isinstance(d, (int, float)) and not isinstance(d, bool) else None

    out["walk_forward_windows"] = len(wf.get("windows") or [])
    out["walk_forward_sharpe"] = get("metrics", "rl", "sharpe")
    out["walk_forward_best_baseline_sharpe"] = get("metrics", "best_baseline", "sharpe")
    low, high = get("intervals", "rl", "sharpe", "low"), get("intervals", "rl", "sharpe", "high")
    if low is not None and high is not None:
        out["walk_forward_sharpe_interval"] = [low, high]
        out["walk_forward_sharpe_interval_confidence"] = get("intervals", "rl", "confidence")
    out["walk_forward_dsr"], out["walk_forward_dsr_trials"] = get("dsr", "dsr"), get("dsr", "n_trials")
    return out


def check_ledger_complete(path: Path, ledger: Any, results: dict[str, Any], split: str) -> None:
    """Refuse a ledger with fewer or more trades than results.json counted for ``split`` (a
    truncated or replaced file): the numbers recomputed from it would not be the run's."""
    expected = (results.get("n_trades") or {}).get(split)
    if not isinstance(expected, int):
        return
    policies = [p for p in results.get("policies") or [] if isinstance(p, str)] or ["rl"]
    counts = ledger["policy"].value_counts()
    wrong = [f"{p}: {int(counts.get(p, 0))}" for p in policies if int(counts.get(p, 0)) != expected]
    if wrong:
        raise RunDirError(f"{path} does not match {Path(path).parent / RESULTS_FILE}: the {split} split had "
                          f"{expected} trades per policy, the ledger holds {', '.join(wrong[:4])}"
                          f"{' ...' if len(wrong) > 4 else ''}; it is truncated or was replaced: restore it or run "
                          "the experiment again")


def file_sha256(path: Path) -> str | None:
    """The sha256 of the file at ``path`` (None when it cannot be read)."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def config_file_digest(run_dir: Path) -> str | None:
    """The sha256 of the run directory's ``config.toml`` as it is now (None when unreadable):
    run.json records it as ``config_sha256`` when the file is written."""
    return file_sha256(Path(run_dir) / CONFIG_FILE)


def check_ledger_file(path: Path, results: Mapping[str, Any], split: str) -> None:
    """Refuse a ledger file that is not the one the evaluation wrote: its sha256 is not
    results.json's ``ledger_sha256`` for ``split`` (recorded since 2026-11-30; a ledger
    copied from another run with as many trades passed the trade count). Nothing to check
    where none was recorded, or the file is missing (said elsewhere)."""
    recorded = (results.get("ledger_sha256") or {}).get(split) if isinstance(results.get("ledger_sha256"), dict) else None
    now = file_sha256(path)
    if isinstance(recorded, str) and now is not None and now != recorded:
        raise RunDirError(f"{path} is not the ledger the run's evaluation wrote (its sha256 is not the one "
                          f"{Path(path).parent / RESULTS_FILE} records): it was replaced or changed since; restore it, "
                          "or resume or run the experiment again to evaluate it anew")


def config_edited(run_dir: Path, info: Mapping[str, Any]) -> str:
    """Why ``config.toml`` is not the file the run wrote (its sha256 is not run.json's
    ``config_sha256``), else ``""`` (also where run.json records none: runs before 2026-11-30,
    or the file is missing, which is said elsewhere). ``report`` and ``compare`` read the
    configuration, costs and components from this file without resolving it (``audit`` and
    ``--resume`` check it by its configuration's hash: :func:`resolve_run`)."""
    recorded = info.get("config_sha256")
    now = config_file_digest(run_dir)
    if not isinstance(recorded, str) or now is None or now == recorded:
        return ""
    return (f"{Path(run_dir) / CONFIG_FILE} was edited after the run (it is not the file the run wrote: "
            f"run.json records another sha256): the configuration, costs and components read from it are not "
            "necessarily those the run was trained and evaluated with; restore the file (from a backup)")


def read_config(run_dir: Path) -> dict[str, Any]:
    """The ``[experiment]`` table of the run's ``config.toml``."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: no such file (the run's frozen configuration)") from None
    except (OSError, ValueError) as exc:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise RunDirError(f"{path}: cannot be read: {exc}") from None
    table = data.get("experiment")
    if not isinstance(table, dict) or "name" not in table:
        raise RunDirError(f"{path}: expected an [experiment] table with a name")
    return table


def resolve_run(
    run_dir: Path,
    host: Any,
    *,
    budgets: dict[str, Any] | None = None,
    budget: str | None = None,
    overrides: Sequence[str] = (),
    data: tuple[str, dict[str, Any]] | None = None,
) -> Any:
    """The run's experiment, resolved again from its frozen ``config.toml`` against ``host``.

    The frozen configuration holds every value (defaults filled in), so it is resolved on its
    own, without experiments.toml; a plugin that is no longer installed is reported by name.
    ``budget`` (one of ``budgets``, an experiments file's), ``overrides`` and ``data`` are
    layered on top as for an experiment (``run --resume`` does, to refuse any change they make).
    """
    from exitcore.experiments import ExperimentsFile, resolve

    _check_complete(run_dir)
    frozen = read_config(run_dir)
    table = as_frozen_then(frozen)
    name = table.pop("name")
    lineage = table.pop("lineage", None)
    file = ExperimentsFile(path=Path(run_dir) / CONFIG_FILE, defaults={}, experiments={name: table},
                           budgets=dict(budgets or {}))
    try:
        resolved = resolve(file, name, host)
        _check_not_edited(run_dir, frozen, resolved)
        if budget or overrides or data:
            resolved = resolve(file, name, host, budget=budget, overrides=overrides, data=data)
    except ConfigError as exc:
        # the run's file has one [experiment] table, not experiments.NAME: point into it
        problems = [(_frozen_path(where, name), message) for where, message in exc.problems]
        missing = _missing_plugins(run_dir, host, _used_components(table))
        if missing:  # "unknown reward 'x' (did you mean ...)" hides that a plugin is not installed
            problems.append(("", f"the run was made with plugins that are not installed now: "
                                 f"{missing}; install them to audit or resume it"))
        raise ConfigError(problems, exc.source) from None
    if isinstance(lineage, list) and lineage:  # the extends chain it was resolved through, not [name]
        resolved = attrs.evolve(resolved, config=attrs.evolve(resolved.config, lineage=list(lineage)))
    return _located_in_run(resolved, Path(run_dir) / CONFIG_FILE, name)


def _located_in_run(resolved: Any, config_file: Path, name: str) -> Any:
    """``resolved`` with its components' places (which a plugin's failure names) in the run's
    ``config.toml`` (``RUN/config.toml: experiment.eval.evaluators[1]``), not in the
    experiments.toml that :func:`resolve_run` never read."""
    from exitcore.experiments import ResolvedComponent

    def moved(rc: Any) -> Any:
        where = _frozen_path(rc.path, name)
        return attrs.evolve(rc, path=f"{config_file}: {where}") if where != rc.path else rc

    changes: dict[str, Any] = {}
    for field in attrs.fields(type(resolved)):
        value = getattr(resolved, field.name)
        if isinstance(value, ResolvedComponent):
            changes[field.name] = moved(value)
        elif isinstance(value, tuple) and value and all(isinstance(v, ResolvedComponent) for v in value):
            changes[field.name] = tuple(moved(v) for v in value)
    return attrs.evolve(resolved, **changes)


def as_frozen_then(frozen: dict[str, Any]) -> dict[str, Any]:
    """A copy of the frozen ``[experiment]`` table with the values a key added since meant
    before it existed, where their defaults now mean something else: a run frozen without
    ``env.data_holes`` closed its trades at every hole in the data (``"close"``), not ``"hold"``."""
    table = dict(frozen)
    env = table.get("env")
    if isinstance(env, dict) and "data_holes" not in env:
        table["env"] = {**env, "data_holes": "close"}
    return table


def _frozen_path(where: str, name: str) -> str:
    """``experiments.NAME.entry.name`` (where :func:`resolve` puts the run's table) as the
    path in the run's ``config.toml``, ``experiment.entry.name``; other places unchanged."""
    prefix = f"experiments.{name}"
    if where == prefix or where.startswith((prefix + ".", prefix + "[")):
        return "experiment" + where[len(prefix):]
    return where


def _used_components(table: dict[str, Any]) -> set[str]:
    """``kind:name`` of every component the frozen experiment ``table`` names (as run.json
    records them: ``entry:donchian``, ``policy:mlp``)."""

    def names(value: Any) -> list[Any]:
        items = value if isinstance(value, list) else [value]
        return [item.get("name") for item in items if isinstance(item, dict)]

    used = [("entry", n) for n in names(table.get("entry"))]
    for key, kind in (("features", "feature"), ("rewards", "reward"), ("guards", "guard"), ("masks", "mask")):
        used += [(kind, n) for n in names(table.get(key))]
    section = lambda key: table.get(key) if isinstance(table.get(key), dict) else {}  # noqa: E731
    used += [("evaluator", n) for n in names(section("eval").get("evaluators", []))]
    used += [("policy", section("ppo").get("policy")), ("data_source", section("data").get("source"))]
    return {f"{kind}:{n}" for kind, n in used if isinstance(n, str)}


def _check_complete(run_dir: Path) -> None:
    """A run directory without its frozen configuration cannot be audited or resumed: say so,
    and what to do, instead of only "no such file"."""
    path = Path(run_dir) / CONFIG_FILE
    if path.is_file():
        return
    if not Path(run_dir).exists():  # moved or deleted: a moved one is still good where it is now
        raise RunDirError(f"run directory {run_dir} not found: if it was moved, move it back (a run directory is "
                          "found where the registry recorded it, relative to its runs directory: moving the whole "
                          "runs directory is fine); if it was deleted, start a new run")
    what = (f"its {CONFIG_FILE} (the frozen configuration) is missing" if Path(run_dir).is_dir()
            else "the directory does not exist")
    try:
        experiment = read_run_info(run_dir).get("experiment") if Path(run_dir).is_dir() else None
    except RunDirError:
        experiment = None
    raise RunDirError(f"run directory {run_dir} is incomplete: {what}, so the run cannot be resumed or audited; "
                      f"start a new run (`exitcore run {experiment or 'EXPERIMENT'}`). The registry keeps the old "
                      "run's row (rows are never removed: it still counts as a trial for the deflated Sharpe "
                      "ratio); `exitcore runs --status done` lists finished runs only")


def _check_not_edited(run_dir: Path, frozen: dict[str, Any], resolved: Any) -> None:
    """Refuse a ``config.toml`` edited after its run: its configuration's hash is not the one
    run.json recorded, although the file resolves to itself (nothing filled in by a newer
    exitcore explains the difference), or a setting the hash leaves out (``ppo.checkpoint_every``,
    ...) is not the value run.json recorded. Audit and resume would otherwise vouch for, or
    continue, a configuration the run was never trained with."""
    from exitcore.experiments import hash_config, operational_settings, restricted_to

    try:
        info = read_run_info(run_dir)
    except RunDirError:
        return  # nothing to compare with; a damaged run.json is named where it is needed
    recorded, plain = info.get("config_hash"), resolved.to_dict()
    path = Path(run_dir) / CONFIG_FILE
    kept = info.get("operational")
    if isinstance(kept, dict):
        edited = [(k, kept[k], v) for k, v in operational_settings(plain).items() if k in kept and kept[k] != v]
        if edited:
            shown = "; ".join(f"{k} is {b!r}, run.json records {a!r}" for k, a, b in edited)
            raise RunDirError(f"{path} was edited after the run: {shown} (the setting the run was trained with); "
                              "restore the file (from version control or a backup) or run the edited experiment "
                              "as a new run")
    if not recorded:
        return
    # the keys the file lacks were filled in by defaults: a run frozen by an older exitcore, which
    # hashed it without them (resume compares the configurations key by key); before run.json
    # recorded the operational settings, the hash took them as they were, and checks them so
    legacy = not isinstance(kept, dict)
    # and before split dates were hashed in one spelling, as typed (typed_dates)
    if recorded in {hash_config(data, operational=legacy, typed_dates=typed)
                    for data in (plain, restricted_to(plain, frozen)) for typed in (False, True)}:
        return
    now = hash_config(plain, operational=True) if legacy else resolved.config_hash()  # by the rule recorded
    raise RunDirError(f"{path} was edited after the run: its configuration hashes to {now}, "
                      f"{Path(run_dir) / RUN_FILE} records {recorded} (the configuration the run was trained "
                      "and evaluated with); restore the file (from version control or a backup) or run the "
                      "edited experiment as a new run")


def _missing_plugins(run_dir: Path, host: Any, used: set[str] | None = None) -> str:
    """The plugin distributions run.json records that ``host`` does not have, with their
    components (``trial-plugins 0.1.0 (reward:dd_penalty)``); ``""`` when none or unknown.
    With ``used`` (:func:`_used_components`), only the components the run uses are listed,
    and a distribution it does not use is left out."""
    try:
        recorded = read_run_info(run_dir).get("plugins") or []
    except RunDirError:
        return ""
    installed = {(i.distribution, i.name) for i in host.plugin_infos()}
    names = {n for _, n in installed}
    gone = [p for p in recorded if isinstance(p, dict) and p.get("name") not in names
            and (p.get("distribution"), p.get("name")) not in installed]
    by_dist: dict[str, list[str]] = {}  # one distribution may register several plugins
    for p in gone:
        dist = f"{p.get('distribution') or p.get('name')} {p.get('version') or ''}".rstrip()
        comps = [str(c) for c in (p.get("components") if isinstance(p.get("components"), list) else []) if c]
        if used is not None:
            comps = [c for c in comps if c in used]
            if not comps:
                continue
        by_dist.setdefault(dist, []).extend(comps)
    return "; ".join(dist + (f" ({', '.join(comps)})" if comps else "") for dist, comps in by_dist.items())


def find_checkpoint(run_dir: Path) -> Path:
    """The run's trained-policy checkpoint (:data:`CHECKPOINT_FILES`, first found)."""
    for rel in CHECKPOINT_FILES:
        path = Path(run_dir) / rel
        if path.is_file():
            return path
    raise RunDirError(f"{run_dir}: no trained policy ({' or '.join(CHECKPOINT_FILES)})")


def load_policy(run_dir: Path, resolved: Any, obs_dim: int, device: Any = "cpu") -> tuple[Any, Path]:
    """The run's trained policy (built like the trainer built it, weights from the checkpoint)."""
    from exitcore.actions import N_ACTIONS
    from exitcore.ppo.checkpoint import load_checkpoint

    path = find_checkpoint(run_dir)
    state = load_checkpoint(path, map_location=device)
    if int(state["obs_dim"]) != obs_dim or int(state["n_actions"]) != N_ACTIONS:
        raise RunDirError(
            f"{path}: the policy was trained on {state['obs_dim']} observation columns and {state['n_actions']} actions, "
            f"the experiment now builds {obs_dim} and {N_ACTIONS} (a feature plugin changed?)"
        )
    from exitcore.ppo.policy import build_policy

    policy = build_policy(resolved.policy, resolved.config.ppo, obs_dim, N_ACTIONS, resolved.policy_params,
                          check_rows=False)  # evaluated, not trained: a run recorded before the check still loads
    try:
        policy.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise RunDirError(f"{path}: the checkpoint does not fit the experiment's policy: {exc}") from None
    return policy.to(device).eval(), path


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """``data`` as strict JSON (:mod:`~exitcore.evaluation.jsonable`), written atomically."""
    return write_text_atomic(path, jsonable.dumps(data, indent=2) + "\n")
