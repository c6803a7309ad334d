"""``exitcore run --resume``: what a resume continues, and what it refuses.

A resume continues the configuration frozen in the run's directory (``config.toml``) with the
options it was started with (its registry row's ``params``); options given again on the command
line are laid on top only to be refused when they change it (:func:`check_config_unchanged`,
naming each key), and so are other bars (:func:`check_data_unchanged`) and a checkpoint another
run wrote (:func:`check_checkpoint`). The runner (:mod:`exitcore.runner`) calls these before
anything is printed or loaded: a refused resume must not look like a start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from exitcore.errors import CheckpointError, ConfigError, ExitcoreError
from exitcore.evaluation.rundir import CONFIG_FILE, RUN_FILE
from exitcore.words import command

if TYPE_CHECKING:
    from exitcore.runner import RunRequest


def resolve_resume(run_dir: Path, given: RunRequest, merged: RunRequest, file_of: Callable[[], Any], host: Any,
                    run_id: str = "") -> Any:
    """The interrupted run's configuration, frozen in its ``config.toml``, with whatever the
    command line gives again (``--set``, ``--budget``, ``--timesteps``, ...) on top:
    :func:`check_config_unchanged` then refuses any change it makes, naming it. The experiments
    file is not read (it may have changed, or the run may come from another one) unless a budget
    is named. ``merged`` holds the run's recorded options with the given ones on top: its
    overrides are applied after a budget given again, as they were when the run started
    (on the frozen configuration alone they change nothing).

    ``--data`` is no part of it: on a resume it says only where the run's bars are now (its
    file moved), and the configuration - hence the run's trial, its config hash - stays the
    one frozen; the runner reads the bars from there (:func:`relocated_data
    <exitcore.data.pipeline.relocated_data>`) and their hash refuses other bars.

    The frozen configuration is resolved alone first, so that its own problems (a plugin no
    longer installed) are reported as such; a given option that makes it invalid (``--set
    ppo.n_envs=3`` against the frozen batch size) is refused as a change, not validated."""
    from exitcore.evaluation.rundir import RunDirError, resolve_run

    try:
        frozen = resolve_run(run_dir, host)
    except RunDirError as exc:
        raise ExitcoreError(f"cannot resume: {exc}") from None
    changes = given_options(given)
    if not changes:
        return frozen
    budgets = file_of().budgets if given.budget else None
    try:
        return resolve_run(run_dir, host, budgets=budgets, budget=given.budget, overrides=merged.all_overrides())
    except ConfigError as exc:
        # what is wrong with the changed configuration is beside the point: it cannot be changed
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ExitcoreError(f"cannot resume run {run_id or Path(run_dir).name} with {' '.join(changes)}: a resume continues the "
                            "configuration frozen in the run directory, which cannot be changed on resume; start a new "
                            f"run to change it (the changed configuration would not even be valid: {first})") from None


def drop_recorded_device(request: RunRequest, run_dir: Path) -> RunRequest:
    """``request`` without its ``--device`` when that is the device the run trained on: a run
    frozen with ``device = "auto"`` that resolved to the CPU resumes with ``--device cpu``
    (the same device, so still bit-exact; the caller still trains on it, though "auto" would
    now pick a GPU); any other device stays a refused change."""
    from exitcore.evaluation.rundir import RunDirError, read_config

    if request.device is None:
        return request
    try:
        recorded = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8")).get("device")
        frozen = read_config(run_dir).get("ppo", {}).get("device", "auto")
    except (OSError, ValueError, RunDirError):
        return request  # refused later with the reason, as any change is
    if frozen != "auto" or not isinstance(recorded, str):
        return request
    from exitcore.device import select_device

    def same(a: Any, b: Any) -> bool:
        return a.type == b.type and (a.index or 0) == (b.index or 0)

    import torch

    try:
        if same(select_device(request.device), torch.device(recorded)):
            return attrs.evolve(request, device=None)
    except (ExitcoreError, RuntimeError):
        pass
    return request


def given_options(given: RunRequest) -> list[str]:
    """The options given on a ``--resume`` command line that could change the configuration
    (not ``--data``: there it says only where the run's bars are now)."""
    out = [f"--set {o}" for o in given.overrides]
    out += [f"--{k} {v}" for k, v in (("budget", given.budget), ("timesteps", given.timesteps),
                                      ("seed", given.seed), ("device", given.device)) if v is not None]
    return out


def check_checkpoint(run_dir: Path, resolved: Any) -> None:
    """Refuse a resume whose checkpoint cannot be read, or was written under another ``[ppo]``
    configuration than the run's (a checkpoint copied from another run), while the run is still
    ``interrupted``: once it is marked running, a failure would mark it failed for good, and
    restoring a good checkpoint could no longer help. No checkpoint at all (stopped before the
    first one) is fine: training starts from step 0. The walk-forward windows' checkpoints
    (``walk_forward/window_N/checkpoint.pt``, trained under the same ``[ppo]``) are checked alike."""
    from exitcore.evaluation.rundir import WALK_FORWARD_DIR
    from exitcore.ppo.trainer import CHECKPOINT_FILE

    if (run_dir / CHECKPOINT_FILE).exists():
        _check_one_checkpoint(run_dir / CHECKPOINT_FILE, resolved)
    for path in sorted((run_dir / WALK_FORWARD_DIR).glob(f"window_*/{CHECKPOINT_FILE}")):
        try:
            _check_one_checkpoint(path, resolved)
        except CheckpointError as exc:  # a window's can also go: that window alone trains again
            raise CheckpointError(f"{exc}; a window's checkpoint may also be deleted: walk-forward "
                                  f"{path.parent.name.replace('_', ' ')} then trains again from step 0") from None


def _check_one_checkpoint(path: Path, resolved: Any) -> None:
    from exitcore.config import unstructure
    from exitcore.ppo.checkpoint import load_checkpoint
    from exitcore.ppo.trainer import check_log_reaches

    state = load_checkpoint(path)
    check_log_reaches(path, int(state["update"]), path.parent)
    # compared as JSON: the checkpoint holds the plain data of the [ppo] table it trained under
    written, ours = (json.loads(json.dumps(x, sort_keys=True, default=str)) for x in (state["ppo"], unstructure(resolved.config.ppo)))
    # only the keys the checkpoint has: one written before a [ppo] key existed (policy_params)
    # left it at its default, which the config hash ignores too
    changed = [f"ppo.{key} = {written[key]!r} (this run: {ours.get(key)!r})"
               for key in sorted(written) if written[key] != ours.get(key)]
    if changed:
        raise CheckpointError(
            f"{path}: this checkpoint was not written by this run: it was trained with {'; '.join(changed[:5])}"
            + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
            + ". Put the run's own checkpoint back, or start a new run; the run stays interrupted"
        )


def resume_request(previous: Any, request: RunRequest, where: str = "", run_dir: Path | None = None) -> RunRequest:
    """The stored options of ``previous``, with anything given again on the command line on top
    (but ``--data``: where the run's bars are now, see :func:`relocated_resume_data`). ``where``:
    `` --runs-dir DIR`` for a command printed, when the runs directory is not the default one;
    ``run_dir``: the run's directory (a failed run without its config.toml cannot be run
    ``--from``)."""
    from exitcore.registry import RunState

    if previous.status == "running":
        raise resumed_twice(previous)
    if previous.status == "done":
        raise RunState(f"run {previous.id} is already done; nothing to resume")
    if previous.status == "failed":
        again = (f"`{command()} run --from {previous.id}{where}` runs its configuration again"
                 if run_dir is None or (run_dir / CONFIG_FILE).is_file() else
                 f"`{command()} run {previous.experiment}` starts a new run (it failed before writing its "
                 f"{CONFIG_FILE})")
        raise RunState(f"run {previous.id} failed ({previous.error or 'no error recorded'}); only an interrupted "
                       "run can be resumed (the failure would come again, and fixing a plugin changes the code the run "
                       f"trains with): once the cause is fixed, {again}")
    stored = dict(previous.params or {})
    merged = {**stored}
    for key, value in attrs.asdict(request).items():
        # --data on a resume says where the run's bars are now, not what it asked for
        # (relocated_resume_data): the run keeps the request it started with
        if key in ("resume", "runs_dir", "progress", "data"):
            continue
        if key == "overrides":  # --set given again adds to the stored ones (later wins)
            merged[key] = [*(stored.get("overrides") or []), *value]
        elif value not in (None, ()):
            merged[key] = value
    if request.experiment and stored.get("experiment") and request.experiment != stored["experiment"]:
        exp = stored["experiment"]
        if not (exp.startswith(request.experiment) or request.experiment.startswith(exp)):
            raise ExitcoreError(f"run {previous.id} is a run of {previous.experiment!r}, not of {request.experiment!r}")
    merged["overrides"] = tuple(merged.get("overrides") or ())
    cls = type(request)
    return cls(**{k: v for k, v in merged.items() if k in attrs.fields_dict(cls)},
                      resume=request.resume, runs_dir=request.runs_dir, progress=request.progress)


def check_config_unchanged(previous: Any, resolved: Any, run_dir: Path) -> None:
    """Refuse to resume when the options given again change the frozen configuration, saying what
    differs (before anything is printed or loaded)."""
    from exitcore.evaluation.rundir import read_config
    from exitcore.experiments import config_diff, operational_differences

    stored = run_dir / CONFIG_FILE
    frozen = read_config(stored.parent) if stored.exists() else None
    if previous.config_hash == resolved.config_hash():
        # the hash takes the operational settings at their defaults and cuda:N as cuda (no other
        # trial), but a resume continues the very setup: another one is refused
        diff = operational_differences(frozen, resolved.to_dict()) if frozen is not None else []
        if not diff:
            return
    else:
        diff = config_diff(frozen, resolved.to_dict()) if frozen is not None else []
        # Where the data is read is no change: runs resumed with --data before a resume kept the
        # frozen path wrote the new one to config.toml (their registry row kept the old hash); the
        # bars' hash, checked once they are loaded, refuses other bars.
        diff = [(k, a, b) for k, a, b in diff if not k.endswith("data.params.path")]
        if not diff and frozen is not None:
            return
    shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diff[:8]) or "see config.toml"
    raise ExitcoreError(f"cannot resume run {previous.id}: the resolved configuration changed ({shown}); "
                        "a resume continues the configuration frozen in the run directory: start a new run to change it")


