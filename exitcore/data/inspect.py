"""What ``exitcore data inspect`` reports: the data, its gaps and findings, and per split the trades.

:func:`describe` does the work (load, validate, resample, and with an experiment: entry
strategy, episode tensors, splits) and returns a :class:`Report`; :func:`render` prints it.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pandas as pd

from exitcore.config import DATA_HOLES_WORDS, DataConfig, DataOrigins
from exitcore.data.bars import Finding
from exitcore.data.validate import GapReport


@attrs.frozen
class SplitReport:
    """One split: its bars (``start``, ``end``: the first and last bar's open) and the trades
    wholly inside it."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    n_bars: int
    trades: int
    usable: int


@attrs.frozen
class Report:
    """Everything ``data inspect`` prints (``to_dict`` for ``--json``). The fields from
    ``experiment`` on describe the experiment's trades; ``experiment`` is ``""`` when none was
    given, and they keep their empty values."""

    source: str
    symbol: str
    pip_size: float
    file_timeframe: str
    file_bars: int
    timeframe: str
    bars: int
    start: pd.Timestamp  #: the first bar's open
    end: pd.Timestamp  #: the last bar's open
    days: float
    gaps: GapReport
    findings: tuple[Finding, ...]
    experiment: str = ""
    entry_name: str = ""
    entry_params: dict[str, Any] = attrs.field(factory=dict)
    signals: int = 0
    valid: int = 0
    invalid: dict[str, int] = attrs.field(factory=dict)
    entry_bar_exits: int = 0
    data_holes: str = ""  #: env.data_holes: whether trades are held across holes or closed before them
    lookback: int = 0
    purge: int = 0
    min_purge: int = 0  #: max_bars + feature lookback
    splits: tuple[SplitReport, ...] = ()
    minimum: dict[str, int] = attrs.field(factory=dict)
    trade_findings: tuple[Finding, ...] = ()
    trade_problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``data inspect --json`` (docs/json.md): times as :func:`~exitcore.evaluation.jsonable.iso_time`
        writes them, ``entry`` as ``{name, params}``; without an experiment every field from
        ``experiment`` on is null (not computed), not an empty value that would read as "none"."""
        from exitcore.evaluation.jsonable import iso_time

        out = {name: getattr(self, name) for name in _DATA_FIELDS}
        out.update(start=iso_time(self.start), end=iso_time(self.end), findings=[str(f) for f in self.findings],
                   gaps={**attrs.asdict(self.gaps), "longest_from": iso_time(self.gaps.longest_from),
                         "longest_to": iso_time(self.gaps.longest_to)})
        if not self.experiment:
            return {**out, **dict.fromkeys(_TRADE_FIELDS)}
        trades = {name: getattr(self, name, None) for name in _TRADE_FIELDS}
        trades.update(
            entry={"name": self.entry_name, "params": dict(self.entry_params)},
            splits=[{**attrs.asdict(s), "start": iso_time(s.start), "end": iso_time(s.end)} for s in self.splits],
            trade_findings=[str(f) for f in self.trade_findings],
        )
        return {**out, **trades}


#: the keys of ``data inspect --json``, in order: the data's, then (from ``experiment`` on) the trades'
_DATA_FIELDS = ("source", "symbol", "pip_size", "file_timeframe", "file_bars", "timeframe", "bars", "start", "end",
                "days", "gaps", "findings")
_TRADE_FIELDS = ("experiment", "entry", "signals", "valid", "invalid", "entry_bar_exits", "data_holes", "lookback", "purge",
                 "min_purge", "splits", "minimum", "trade_findings", "trade_problem")


def describe(data: DataConfig, host: Any, resolved: Any = None, timeframe_where: str = "data.timeframe",
             data_where: str = "data", spec_where: str = "", origins: DataOrigins | None = None) -> Report:
    """Load ``data`` and, with a resolved experiment, build its trades and splits.

    ``timeframe_where`` names ``data.timeframe`` in messages (``--timeframe`` on the command line);
    ``data_where`` the data section (``experiments.NAME.data``); ``spec_where`` the data spec
    ``data`` was made from (``SOURCE``), if any; ``origins`` where the experiment's data keys
    were written (``ResolvedExperiment.data_origins``).
    """
    from exitcore.data.pipeline import load_source_bars
    from exitcore.data.resample import resample
    from exitcore.data.validate import gap_report

    raw = load_source_bars(data, host, data_where, spec_where, origins)
    bars = resample(raw, data.timeframe, where=timeframe_where)
    if data.pip_size > 0:
        bars = attrs.evolve(bars, pip_size=data.pip_size)
    report = Report(
        source=bars.source,
        symbol=bars.symbol,
        pip_size=bars.pip_size,
        file_timeframe=raw.timeframe,
        file_bars=len(raw),
        timeframe=bars.timeframe,
        bars=len(bars),
        start=bars.start,
        end=bars.end,
        days=(bars.end - bars.start).total_seconds() / 86400,
        gaps=gap_report(bars, data.max_gap_bars),
        findings=bars.findings,
    )
    if resolved is None:
        return report
    return _with_trades(report, bars, resolved)


def _with_trades(report: Report, bars: Any, resolved: Any) -> Report:
    from exitcore.assembly import assemble
    from exitcore.data.splits import assign_trades, make_splits, minimum_trades, purge_gap, require_trades
    from exitcore.errors import DataError

    cfg = resolved.config
    asm = assemble(resolved, bars)
    table = asm.table
    lookback = asm.components.lookback
    min_purge = cfg.env.max_bars + lookback
    splits = make_splits(bars.frame.index, cfg.split, min_purge, origins=resolved.split_origins)
    per_split = assign_trades(splits, table, lookback)
    usable = table.decidable.cpu().numpy()
    valid = table.valid.cpu().numpy()
    reasons: dict[str, int] = {}
    for r in np.asarray(table.invalid_reason)[~valid]:
        reasons[str(r)] = reasons.get(str(r), 0) + 1
    idx = bars.frame.index
    split_reports = tuple(
        SplitReport(
            name=sp.name,
            start=idx[sp.start_bar],
            end=idx[sp.end_bar - 1],
            n_bars=sp.n_bars,
            trades=len(per_split[sp.name]),
            usable=int(usable[per_split[sp.name]].sum()),
        )
        for sp in splits
    )
    minimum, why = minimum_trades(cfg, [sp.name for sp in splits])
    problem = ""
    try:
        require_trades({s.name: s.usable for s in split_reports}, minimum, why, ppo=cfg.ppo)
    except DataError as exc:
        problem = str(exc)
    return attrs.evolve(
        report,
        experiment=resolved.name,
        entry_name=resolved.entry.name,
        entry_params=dict(resolved.config.entry.params),
        signals=len(asm.trades),
        valid=int(valid.sum()),
        invalid=reasons,
        entry_bar_exits=int((valid & ~usable).sum()),
        data_holes=cfg.env.data_holes,
        lookback=lookback,
        purge=purge_gap(cfg.split, min_purge, origins=resolved.split_origins),
        min_purge=min_purge,
        splits=split_reports,
        minimum=minimum,
        trade_findings=tuple(getattr(asm.trades, "findings", ())),
        trade_problem=problem,
    )


def render(r: Report) -> str:
    """The report as text."""
    lines = [
        f"source       {r.source}",
        f"symbol       {r.symbol or '-'}   pip size {r.pip_size:g}",
        f"file bars    {r.file_bars:,} at {r.file_timeframe}",
        f"bars         {r.bars:,} at {r.timeframe}",
        f"span         {r.start:%Y-%m-%d %H:%M} -> {r.end:%Y-%m-%d %H:%M} UTC ({r.days:,.1f} days)",
        f"gaps         {r.gaps.describe()}",
    ]
    if r.findings:
        lines.append(f"findings     {len(r.findings)}")
        lines.extend(f"  {f}" for f in r.findings)
    else:
        lines.append("findings     none")
    if not r.experiment:
        return "\n".join(lines)
    lines += [
        "",
        f"experiment   {r.experiment}",
        f"entry        {r.entry_name} {r.entry_params}",
        f"trades       {r.signals:,} signals, {r.valid:,} valid, {r.entry_bar_exits:,} closed on their entry bar",
    ]
    for reason, n in r.invalid.items():
        lines.append(f"  invalid: {n:,} {reason}")
    lines.extend(f"  {f}" for f in r.trade_findings)
    lines.append(f"holes        {DATA_HOLES_WORDS.get(r.data_holes, r.data_holes)} (env.data_holes = \"{r.data_holes}\")")
    if r.purge > r.min_purge:  # split.purge_bars chose more than the minimum
        lines.append(f"splits       purge gap {r.purge} bars (split.purge_bars; the minimum is max_bars + feature "
                     f"lookback {r.lookback} = {r.min_purge})")
    else:
        lines.append(f"splits       purge gap {r.purge} bars (max_bars + feature lookback {r.lookback} = minimum)")
    # both columns are bar opens (UTC); reports give a split's end as its last bar's close
    lines.append(f"  {'split':<11} {'first bar':<17} {'last bar':<17} {'bars':>9} {'trades':>8} {'usable':>8} {'needed':>7}")
    for s in r.splits:
        need = r.minimum.get(s.name, 0)
        start, end = f"{s.start:%Y-%m-%d %H:%M}", f"{s.end:%Y-%m-%d %H:%M}"
        lines.append(f"  {s.name:<11} {start:<17} {end:<17} {s.n_bars:>9,} {s.trades:>8,} {s.usable:>8,} {need:>7,}")
    return "\n".join(lines)
