"""``exitcore plugins``: every installed plugin and what it registers."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def plugins(session, as_json: bool) -> None:
    """List installed plugins: distribution, version, and the components each registers."""
    infos = session.host().plugin_infos()
    if as_json:
        data = [
            {
                "name": i.name,
                "distribution": i.distribution,
                "version": i.version,
                "hooks": list(i.hooks),
                "components": [
                    {"kind": c.kind.value, "name": c.name, "description": c.description} for c in i.components
                ],
            }
            for i in infos
        ]
        click.echo(json.dumps(data, indent=2))
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
        other = [h for h in info.hooks if not h.startswith("register_") or h == "register_commands"]
        if other:
            click.echo(f"  hooks: {', '.join(other)}")
    if not infos:
        click.echo("no plugins installed")
