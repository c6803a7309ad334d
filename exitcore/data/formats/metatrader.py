"""MetaTrader 4/5 history exports.

* MT4 (History Center, "Export"): no header, comma-separated,
  ``2019.01.02,00:00,1.14612,1.14652,1.14602,1.14639,126`` (date, time, O, H, L, C, tick volume).
* MT5 (Symbols -> Bars -> Export): a header ``<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE>
  <TICKVOL> <VOL> <SPREAD>``, tab-separated, time ``HH:MM:SS``. ``<SPREAD>`` is in points and
  becomes the ``spread`` column in pips (``points_per_pip``, 10 on 5- and 3-digit quotes).

Either layout may come with or without a header and with `,` `;` or tab. Times are the broker's
clock, usually ``UTC+2,US`` (New York close at midnight). When ``timezone`` is not given the
times are taken as UTC and a warning says so.
"""

from __future__ import annotations

import re
from typing import Any

from exitcore.data.bars import Bars, Finding
from exitcore.data.clocks import parse_clock
from exitcore.data.files import TextMember, first_line, read_delimited
from exitcore.data.formats.common import (
    detect_sep,
    load_members,
    make_chunk,
    numeric_columns,
    parse_time_column,
    sniff_first_line,
    symbol_of,
)
from exitcore.data.source_params import MetaTraderParams
from exitcore.data.validate import RawChunk, assemble_bars
from exitcore.errors import DataError

SUFFIXES = (".csv", ".txt", ".zip", ".gz", ".bz2", ".xz")
_DATA = re.compile(r"^\d{4}\.\d{2}\.\d{2}[,;\t]\d{2}:\d{2}")
_HEADER = re.compile(r"^\s*<?date>?\s*[,;\t]\s*<?time>?\s*[,;\t]", re.IGNORECASE)
_POSITIONAL = ["date", "time", "open", "high", "low", "close", "tickvol", "vol", "spread"]


def sniff(spec: str) -> dict[str, Any] | None:
    """Recognise ``YYYY.MM.DD,HH:MM`` rows or a ``<DATE>,<TIME>`` header in the first file."""
    return sniff_first_line(spec, MetaTraderParams, SUFFIXES, _matches)


def _matches(line: str) -> bool:
    """Whether a first line is an MT4 row or MT5's header."""
    if _DATA.match(line):
        return True
    # MT5's <DATE> header; a plain "Date,Time,..." header is left to the generic csv source
    return bool(re.match(r"^\s*<date>", line, re.IGNORECASE))


def _loadable(line: str) -> bool:
    """Whether a first line is one :func:`_parse` reads: an MT4 row, or a ``<DATE>,<TIME>`` or
    ``Date,Time`` header (named explicitly, a plain header is MetaTrader's too)."""
    return bool(_DATA.match(line) or _HEADER.match(line))


def load(params: MetaTraderParams) -> Bars:
    """Load and validate MetaTrader bars on the broker clock ``params.timezone``."""
    clock = parse_clock(params.timezone or "UTC")
    chunks = load_members(params.path, SUFFIXES, lambda m: _parse(m, params), ("MetaTrader", _loadable), symbol=params.symbol)
    notes = []
    if not params.timezone:
        notes.append(
            Finding(
                "warning",
                "timezone",
                "MetaTrader times are broker time; none was given, so they were taken as UTC "
                "(most brokers use 'UTC+2,US')",
            )
        )
    return assemble_bars(
        chunks,
        clock=clock,
        source=f"metatrader: {params.path} (clock {clock})",
        timeframe=params.timeframe,
        symbol=symbol_of([c.display for c in chunks], params.symbol, params.path),
        extra_findings=notes,
    )


def _parse(member: TextMember, params: MetaTraderParams) -> RawChunk:
    line = first_line(member)
    sep = detect_sep(line)
    has_header = not line[:1].isdigit()
    if has_header and not _HEADER.match(line):
        raise DataError(f"{member.display}, line 1: not a MetaTrader export (expected <DATE>,<TIME>,... or data rows)")
    if has_header:
        table = read_delimited(member, sep=sep, header=True, dtype={0: str, 1: str})
        table.frame.columns = [str(c).strip().strip("<>").lower() for c in table.frame.columns]
    else:
        n = line.count(sep) + 1
        if n < 6:
            raise DataError(f"{member.display}, line 1: expected at least 6 fields (date, time, O, H, L, C), found {n}")
        names = _POSITIONAL[:n] if n <= len(_POSITIONAL) else None
        if names is None:
            raise DataError(f"{member.display}, line 1: expected at most 9 fields, found {n}")
        table = read_delimited(member, sep=sep, header=False, names=names, dtype={"date": str, "time": str})
    frame = table.frame
    cols = set(frame.columns)
    missing = [c for c in ("date", "time", "open", "high", "low", "close") if c not in cols]
    if missing:
        raise DataError(f"{member.display}: missing column(s) {', '.join(missing)} (found {', '.join(map(str, frame.columns))})")
    mapping = {k: k for k in ("open", "high", "low", "close")}
    vol = next((c for c in ("tickvol", "volume", "vol") if c in cols), None)
    if vol:
        mapping["volume"] = vol
    if "spread" in cols:
        mapping["spread"] = "spread"
    values, bad, findings = numeric_columns(frame, mapping, member, table.line)
    if "spread" in values:
        values["spread"] = values["spread"] / params.points_per_pip
    time_text = frame["time"].astype("str").str.strip()
    with_seconds = bool(len(time_text)) and len(str(time_text.iloc[0])) == 8
    fmt = "%Y.%m.%d %H:%M:%S" if with_seconds else "%Y.%m.%d %H:%M"
    joined = frame["date"].astype("str").str.strip() + " " + time_text
    local, tbad, tf = parse_time_column(
        joined.where(frame["date"].notna() & frame["time"].notna()), fmt, member, table.line,
        "YYYY.MM.DD and HH:MM" + (":SS" if with_seconds else ""),
    )
    return make_chunk(member, local, values, table.line, bad | tbad, table.findings + findings + tf)

