"""``exitcore compare A B [...]``: finished runs side by side."""

from __future__ import annotations

import sys

import click

from exitcore.cli.options import experiments_option, runs_dir_option


@click.command()
@click.argument("refs", nargs=-1, required=True, metavar="RUN_OR_EXPERIMENT RUN_OR_EXPERIMENT...")
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (metrics per run, warnings, config differences).")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print CSV: one row per metric, one column per run (warnings go to stderr).")
@experiments_option
@click.pass_obj
def compare(session, refs, runs_dir, as_json, as_csv) -> None:
    """Compare two or more runs: out-of-sample return, win rate, profit factor, Sharpe, trade length,
    quick exits, actions, blocked rate, drawdown, the look-ahead audit verdict, and every
    configuration value that differs.

    Each argument is a run id (or a unique prefix or suffix of one), the path of a run directory (read
    by the registry of the directory holding it, or alone where none records it), or an experiment
    name, meaning its
    latest finished run (`exitcore compare v3 v4`); after the first argument, its latest on
    the same data as the first run, where it has one. Run ids and experiment names are looked
    up in --runs-dir, whatever run directories are given beside them. Runs on different data or different
    splits are flagged: their numbers are not comparable; so are runs that manage different
    trades (other entry strategies, or other trade counts). A run that is still running,
    failed or was interrupted is refused.

    Exit status: 0 compared (warnings do not change it), 2 bad input (an unknown run or
    experiment), 4 a run failed or was interrupted (no final results), 75 a run is still running
    (try again once it has finished).
    """
    from exitcore import compare as cmp
    from exitcore.errors import ExitcoreError
    from exitcore.evaluation.rundir import check_path_ref, is_run_dir
    from exitcore.registry import Registry, resolve_runs_dir

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    if len(refs) < 2:
        raise click.UsageError("give at least two runs or experiments to compare")
    try:
        file = session.experiments_file()
    except ExitcoreError:
        file = None  # run ids alone need no experiments file
    for ref in refs:  # a path that is no run directory is named as such, not looked up as an id
        check_path_ref(ref)
    # Run directories are each read by the registry holding them (or alone, as `report DIR`);
    # run ids and experiment names are answered by --runs-dir's registry ($EXITCORE_RUNS_DIR,
    # ./runs) whatever directories are given beside them. Paths alone need no registry: one
    # given by --runs-dir is only asked about copies it may record.
    directory = resolve_runs_dir(runs_dir)
    if all(is_run_dir(ref) for ref in refs) and (runs_dir is None or not Registry.exists(directory)):
        views = cmp.collect(list(refs), None, file)
    else:
        with Registry(directory, read_only=True) as registry:
            views = cmp.collect(list(refs), registry, file)
    if as_json:
        from exitcore.cli.output import echo_json

        echo_json(cmp.as_json(views))
    elif as_csv:
        click.echo(cmp.as_csv(views), nl=False)
        _warn(views)  # CSV has no place for them, and they say the numbers are not comparable
    else:
        click.echo(cmp.as_table(views))
        if not _stdout_is_terminal():  # the table (which opens with them) went to a file or a pipe
            _warn(views)


def _warn(views) -> None:
    """The comparison's warnings (different data, splits, ...) as ``warning:`` lines on stderr."""
    from exitcore import compare as cmp

    for note in cmp.warnings(views):
        click.echo(f"warning: {note}", err=True)


def _stdout_is_terminal() -> bool:
    # sys.stdout as it is now (CliRunner swaps it), not the process's original stream
    return bool(getattr(sys.stdout, "isatty", lambda: False)())
