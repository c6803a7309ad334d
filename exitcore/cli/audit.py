"""``exitcore audit NAME|RUN``: the look-ahead audit of an experiment or of a finished run."""

from __future__ import annotations

import click

from exitcore.cli.options import budget_option, device_option, experiments_option, runs_dir_option, set_option
from exitcore.cli.streams import terminal_progress
from exitcore.params import MAX_SEED

# the poisoning modes, repeated here so `--help` does not import torch;
# tests/evaluation/test_audit.py checks they equal exitcore.env.causality.POISON_MODES
AUDIT_MODES = ("truncate", "nan", "huge", "random_walk")


@click.command()
@click.argument("target", metavar="NAME|RUN")
@budget_option
@set_option
@click.option("--data", "data_spec", default=None, metavar="SPEC",
              help="Audit an experiment on other data (a path, or SOURCE:PATH; see `exitcore data --help`); for a "
                   "finished run, where its bars are now (its data file moved): they must be the bars it used.")
@click.option("--decisions", type=click.IntRange(min=1), default=None, metavar="N",
              help="Decisions (and entries) to sample, spread over the split (default: eval.audit_decisions).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(AUDIT_MODES),
              help="Poisoning to apply after each decision (repeatable; default: all four); nan and huge "
                   "also poison the bars before each feature's lookback.")
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default="test", show_default=True,
              help="Split whose trades are sampled.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help="Seed of the sampling and of a random-init policy.")
@device_option("cpu", "Torch device to assemble the experiment on.")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the report (no stages on stderr).")
@experiments_option
@click.pass_obj
def audit(session, target: str, budget: str | None, overrides: tuple[str, ...], data_spec: str | None,
          decisions: int | None, modes: tuple[str, ...], split: str, seed: int, device: str,
          runs_dir: str | None, as_json: bool, quiet: bool) -> None:
    """Audit experiment NAME or run RUN for look-ahead.

    For a sample of decisions, the observation, the action mask, every guard's decision and the
    policy's action are recomputed with the bars after the decision truncated, NaN, huge and
    replaced by a random walk (every component rebuilt); the entry strategy is re-run with the
    bars after each signal truncated and poisoned (and must keep no trades or per-bar data
    between runs), and every fill is checked to be the next bar's open. Each feature is also recomputed with the bars before its declared lookback NaN
    and huge (the nan and huge modes): one that reads further back than it declares shortens
    the purge gap between the splits and fails too. Any difference is named with the first
    offending decision. For a run,
    its trained policy is used and its out-of-sample results are checked for plausibility
    (e.g. a win rate above 80 % with trades under 5 bars); a run whose entry, feature, guard,
    mask or policy plugins' code changed since it started is refused (it would judge today's
    code, not the run's).

    NAME is an experiment of experiments.toml (a unique prefix works; a random-init policy is
    used). RUN is a run id (or a unique prefix or suffix of one) in the runs directory, or a run directory.

    Exit status: 0 PASS, 1 FAIL (a leak was found), 3 SUSPECT (no leak found, implausible
    results), 2 bad input, 4 the run failed or was interrupted (no trained policy to audit), 75
    it is still running (try again once it has finished).
    """
    from exitcore.errors import ConfigError, ExitcoreError
    from exitcore.evaluation.rundir import find_run_dir, is_run_dir
    from exitcore.registry import RunNotDone

    from exitcore.device import select_device

    ctx = click.get_current_context()
    device = str(select_device(device))  # a bad or unavailable device is bad input (2), not a FAIL (1)
    from exitcore.runner import Stages

    modes = tuple(dict.fromkeys(modes)) or AUDIT_MODES
    # its stages on stderr, as `run` announces its own: the audit takes tens of seconds
    stages = Stages(total=3, quiet=quiet)
    kwargs = dict(device=device, split=split, n_decisions=decisions, modes=modes, seed=seed, stage=stages.stage)
    resolved = None
    if not is_run_dir(target):
        try:
            file = session.experiments_file()
            name = file.resolve_name(target)
        except ExitcoreError as exc:
            name, experiment_error = None, exc
        if name is not None:
            from exitcore.experiments import resolve

            resolved = resolve(file, name, session.host(), budget=budget, overrides=overrides)
    if resolved is not None:
        from exitcore.evaluation.audit import audit_experiment

        data = None
        if data_spec:
            from exitcore.data.pipeline import data_config_from_spec

            data = data_config_from_spec(data_spec, session.host(), base=resolved.config.data)
        with terminal_progress(quiet):
            report = audit_experiment(resolved, session.host(), data=data, **kwargs)
    else:
        if budget or overrides:
            raise ConfigError([("", "--budget and --set apply to an experiment, not to a finished run (--data reads a "
                                    "run's bars from another place)")])
        try:
            run_dir = find_run_dir(target, runs_dir)
        except ExitcoreError as exc:
            if is_run_dir(target) or isinstance(exc, RunNotDone):  # it is a run: the experiment guess is noise
                raise
            raise type(exc)(f"{target!r} is not an experiment ({experiment_error}) and not a run: {exc}") from exc
        from exitcore.evaluation.audit import audit_run

        with terminal_progress(quiet):
            report = audit_run(run_dir, session.host(), data_spec=data_spec, **kwargs)
        _note_other_verdicts(run_dir)
    if as_json:
        from exitcore.cli.output import echo_json

        echo_json(json_times(report.to_dict()))
    else:
        click.echo(report.format())
    ctx.exit(report.exit_code)


def json_times(report: dict) -> dict:
    """An audit report (``AuditReport.to_dict()``) for ``--json``: each finding's ``time`` (also
    ``culprits[].first``'s) in the command line's one time format, ``iso_time``'s. The report
    results.json records keeps the format it has always had."""
    from exitcore.evaluation.jsonable import iso_time

    def finding(f: dict) -> dict:
        return {**f, "time": iso_time(f["time"])}

    return {**report, "findings": [finding(f) for f in report["findings"]],
            "culprits": [{**c, "first": finding(c["first"])} for c in report["culprits"]]}


def _note_other_verdicts(run_dir) -> None:
    """Say on stderr when the run's recorded verdict came from an evaluator other than the
    look-ahead audit (a plugin's check): this command re-runs the look-ahead audit only, so its
    PASS and exit status 0 say nothing about that verdict."""
    from exitcore.errors import ExitcoreError
    from exitcore.evaluation.rundir import read_results
    from exitcore.evaluation.verdicts import LOOKAHEAD, describe_verdict

    try:
        results = read_results(run_dir)
    except ExitcoreError:  # audit_run read it already; a damaged file was reported there
        return
    verdict, sources = results.get("audit_verdict"), results.get("audit_verdict_from") or []
    if verdict in ("FAIL", "SUSPECT") and any(s != LOOKAHEAD for s in sources):
        click.echo(f"note: the run's recorded {describe_verdict(verdict, sources)}; this command re-checks "
                   "look-ahead only (gate on `exitcore show RUN --json`: metrics.audit_verdict)", err=True)
