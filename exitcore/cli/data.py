"""``exitcore data inspect|synth``: look at a data set, or write a synthetic one.

Heavy imports (pandas, torch) happen inside the commands, so ``exitcore --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from exitcore.cli.options import budget_option, experiments_option, set_option
from exitcore.cli.streams import terminal_progress


@click.group()
@experiments_option
def data() -> None:
    """Inspect market data and generate synthetic data sets.

    SOURCE arguments take the --data syntax: [SOURCE:]PATH[?KEY=VALUE&...], e.g.
    `../shared/data/eurusd_m15_dukascopy_2006_2010`, `synthetic?years=5&seed=1` or
    `histdata:DIR/*EURUSD*.zip?timezone=America/New_York`. See docs/data.md.
    """


@data.command("inspect")
@click.argument("source", required=False)
@click.option("--experiment", "-e", "experiment", metavar="NAME",
              help="Also build the experiment's trades and episodes and count them per split "
              "(SOURCE defaults to the experiment's own data).")
@click.option("--timeframe", metavar="TF", help="Resample to this bar length, e.g. 15min, 1h, 1D (default: the experiment's, else 15min).")
@click.option("--max-gap-bars", type=click.IntRange(min=1), default=None,
              help="More missing bars than this make a hole in the data (a weekend, an outage), which trades "
              "are held across or closed at (env.data_holes) (default: the experiment's, else 4).")
@budget_option
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@experiments_option
@click.pass_obj
def inspect(
    session: Any,
    source: str | None,
    experiment: str | None,
    timeframe: str | None,
    max_gap_bars: int | None,
    budget: str | None,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Load SOURCE, validate it and describe it: bars, span, gaps, findings.

    With --experiment, also run the experiment's entry strategy and report the trades in each
    split (valid = fillable, usable = still open after the entry bar, the ones the agent
    manages). Exits with status 2 on invalid data, or when a split has fewer usable trades
    than training needs (ppo.n_envs in train, 1 elsewhere).
    """
    import attrs

    from exitcore.config import DataConfig
    from exitcore.data.inspect import describe, render
    from exitcore.data.pipeline import data_config_from_spec
    from exitcore.data.timeframes import canonical_timeframe
    from exitcore.errors import ExitcoreError

    host = session.host()
    resolved = None
    if experiment:
        from exitcore.experiments import resolve

        resolved = resolve(session.experiments_file(), experiment, host, budget=budget, overrides=overrides)
        cfg = resolved.config.data
    elif budget or overrides:
        raise click.UsageError("--budget and --set need --experiment")
    else:
        cfg = DataConfig()
    if source:
        cfg = data_config_from_spec(source, host, base=cfg, where="SOURCE")
    elif not experiment:
        raise click.UsageError("give a SOURCE, an --experiment, or both")
    if timeframe:
        try:
            timeframe = canonical_timeframe(timeframe)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--timeframe") from None
        cfg = attrs.evolve(cfg, timeframe=timeframe)
    if max_gap_bars:
        cfg = attrs.evolve(cfg, max_gap_bars=max_gap_bars)
    if resolved is not None:
        resolved = attrs.evolve(resolved, config=attrs.evolve(resolved.config, data=cfg))
    # a resampling problem names what set the bar length: --timeframe, or the experiment's
    from_experiment = resolved is not None and not source  # else named by SOURCE
    origins = resolved.data_origins if from_experiment else None
    where = "--timeframe" if timeframe or not experiment else (origins or {}).get("timeframe", "data.timeframe")
    if not timeframe and not experiment:
        where += f" (default {cfg.timeframe})"
    with terminal_progress():
        data_where = resolved.data_where if from_experiment else "data"
        report = describe(cfg, host, resolved, timeframe_where=where, data_where=data_where,
                          spec_where="SOURCE" if source else "", origins=origins)
    if as_json:
        from exitcore.cli.output import echo_json

        echo_json(report.to_dict())
    else:
        click.echo(render(report))
    if report.trade_problem:
        raise ExitcoreError(report.trade_problem)


@data.command("synth")
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False),
              help="File to write: .csv, .csv.gz or .parquet (written atomically).")
@click.option("--years", type=float, default=3.0, show_default=True, help="Length of the series in years.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed (same seed, same bars).")
@click.option("--start", default="2015-01-05", show_default=True, help="First day (UTC, YYYY-MM-DD).")
@click.option("--symbol", default="EURUSD", show_default=True,
              help="Symbol of the series. Reading the file back takes the symbol from its name "
                   "(e.g. gbpusd_synth.csv), so put it there.")
@click.option("--timeframe", default="15min", show_default=True, help="Bar length, e.g. 1min, 15min, 1h, 1D.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def synth(out: str, years: float, seed: int, start: str, symbol: str, timeframe: str, force: bool) -> None:
    """Write a seeded synthetic EURUSD-like data set (the generator `run` uses by default).

    The file has the columns time (ISO 8601, UTC), open, high, low, close, volume and loads
    back with `--data FILE` (the csv source recognises it).
    """
    from exitcore.data.synth_io import write_synthetic

    path, bars = write_synthetic(
        out, {"years": years, "seed": seed, "start": start, "symbol": symbol, "timeframe": timeframe}, force=force
    )
    click.echo(f"wrote {len(bars):,} {bars.timeframe} bars ({bars.start:%Y-%m-%d %H:%M} -> {bars.end:%Y-%m-%d %H:%M} UTC) to {path}")
    from exitcore.data.formats.common import is_currency_pair, symbol_of

    if symbol_of([str(path)], "", str(path)) != symbol.upper():
        # only currency pairs (EURUSD, XAUUSD) are recognised in file names
        rename = f"rename it (e.g. {symbol.lower()}_{Path(path).name}) or " if is_currency_pair(symbol) else ""
        click.echo(f"note: the file name does not give the symbol {symbol.upper()}, so it reads back without one; "
                   f"{rename}load it with --data '{path}?symbol={symbol.upper()}'", err=True)
