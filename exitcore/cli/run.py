"""``exitcore run NAME``: train an experiment, evaluate it out of sample, record the run."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from exitcore.cli.options import budget_option, device_option, experiments_option, runs_dir_option, set_option
from exitcore.cli.streams import output_discarded_when_closed
from exitcore.errors import ExitcoreError
from exitcore.params import MAX_SEED
from exitcore.words import command


@click.command()
@click.argument("name", required=False)
@budget_option
@set_option
@click.option("--data", "data", metavar="SPEC",
              help="Bars to use instead of the experiment's data: a path, a glob or SOURCE:PATH?key=value "
                   "(docs/data.md). Default: the experiment's own data (its data section; the project's "
                   "experiments use the embedded synthetic generator). With --resume: where the run's bars are "
                   "now (its file moved); only the path changes, and the bars must be the same.")
@click.option("--timesteps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Total environment steps (ppo.total_timesteps), rounded up to whole updates of n_envs x n_steps. "
                   "Default: the experiment's.")
@device_option(None, "Training device (ppo.device); cuda:N picks one GPU. Default: the experiment's (auto: a GPU "
                     "when there is one).")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, metavar="N",
              help="Random seed (ppo.seed). Default: the experiment's.")
@click.option("--resume", "resume", metavar="RUN", default=None,
              help="Continue an interrupted run exactly where its last checkpoint stopped, with the configuration "
                   "frozen in its directory (the experiments file is not read); refused if an option given again "
                   "or the data changes it.")
@click.option("--from", "from_run", metavar="RUN", default=None,
              help="Start a new run with the configuration frozen in RUN's directory (an id in the runs directory, "
                   "or a run directory anywhere): reproduces that run without the experiments file that defined "
                   "it, as the same trial; --seed, --set, --data, --budget or --timesteps vary it.")
@runs_dir_option
@click.option("--progress/--no-progress", default=None,
              help="Training progress on stderr: a bar on a terminal; in a log file or a pipe a line every "
                   "30 s and at each tenth of the run (update, steps, steps/s, ETA). Default: on, off with -q.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the final summary and warnings (no stages, no progress).")
@click.option("--json", "as_json", is_flag=True,
              help="When the run ends, print its registry record on stdout as JSON (`show RUN --json`'s fields: "
                   "id, status, run_path, metrics...), however it ended: done, interrupted or failed; the summary "
                   "goes to stderr. No JSON when the run is refused before it starts (bad input; a resume of a run "
                   "that is done, failed or already running).")
@experiments_option
@click.pass_obj
def run(session, name, budget, overrides, data, timesteps, device, seed, resume, from_run, runs_dir, progress,
        quiet, as_json) -> None:
    """Train experiment NAME with masked PPO, evaluate it on the held-out split, record the run.

    NAME may be a unique prefix (`v4` for `v4_no_lookahead`). The run directory receives the
    frozen configuration, plugin versions, data hash, split boundaries, checkpoints, the
    training log, the trade ledgers and the evaluation results; the registry in the runs
    directory indexes it (`exitcore runs`). For a short CPU run add `--budget quick`.

    Exit status: 0 the run finished (whatever its look-ahead audit found: the verdict is
    printed and recorded; gate on metrics.audit_verdict of `--json` or `exitcore show RUN --json`), 1 it failed
    while training or evaluating, or the machine stopped it (a full disk: recorded
    interrupted, resumable, with the command to continue), 2 bad input, 4 a resume of a run that
    is done or failed, 75 a resume of a run that is running (try again once it has stopped), 130
    interrupted (Ctrl-C, or SIGTERM or SIGHUP (the terminal closed; run it under nohup to
    outlive the terminal) while training or evaluating; resumable once the run is recorded).
    A script's background job (`exitcore run ... &`) ignores SIGINT, as POSIX shells start
    them: stop it with SIGTERM.

    A closed output pipe does not stop a run: when the reader of stdout or stderr goes away
    (`exitcore run v4 --budget quick 2>&1 | head -1`), what would have been written there is
    discarded from then on, as under nohup, and the run trains, evaluates, is recorded and
    exits as it would have; `exitcore runs` shows how it ended.

    \b
    Examples:
      exitcore run v4_no_lookahead --budget quick
      exitcore run v3 --budget quick --seed 1
      exitcore run v4 --data ../shared/data/eurusd_m15_dukascopy_2018_2020/ --budget quick
      exitcore run --resume 20261126-101500-v4_no_lookahead-3f2a
      exitcore run --from ~/colleague/runs/20261126-101500-v4_no_lookahead-3f2a
    """
    from exitcore.runner import RunRequest

    if not name and not resume and not from_run:
        raise click.UsageError("name the experiment to run (see `exitcore experiments list`), or give --resume RUN "
                               "or --from RUN")
    if from_run and (name or resume):
        raise click.UsageError(f"--from RUN starts a new run with RUN's configuration: give it without "
                               f"{'NAME' if name else '--resume'}")
    if from_run and Path(from_run).expanduser().is_dir():  # recorded (run.json's request) where it is found again
        from_run = str(Path(from_run).expanduser().resolve())
    if progress is None:
        # --quiet means quiet on a terminal too (--progress still wins); without it, progress is
        # shown where stderr goes, as lines when that is not a terminal (the trainer's None
        # would show nothing there: minutes of silence after "[3/4] training ...")
        progress = not quiet
    request = RunRequest(
        experiment=name, budget=budget, overrides=tuple(overrides), data=data, timesteps=timesteps,
        device=device, seed=seed, resume=resume, from_run=from_run, runs_dir=runs_dir, progress=progress,
    )
    # The run is the point, not its output: `exitcore run ... | head -1` goes on with its output
    # discarded once the pipe closes (it used to exit 0 before the run was even registered)
    with output_discarded_when_closed():
        recorded: list[tuple[str, Path]] = []
        try:
            _run(session, request, quiet, as_json, registered=lambda *run: recorded.append(run))
        except BaseException:  # interrupted (its status 130 or 1 is on its way) or failed: a script learns which
            if as_json and recorded:
                try:
                    _echo_record(*recorded[0])
                except (ExitcoreError, OSError) as exc:  # must not replace how the run ended
                    with contextlib.suppress(OSError):
                        click.echo(f"warning: --json: the run's record could not be printed: {exc}", err=True)
            raise
        if as_json and recorded:  # done: a JSON that cannot be written fails the command (exit 1), as show's
            _echo_record(*recorded[0])


def _echo_record(run_id: str, runs_dir: Path) -> None:
    """The run's registry record as ``show RUN --json`` prints it."""
    from exitcore.cli.output import echo_json
    from exitcore.registry import Registry
    from exitcore.runner import stop_signals_ignored

    with stop_signals_ignored():
        with Registry(runs_dir, read_only=True) as registry:
            record = registry.get(run_id, exact=True)
            shown = {**record.to_dict(), "run_path": str(registry.path_of(record))}
        echo_json(shown)


