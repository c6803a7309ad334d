"""``exitcore experiments list|show|check``: what experiments.toml defines, resolved."""

from __future__ import annotations

import json

import click

from exitcore.cli.options import budget_option, set_option


@click.group()
def experiments() -> None:
    """List, show and validate the experiments in experiments.toml."""


@experiments.command("list")
@click.pass_obj
def list_(session) -> None:
    """List the experiments: name, what it extends, description."""
    file = session.experiments_file()
    if not file.names:
        click.echo(f"{file.path}: no experiments defined")
        return
    width = max(len(n) for n in file.names)
    click.echo(f"{'name':<{width}}  {'extends':<16}  description")
    for name in file.names:
        table = file.experiments[name]
        desc = str(table.get("description", "")).strip().splitlines()
        click.echo(f"{name:<{width}}  {str(table.get('extends', '-')):<16}  {desc[0] if desc else ''}")
    if file.budgets:
        click.echo(f"\nbudgets (--budget): {', '.join(file.budgets)}")


@experiments.command("show")
@click.argument("name")
@budget_option
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@click.pass_obj
def show(session, name: str, budget: str | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show experiment NAME fully resolved: defaults, extends, budget and --set applied,
    every component's parameters with their defaults filled in.

    NAME may be a unique prefix (`v4` for `v4_no_lookahead`).
    """
    from exitcore.experiments import resolve

    resolved = resolve(session.experiments_file(), name, session.host(), budget=budget, overrides=overrides)
    if as_json:
        click.echo(json.dumps(resolved.to_dict(), indent=2))
    else:
        click.echo(f"# {resolved.name} from {resolved.source}, config hash {resolved.config_hash()}")
        click.echo(resolved.to_toml(), nl=False)


@experiments.command("check")
@click.pass_obj
def check(session) -> None:
    """Validate every experiment (and every budget on top of it); exit 2 on any problem."""
    from exitcore.errors import ConfigError
    from exitcore.experiments import check_all

    file = session.experiments_file()
    ok, problems = check_all(file, session.host())
    if problems:
        raise ConfigError(problems, str(file.path))
    click.echo(f"{file.path}: {len(ok)} experiments OK ({', '.join(ok)})")
