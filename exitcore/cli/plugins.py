"""``exitcore plugins``: every installed plugin and what it registers."""

from __future__ import annotations

import click

from exitcore.cli.options import experiments_option


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@experiments_option  # accepted after any command, as documented; plugins do not depend on it
@click.pass_obj
def plugins(session, as_json: bool) -> None:
    """List installed plugins: distribution, version, and the components each registers,
    with their parameters and defaults.

    Problems that stop every command that builds experiments (a component registered twice,
    a raising register_* hook) are listed after the plugins, and the exit status is then 2.
    """
    from exitcore.plugins import PluginHost

    host = PluginHost.create(strict=False)
    infos = host.plugin_infos()
    if as_json:
        data = [
            {
                "name": i.name,
                "distribution": i.distribution,
                "version": i.version,
                "hooks": list(i.hooks),
                "components": [
                    {"kind": c.kind.value, "name": c.name, "description": c.description, "params": _params(c)}
                    for c in i.components
                ],
            }
            for i in infos
        ]
        from exitcore.cli.output import echo_json

        echo_json(data, default=str)  # a default JSON has no type for: its text
        _refuse_on_problems(host)
        return
    for info in infos:
        dist = f"{info.distribution} {info.version}".strip() or "(not an installed distribution)"
        click.echo(f"{info.name}  [{dist}]")
        by_kind: dict[str, list] = {}
        for comp in info.components:
            by_kind.setdefault(comp.kind.plural, []).append(comp)
        for kind, comps in by_kind.items():
            click.echo(f"  {kind}:")
            for comp in comps:
                click.echo(f"    {comp.name:<24} {comp.description}")
                params = _params(comp)
                if params:
                    click.echo(f"    {'':<24} params: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))
        if not info.hooks:  # warned about on stderr, with the module file that was imported
            click.echo("  implements no exitcore hooks (see the warning)")
        other = [h for h in info.hooks if not h.startswith("register_") or h == "register_commands"]
        if other:
            click.echo(f"  hooks: {', '.join(other)}")
    if not infos:
        click.echo("no plugins installed")
    _refuse_on_problems(host)


def _refuse_on_problems(host) -> None:
    """After the listing: each problem on stderr, then exit 2 (the commands that load plugins refuse to start)."""
    from exitcore.errors import ExitcoreError

    for problem in host.problems:
        click.echo(f"problem: {problem}", err=True)
    if host.problems:
        from exitcore.words import plural

        raise ExitcoreError(f"{plural(len(host.problems), 'plugin problem')}: the commands that build experiments (run, "
                            "audit, experiments show and check, data inspect) refuse to start until they are fixed")


def _params(component) -> dict:
    """The component's parameters and their defaults (``"(required)"`` without one, or with a
    default its own validator refuses: HistData's ``timezone = ""`` must be given)."""
    import attrs

    if component.params is None or not attrs.has(component.params):
        return {}
    out = {}
    for field in attrs.fields(component.params):
        if field.default is attrs.NOTHING or _refused_default(field):
            out[field.name] = "(required)"
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            out[field.name] = "(computed)" if field.default.takes_self else field.default.factory()
        else:
            out[field.name] = field.default
    return out


def _refused_default(field) -> bool:
    """Whether ``field``'s plain default fails its own validator (a placeholder for "give it")."""
    import attrs

    if field.validator is None or isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
        return False
    try:
        value = field.converter(field.default) if callable(field.converter) else field.default
        field.validator(None, field, value)
    except (ValueError, TypeError):  # a refusal (FieldError is a ValueError): the default cannot stand
        return True
    except Exception:  # noqa: BLE001 - a validator that reads the instance: cannot tell without one
        return False
    return False
