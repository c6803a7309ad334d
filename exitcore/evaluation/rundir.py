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

import os
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from exitcore.atomic import write_text_atomic
from exitcore.errors import ConfigError, ExitcoreError
from exitcore.evaluation import jsonable

RUN_FILE = "run.json"
CONFIG_FILE = "config.toml"
RESULTS_FILE = "results.json"
WALK_FORWARD_FILE = "walk_forward.json"
#: the trainer's log, one JSON record per update (exitcore.ppo.logger writes it)
TRAIN_LOG_FILE = "train_log.jsonl"
#: where the trained policy is looked for, in order
CHECKPOINT_FILES = ("checkpoints/final.pt", "checkpoint.pt")


class RunDirError(ExitcoreError):
    """A run directory that cannot be read: the message names the file."""


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
    an explicit ``runs_dir``, are an error."""
    from exitcore.registry import resolve_runs_dir

    holders = {Path(ref).resolve().parent for ref in refs if is_run_dir(ref)}
    if not holders:
        return resolve_runs_dir(runs_dir)
    if len(holders) > 1:
        raise RunDirError(f"the run directories given lie in different runs directories ({', '.join(sorted(map(str, holders)))}); "
                          "compare runs recorded in one registry")
    (holder,) = holders
    if runs_dir is not None and str(runs_dir) != "" and Path(runs_dir).resolve() != holder:
        raise RunDirError(f"the run directory given lies in {holder}, not in --runs-dir {runs_dir}")
    return holder


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

    directory = resolve_runs_dir(runs_dir)
    if not Registry.exists(directory):
        raise RunDirError(f"{ref!r} is neither a run directory nor a run id: {Registry.missing(directory)}")
    with Registry(directory, read_only=True) as registry:
        record = registry.require_done(ref) if require_done else registry.get(ref)
        path = registry.path_of(record)
    if not path.is_dir():
        raise RunDirError(f"run {record.id}: its directory {path} does not exist")
    return path


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


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """``run.json`` (empty when the run directory has none)."""
    path = Path(run_dir) / RUN_FILE
    return read_json(path) if path.is_file() else {}


def read_results(run_dir: Path) -> dict[str, Any]:
    """``results.json``; a run without one has not been evaluated (an error naming the file)."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise RunDirError(f"{path}: no results: the run was not evaluated (did it finish?)")
    return read_json(path)


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

    table = dict(read_config(run_dir))
    name = table.pop("name")
    lineage = table.pop("lineage", None)
    file = ExperimentsFile(path=Path(run_dir) / CONFIG_FILE, defaults={}, experiments={name: table},
                           budgets=dict(budgets or {}))
    try:
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
    return resolved


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

    policy = build_policy(resolved.policy, resolved.config.ppo, obs_dim, N_ACTIONS, resolved.policy_params)
    try:
        policy.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise RunDirError(f"{path}: the checkpoint does not fit the experiment's policy: {exc}") from None
    return policy.to(device).eval(), path


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """``data`` as strict JSON (:mod:`~exitcore.evaluation.jsonable`), written atomically."""
    return write_text_atomic(path, jsonable.dumps(data, indent=2) + "\n")
