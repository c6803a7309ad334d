"""``exitcore experiments list|show|check``: what experiments.toml defines, resolved."""

from __future__ import annotations

import re

import click

from exitcore.cli.options import budget_option, experiments_option, set_option


@click.group()
@experiments_option
def experiments() -> None:
    """List, show and validate the experiments in experiments.toml."""


@experiments.command("list")
@experiments_option
@click.pass_obj
def list_(session) -> None:
    """List the experiments: name, what it extends, description.

    An experiment whose `extends` chain is broken (an unknown parent, a cycle) is listed with
    `!!` before its name and its error on stderr, and the command exits 2, as `show` and
    `check` do for it; `exitcore experiments check` validates everything else.
    """
    from exitcore.errors import ConfigError
    from exitcore.experiments import lineage

    file = session.experiments_file()
    if not file.names:
        click.echo(f"{file.path}: no experiments defined")
        return
    broken: dict[str, ConfigError] = {}
    for name in file.names:
        try:
            lineage(file, name)
        except ConfigError as exc:
            broken[name] = exc
    width = max(len(n) for n in file.names) + (3 if broken else 0)
    click.echo(f"{'name':<{width}}  {'extends':<16}  description")
    for name in file.names:
        table = file.experiments[name]
        desc = str(table.get("description", "")).strip().splitlines()
        shown = ("!! " if name in broken else "   " if broken else "") + name
        click.echo(f"{shown:<{width}}  {str(table.get('extends', '-')):<16}  {desc[0] if desc else ''}")
    if file.budgets:
        click.echo(f"\nbudgets (--budget): {', '.join(file.budgets)}")
    _say_layers(file)
    if broken:
        problems: dict[object, tuple[str, str]] = {}
        for exc in broken.values():
            for where, message in exc.problems:
                # a cycle is met from each of its members: report it once
                cycle = message.removeprefix("extends cycle: ")
                problems.setdefault(frozenset(cycle.split(" -> ")) if cycle != message else (where, message),
                                    (where, message))
        raise file.error(list(problems.values()))


def _say_layers(file) -> None:
    """Which experiments and budgets are the user's and which exitcore's shipped ones, and which
    shipped definitions the user's file replaces (its own win)."""
    if file.base is None:
        return
    own = [n for n in [*file.names, *file.budgets] if f"experiments.{n}" not in file.from_base
           and f"budgets.{n}" not in file.from_base]
    click.echo(f"from {file.path}: {', '.join(own) or 'no experiment or budget'}; the others are exitcore's "
               f"shipped ones ({file.base})")
    if file.replaced:
        click.echo(f"note: {file.path} replaces the shipped {', '.join(file.replaced)} (its definitions win)")
    own = _own_defaults(file)
    if own:  # they change the shipped experiments too (trial AB: `run v4` differed by the directory, unsaid)
        click.echo(f"note: {file.path}'s [defaults] ({', '.join(own)}) apply to the shipped experiments too, "
                   "where they do not set the key themselves")


def _short_budgets(file, names: list[str], host) -> list[str]:
    """A note per budget of the user's file that trains some experiment fewer than
    ``FEW_UPDATES`` PPO updates (trial AB: `budgets.tiny = { ppo = { total_timesteps = 1000 } }`
    passed the check, and each run of it trained one update of v4's 524,288 steps)."""
    from exitcore.experiments import resolve
    from exitcore.runner import FEW_UPDATES
    from exitcore.words import plural

    notes = []
    for budget in file.budgets:
        if f"budgets.{budget}" in file.from_base:  # exitcore's own: made to fit
            continue
        short = []
        for name in names:
            ppo = resolve(file, name, host, budget=budget).config.ppo
            per_update = ppo.n_envs * ppo.n_steps
            if ppo.trained_timesteps // per_update < FEW_UPDATES:
                short.append(f"{name}: {plural(ppo.trained_timesteps // per_update, 'update')} "
                             f"({ppo.trained_timesteps:,} steps for the {ppo.total_timesteps:,} asked)")
        if short:
            notes.append(f"budget {budget} trains fewer than {FEW_UPDATES} PPO updates (n_envs x n_steps steps each): "
                         f"{'; '.join(short)}; set a smaller ppo.n_steps or n_envs in it, or more total_timesteps")
    return notes