def _run(session, request, quiet: bool, as_json: bool = False, registered=None) -> None:
    from exitcore.registry import runs_dir_words
    from exitcore.runner import RunInterrupted, RunOutcome, execute, stop_signals_ignored

    try:
        # lazily: a resume continues the run's frozen configuration without the experiments file
        outcome = execute(request, session.experiments_file, session.host(), quiet=quiet, registered=registered)
    except RunInterrupted as stop:
        outcome, cause = RunOutcome(stop.run_id, stop.run_dir, "interrupted", {}, {}), stop.cause
    else:
        cause = None
    where = runs_dir_words(Path(outcome.run_dir).parent)  # the printed commands must find the run
    again = request.data_again()
    if outcome.status == "interrupted":
        from exitcore.ppo.trainer import CHECKPOINT_FILE

        if (Path(outcome.run_dir) / CHECKPOINT_FILE).exists():
            saved = f"its checkpoint is in {outcome.run_dir}"
        else:
            saved = f"it stopped before its first checkpoint, so a resume trains it from step 0 ({outcome.run_dir})"
        # stderr may be a file on the full disk that stopped the run; a second Ctrl-C must not
        # swallow the resume command
        with contextlib.suppress(OSError), stop_signals_ignored():
            click.echo(f"{'' if quiet else chr(10)}run {outcome.run_id} {cause or 'interrupted'}; {saved}\n"
                       f"continue it with: {command()} run --resume {outcome.run_id}{again}{where}", err=True)
        sys.exit(1 if cause else 130)  # 130: stopped by Ctrl-C, SIGTERM or SIGHUP
    if as_json:  # stdout holds the JSON alone; an unwritable stderr must not fail a finished run
        with contextlib.suppress(OSError):
            click.echo(_summary(outcome, where, quiet), err=True)
        return
    click.echo(_summary(outcome, where, quiet))


def _summary(outcome, where: str = "", quiet: bool = False) -> str:
    """The final summary on stdout; without -q a blank line sets it off the stages on stderr."""
    from exitcore.evaluation.metrics import format_table

    lines = [f"{'' if quiet else chr(10)}run {outcome.run_id} done -> {outcome.run_dir}"]
    if outcome.report:
        lines.append(outcome.report)
    else:
        table = outcome.results.get("table") or outcome.results.get("metrics")
        if table:
            lines.append(format_table(table))
        lines.extend(f"  {k}: {v}" for k, v in outcome.headline.items())
    lines.append(f"\nnext: {command()} report {outcome.run_id}{where}   |   "
                 f"{command()} compare {outcome.run_id} <other run or experiment>{where}")
    return "\n".join(lines)
