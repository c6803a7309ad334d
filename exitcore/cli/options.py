"""Options shared by several subcommands (one definition each)."""

from __future__ import annotations

from typing import Any

import click

budget_option = click.option(
    "--budget",
    default=None,
    metavar="NAME",
    help="Apply a named budget from experiments.toml: the project's are `quick` (minutes on a CPU) and `smoke` "
    "(seconds: does it run?); `exitcore experiments list` lists a file's budgets.",
)

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a value, validated like the file (repeatable): --set ppo.n_envs=64 "
    "--set guards[0].params.min_profit=0.002",
)

def check_experiments_file(value: str) -> None:
    """Refuse an ``--experiments FILE`` that does not exist, even where the command would not
    read it (``data inspect SOURCE``): it is most often ``--experiment NAME`` mistyped."""
    from pathlib import Path

    from exitcore.errors import ExitcoreError

    if Path(value).is_file():
        return
    hint = ""
    try:
        from exitcore.experiments import load_experiments

        load_experiments(None).resolve_name(value)  # raises unless an experiment (or a prefix of one)
        hint = f"; did you mean --experiment {value}?"
    except ExitcoreError:
        pass  # not an experiment of the default file either
    raise ExitcoreError(f"{value}: experiments file not found (--experiments FILE){hint}")


def _experiments_file(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--experiments FILE`` after the subcommand means what it means before it."""
    if value is not None:
        check_experiments_file(value)
        ctx.obj.experiments_path = value  # the Session the group made


experiments_option = click.option(
    "--experiments",
    type=click.Path(dir_okay=False),
    default=None,
    expose_value=False,
    callback=_experiments_file,
    metavar="FILE",
    help="Experiments file (as `exitcore --experiments FILE`; default: $EXITCORE_EXPERIMENTS, else "
    "./experiments.toml; layered over exitcore's shipped experiments: v1-v4 and the budgets stay available).",
)


def _device_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A --device value checked at the option, so a typo is reported there (no torch import)."""
    import re

    from exitcore.device import DEVICE_PATTERN, DEVICE_WORDS

    if value is not None and not re.fullmatch(DEVICE_PATTERN, value):
        raise click.BadParameter(f"expected {DEVICE_WORDS}, got {value!r}")
    return value


def device_option(default: str | None, help: str) -> Any:
    """``--device auto|cpu|cuda[:N]`` (checked at the option)."""
    return click.option("--device", default=default, show_default=default is not None, metavar="auto|cpu|cuda[:N]",
                        callback=_device_name, help=help)


runs_dir_option = click.option(
    "--runs-dir",
    "runs_dir",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Directory of runs and their registry (default: $EXITCORE_RUNS_DIR, else ./runs).",
)