def _own_defaults(file) -> list[str]:
    """The keys the user's own ``[defaults]`` set (``costs.spread_pips``), when layered."""
    if file.base is None or not file.own_defaults:
        return []

    def leaves(node, prefix: str):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}"

    return list(leaves(file.own_defaults, ""))


@experiments.command("show")
@click.argument("name")
@budget_option
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@experiments_option
@click.pass_obj
def show(session, name: str, budget: str | None, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show experiment NAME fully resolved: defaults, extends, budget and --set applied,
    every component's parameters with their defaults filled in.

    NAME may be a unique prefix (`v4` for `v4_no_lookahead`).
    """
    from exitcore.experiments import resolve

    file = session.experiments_file()
    resolved = resolve(file, name, session.host(), budget=budget, overrides=overrides)
    if as_json:
        from exitcore.cli.output import echo_json

        # the hash the text's first line gives, and a run of this configuration records
        echo_json({**resolved.to_dict(), "config_hash": resolved.config_hash()})
    else:
        replaces = " (replacing the shipped definition)" if f"experiments.{resolved.name}" in file.replaced else ""
        click.echo(f"# {resolved.name} from {resolved.source}{replaces}, config hash {resolved.config_hash()}")
        own = _own_defaults(file)
        if own and f"experiments.{resolved.name}" in file.from_base:
            click.echo(f"# with the [defaults] of {file.path}: {', '.join(own)}")
        split = resolved.config.split
        if split.train_end or split.validation_end:  # printed below with their defaults filled in
            click.echo(f"# split by date ({', '.join(k for k in ('train_end', 'validation_end') if getattr(split, k))}): "
                       "the split fractions (train, validation, test) are not used")
        click.echo(resolved.to_toml(), nl=False)


@experiments.command("check")
@click.option("--build", is_flag=True,
              help="Also load each experiment's data, build its components, splits and evaluators, and step its "
                   "trades with every action the masks allow: catches a plugin that fails when built or "
                   "run (slower: it reads the data).")
@experiments_option
@click.pass_obj
def check(session, build: bool) -> None:
    """Validate every experiment (and every budget on top of it); exit 2 on any problem.

    Without --build the check resolves the configuration only (names, types, values); a
    plugin's build() and tensor functions first run in `exitcore run` or `audit`.
    """
    from exitcore.experiments import check_all

    file = session.experiments_file()
    ok, problems = check_all(file, session.host())
    if problems:
        raise file.error(problems)
    for note in _short_budgets(file, ok, session.host()):
        click.echo(f"note: {note}", err=True)
    if build:
        failed = [_located(name, why) for name in ok if (why := _build_and_step(file, name, session.host()))]
        if failed:
            raise file.error(_grouped(failed))
    over = f" (layered over exitcore's shipped {file.base})" if file.base is not None else ""
    click.echo(f"{file.path}{over}: {len(ok)} experiments OK ({', '.join(ok)})" + (", built and stepped" if build else ""))


#: a message that starts where its key was written: ``FILE:LINE: defaults.split.train_end: ...``
#: (a split's or data key's origin, :attr:`~exitcore.experiments.ResolvedExperiment.split_origins`;
#: ``:LINE`` where the file has it, :func:`exitcore.toml_lines.file_key`)
_WRITTEN_AT = re.compile(r"(?P<file>[^\n]+?\.toml)(?::\d+)?: (?P<path>(?:experiments|defaults|budgets)\.[\w.\[\]-]+): "
                         r"(?P<rest>.*)", re.S)


def _located(name: str, message: str) -> tuple[str, str]:
    """``(toml path, message)`` for a build failure of experiment ``name``: the path the
    message starts with when it names one inside the experiment, or the key (and its file)
    it names where that was written elsewhere (``[defaults]``, a parent), said to be the
    experiment's; else the experiment's own path."""
    head, sep, rest = message.partition(": ")
    path, _, label = head.partition(" (")  # "experiments.x.features[1] (feature 'f' from ...)"
    if sep and path.startswith(f"experiments.{name}") and " " not in path:
        return path, (f"{label[:-1]}: {rest}" if label.endswith(")") else rest)
    written = _WRITTEN_AT.match(message)
    if written:  # the file is the one the check's error names for the path
        own = written["path"].startswith(f"experiments.{name}.")
        return written["path"], written["rest"] + ("" if own else f" (experiment {name})")
    return f"experiments.{name}", message


_BROKE = re.compile(r"^(?P<rest>.*) \(experiment (?P<name>[^()\s]+)\)$", re.S)


def _grouped(failed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One problem per key and message: a ``[defaults]`` key that broke every experiment
    (``... (experiment v1)``, ``... (experiment v2)``) is said once, naming them all
    (``... (experiments v1, v2)``)."""
    order: list[tuple[str, str]] = []
    names: dict[tuple[str, str], list[str]] = {}
    for path, message in failed:
        match = _BROKE.match(message)
        key = (path, match["rest"] if match else message)
        if key not in names:
            order.append(key)
            names[key] = []
        if match:
            names[key].append(match["name"])
    return [(path, f"{rest} (experiment{'s' if len(names[path, rest]) > 1 else ''} {', '.join(names[path, rest])})"
             if names[path, rest] else rest) for path, rest in order]


def _no_trade(entry, table, n_bars: int) -> str:
    """The message for an entry strategy with no fillable trade, naming it and its plugin (the
    path first, for :func:`_located`)."""
    if table.n == 0:
        what = f"gives no trade on the experiment's data ({n_bars:,} bars)"
    else:
        what = (f"gives {table.n:,} trades on the experiment's data ({n_bars:,} bars) and none can be filled "
                f"({table.invalid_reason[0]})")
    return f"{entry.path} (entry strategy {entry.name!r} from {entry.component.origin}): {what}; check its parameters"


def _build_and_step(file, name: str, host) -> str | None:
    """Assemble experiment ``name`` on its data, step its trades with every action (every
    feature, mask, guard and reward term runs, and every guard sees every action the masks
    allow), cut its time splits and their trades as a run does (an empty split, too few trades),
    build its evaluators as a run builds them, check its walk-forward windows, and build its policy and pass the first observations through it; the error message, or None when all
    worked."""
    import torch

    from exitcore.assembly import assemble, split_pools
    from exitcore.data.pipeline import load_bars
    from exitcore.env.sweep import step_every_action
    from exitcore.errors import ExitcoreError
    from exitcore.experiments import resolve

    click.echo(f"  {name}: building ...", err=True)
    try:
        resolved = resolve(file, name, host)
        bars = load_bars(resolved.config.data, host, where=resolved.data_where,
                         origins=resolved.data_origins)
        assembled = assemble(resolved, bars)
        valid = torch.nonzero(assembled.table.valid).flatten()
        if valid.numel() == 0:
            return _no_trade(resolved.entry, assembled.table, len(bars))
        split_pools(assembled)  # the time splits and their trades, as run cuts them (an empty split, too few trades)
        if resolved.config.eval.walk_forward > 0:  # as run checks it before training
            from exitcore.evaluation.evaluate import walk_forward_plan

            walk_forward_plan(assembled, resolved.config.eval.walk_forward)
        env = assembled.make_env(valid, auto_reset=False)
        obs, mask = env.reset(seed=0)
        step_every_action(env, mask)  # on every trade: a run checks only the first few before it starts
        _build_evaluators(resolved, assembled)
    except ExitcoreError as exc:
        return str(exc)
    return _policy_problem(resolved, obs, f"experiments.{name}.ppo.policy")


def _build_evaluators(resolved, assembled) -> None:
    """Build every evaluator with the context a run gives them (``assembled.ctx``), so one whose
    build fails is reported here, not after a run has trained; a failure names the evaluator,
    its plugin and its place in the experiment."""
    from exitcore.errors import PluginError

    for rc in resolved.evaluators:
        fn = rc.build(assembled.ctx)
        if not callable(fn):
            raise PluginError(f"{rc.path}: evaluator {rc.name!r} from {rc.component.origin} returned "
                              f"{type(fn).__name__} from build, expected a function evaluator(ledger, context)")


def _policy_problem(resolved, obs, path: str) -> str | None:
    """:func:`~exitcore.ppo.policy.check_policy_on` as a problem at ``path``, or None."""
    from exitcore.errors import ExitcoreError
    from exitcore.ppo.policy import check_policy_on

    try:
        check_policy_on(resolved, obs)
    except ExitcoreError as exc:
        return f"{path}: {exc}"
    return None