def relocated_resume_data(previous: Any, frozen: Any, spec: str, host: Any) -> Any:
    """The run's frozen data section read from ``spec`` (``--resume RUN --data NEW_PATH``: its
    file moved), refused at once, before anything is printed or loaded, when the spec changes
    more than where the file is (another source or option: ``synthetic?seed=9``) - that would be
    other bars, a change of the configuration."""
    from exitcore.data.pipeline import relocated_data

    data = relocated_data(frozen, spec, host)
    changed = [(f"data.{k}", getattr(frozen, k), getattr(data, k)) for k in ("source",) if getattr(frozen, k) != getattr(data, k)]
    changed += [(f"data.params.{k}", frozen.params.get(k), data.params.get(k)) for k in sorted({*frozen.params, *data.params})
                if k != "path" and frozen.params.get(k) != data.params.get(k)]
    if changed:
        shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed[:8])
        raise ExitcoreError(f"cannot resume run {previous.id}: the resolved configuration changed ({shown}); on a resume, "
                            "--data gives only where the run's data file is now: start a new run to read other bars")
    return data


def check_data_unchanged(previous: Any, data_hash: str, run_dir: Path | None = None,
                         column_hashes: dict[str, str] | None = None, bars: Any = None) -> None:
    """Refuse to resume on other bars than the run started on: other timestamps or prices
    (``data_hash``), or other columns besides them (``column_hashes``, against run.json's
    ``data.column_hashes`` in ``run_dir`` where it recorded them): a feature reading volume
    would train on other data. ``bars`` (those loaded now) and run.json say how they differ."""
    if previous.data_hash != data_hash:
        then = _recorded_bars(run_dir)
        now = f"{len(bars):,} bars {str(bars.start)[:16]} -> {str(bars.end)[:16]}" if bars is not None else ""
        how = (f": {then} then, {now} now" if then and now and then != now
               else f": {now} then and now, other values in them" if then and now else "")
        raise ExitcoreError(f"cannot resume run {previous.id}: the data changed (hash {previous.data_hash} when the run "
                            f"started, {data_hash} now{how}); a resume continues on the bars it started on: restore "
                            "the run's file (a re-downloaded file may hold more bars or revised prices), or start a "
                            f"new run on these bars (`run --from {previous.id}`, another trial)")
    if run_dir is None or column_hashes is None:
        return
    from exitcore.data.bars import column_differences
    from exitcore.evaluation.rundir import read_run_info

    data = read_run_info(run_dir).get("data")
    changed = column_differences(data.get("column_hashes") if isinstance(data, dict) else None, column_hashes)
    if changed:
        raise ExitcoreError(f"cannot resume run {previous.id}: the data's timestamps and prices are the same (hash "
                            f"{data_hash}) but the values of its other columns changed since the run started ({changed}); a "
                            "feature reading them would train on other data: read the run's own file, or start a new run")


