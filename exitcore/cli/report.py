"""``exitcore report RUN``: a finished run's results, RL against the baselines, as text or Markdown."""

from __future__ import annotations

import click

from exitcore.cli.options import runs_dir_option


@click.command()
@click.argument("run", metavar="RUN")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default=None,
              help="Output format (default: markdown when --out ends in .md, else text).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Write the report to FILE (atomically) instead of printing it; its folder must exist.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@runs_dir_option
def report(run: str, fmt: str | None, out: str | None, force: bool, runs_dir: str | None) -> None:
    """Render the results of run RUN: RL beside every baseline exit on the test split with
    bootstrap intervals, the probabilistic and deflated Sharpe ratios (with the number of
    trials and where it came from), the look-ahead audit's verdict, the in-sample (training)
    figures under their own label, and the run's configuration.

    RUN is a run id (or a unique prefix or suffix of one) in the runs directory, or a run directory. A run that
    is still running, failed or was interrupted is refused.

    Exit status: 0 rendered, 2 bad input (an unknown run), 4 the run failed or was interrupted (it
    has no final results), 75 it is still running (try again once it has finished).
    """
    from pathlib import Path

    from exitcore.evaluation.report import current_trials, render_report
    from exitcore.evaluation.rundir import find_run_dir

    from exitcore.atomic import check_new_file, write_text_atomic

    fmt = fmt or ("markdown" if out and out.lower().endswith(".md") else "text")
    if out is not None:  # before the work, as `data synth --out` does
        check_new_file(out, "--out", force)
    run_dir = find_run_dir(run, runs_dir)
    trials = current_trials(run_dir, runs_dir)
    text = render_report(run_dir, fmt, trials_now=trials)
    if trials is None and not _recorded(run_dir):  # its DSR's N may be far from today's: say so on stderr
        from exitcore.evaluation.report import not_recorded_words
        from exitcore.evaluation.rundir import read_run_info

        run_id = read_run_info(run_dir).get("run_id") or Path(run_dir).name
        click.echo(f"note: {not_recorded_words(run_id, run_dir)}", err=True)
    if out is None:
        click.echo(text, nl=False)
        return
    path = write_text_atomic(Path(out), text)
    click.echo(f"report written to {path}", err=True)


def _recorded(run_dir) -> bool:
    """Whether the registry of the directory holding ``run_dir`` records it."""
    from exitcore.evaluation.rundir import holder_record

    return holder_record(run_dir) is not None
