"""Options shared by several subcommands (one definition each)."""

from __future__ import annotations

import click

budget_option = click.option(
    "--budget",
    default=None,
    metavar="NAME",
    help="Apply a named budget from experiments.toml (e.g. `quick`, a short CPU run).",
)

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a value, validated like the file (repeatable): --set ppo.n_envs=64 "
    "--set guards[0].params.min_profit=0.002",
)

runs_dir_option = click.option(
    "--runs-dir",
    "runs_dir",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Directory of runs and their registry (default: $EXITCORE_RUNS_DIR, else ./runs).",
)