def _recorded_bars(run_dir: Path | None) -> str:
    """``51,911 bars 2018-01-02 00:00 -> 2020-02-14 14:45`` as run.json recorded the run's bars, or ``""``."""
    if run_dir is None:
        return ""
    from exitcore.evaluation.rundir import RunDirError, read_run_info

    try:
        data = read_run_info(run_dir).get("data")
    except RunDirError:
        return ""
    if not isinstance(data, dict) or not isinstance(data.get("n_bars"), int):
        return ""
    return f"{data['n_bars']:,} bars {str(data.get('start'))[:16]} -> {str(data.get('end'))[:16]}"


def check_code_unchanged(previous: Any, run_dir: Path, resolved: Any, host: Any, again: str) -> str:
    """Refuse a resume when the code of a plugin that trains (:meth:`plugins_training
    <exitcore.experiments.ResolvedExperiment.plugins_training>`) changed since the run started:
    its results would be of two codes, counted as the first one's trial. Each changed plugin is
    named with its source hashes (the first start's, in run.json's ``plugins``, and now's).
    Where only evaluator plugins changed (an evaluator fixed after it failed), the resume goes on
    and the returned note says so; ``""`` when nothing changed, or when the run was recorded
    before exitcore kept a code hash. ``again`` is the command that runs the configuration anew."""
    from exitcore.code_changes import code_changes

    changes = code_changes(previous.params.get("code_hash"), run_dir, resolved, host)
    if changes is None:
        return ""
    training = resolved.plugins_training()
    if changes.only_outside(training):
        changed = changes.changed
        return (f"{' and '.join(changes.named(n) for n in changed)} changed since run {previous.id} started; "
                f"{'it supplies' if len(changed) == 1 else 'they supply'} only evaluators, so the resume evaluates "
                "with the new code (run.json's resumes record it), and the run stays the trial it started as")
    # a plugin's source hash is its whole package: an evaluator fixed in a package that also
    # supplies training components reads as changed training code (trial Y)
    shared = sorted(set(changes.changed) & training & {rc.component.plugin for rc in resolved.evaluators})
    evaluator = (f" (if only an evaluator changed: {', '.join(repr(n) for n in shared)} also supplies the components "
                 "the run trains with, and a plugin's code is hashed as a whole package; keep evaluators in a "
                 "package of their own, docs/plugins.md)") if shared else ""
    raise ExitcoreError(f"cannot resume run {previous.id}: {changes.why(training, 'plugins it trains with')}{evaluator}; "
                        "a resume continues the code it started with: restore that code, or start a new run "
                        f"(`{again}` runs its configuration again with this code, another trial)")


def resumed_twice(record: Any) -> ExitcoreError:
    """The error for a resume of a run that is running (another resume, or its first start):
    exit status 75, as for any command that waits for a run to finish."""
    from exitcore.registry import RunStillRunning, unverifiable_words

    return RunStillRunning(f"run {record.id} is already running (pid {record.pid}){unverifiable_words(record)}; it "
                           "cannot be resumed twice")
