"""Dukascopy exports and Tickstory's layout of Dukascopy data.

Three header layouts are recognised (column names are case-insensitive; `,` `;` or tab):

* ``Gmt time,Open,High,Low,Close,Volume`` with ``DD.MM.YYYY HH:MM:SS.fff`` - UTC by its header
  (the ``timezone`` parameter must stay ``UTC``);
* ``Local time,Open,...`` with ``DD.MM.YYYY HH:MM:SS.fff GMT+0100`` - each row carries its offset;
  rows without one use ``timezone``;
* ``Date,Timestamp,Open,High,Low,Close,Volume`` (Tickstory) with ``YYYYMMDD`` and ``HH:MM:SS``
  on the ``timezone`` clock (Tickstory exports UTC unless told otherwise).

The timestamp is the bar open. Volume is kept as given (its scale is vendor-specific).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from exitcore.data.bars import Bars, Finding
from exitcore.data.clocks import parse_clock
from exitcore.data.files import TextMember, first_line, read_delimited
from exitcore.data.formats.common import (
    capped,
    detect_sep,
    load_members,
    make_chunk,
    numeric_columns,
    parse_time_column,
    sniff_first_line,
    symbol_of,
)
from exitcore.data.source_params import DukascopyParams
from exitcore.data.timeparse import NAT
from exitcore.data.validate import KEEP_PER_KIND, RawChunk, assemble_bars
from exitcore.errors import DataError

SUFFIXES = (".csv", ".txt", ".zip", ".gz", ".bz2", ".xz")
_HEADER = re.compile(r"^\s*(\ufeff)?\s*(gmt time|local time|date\s*[,;\t]\s*timestamp)\s*[,;\t]", re.IGNORECASE)
_GMT_FMT = "%d.%m.%Y %H:%M:%S.%f"


def sniff(spec: str) -> dict[str, Any] | None:
    """Recognise a Dukascopy or Tickstory header in the first file of ``spec``."""
    return sniff_first_line(spec, DukascopyParams, SUFFIXES, _matches)


def _matches(line: str) -> bool:
    """Whether a first line is one of the three headers."""
    return bool(_HEADER.match(line))


def load(params: DukascopyParams) -> Bars:
    """Load and validate Dukascopy/Tickstory bars (see the module docstring)."""
    clock = parse_clock(params.timezone)
    chunks = load_members(params.path, SUFFIXES, lambda m: _parse(m, params), ("Dukascopy or Tickstory", _matches), symbol=params.symbol)
    return assemble_bars(
        chunks,
        clock=clock,
        source=f"dukascopy: {params.path}",
        timeframe=params.timeframe,
        symbol=symbol_of([c.display for c in chunks], params.symbol, params.path),
    )


def _parse(member: TextMember, params: DukascopyParams) -> RawChunk:
    header = first_line(member)
    sep = detect_sep(header)
    names = {c.strip().lower(): c.strip() for c in header.lstrip("\ufeff").split(sep)}
    time_cols = {orig: str for low, orig in names.items() if low in ("gmt time", "local time", "date", "timestamp")}
    table = read_delimited(member, sep=sep, header=True, dtype=time_cols)
    frame = table.frame
    frame.columns = [str(c).strip().lstrip("\ufeff") for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    mapping = {}
    for key in ("open", "high", "low", "close"):
        if key not in lower:
            raise DataError(f"{member.display}: no {key!r} column in the header ({', '.join(names.values())})")
        mapping[key] = lower[key]
    if "volume" in lower:
        mapping["volume"] = lower["volume"]
    values, bad, findings = numeric_columns(frame, mapping, member, table.line)
    findings = table.findings + findings
    is_utc = False
    if "gmt time" in lower:
        if not parse_clock(params.timezone).is_utc:
            raise DataError(
                f"{member.display}: the header says 'Gmt time' (UTC) but timezone = {params.timezone!r}; "
                "remove timezone for this file"
            )
        local, tbad, tf = parse_time_column(frame[lower["gmt time"]], _GMT_FMT, member, table.line, "DD.MM.YYYY HH:MM:SS.fff")
        is_utc = True
    elif "local time" in lower:
        local, tbad, tf, is_utc = _local_time(frame[lower["local time"]], member, table.line)
    else:
        joined = frame[lower["date"]].str.strip() + " " + frame[lower["timestamp"]].str.strip()
        local, tbad, tf = parse_time_column(joined, "%Y%m%d %H:%M:%S", member, table.line, "YYYYMMDD and HH:MM:SS")
    return make_chunk(member, local, values, table.line, bad | tbad, findings + tf, is_utc=is_utc)


def _local_time(values: pd.Series, member: TextMember, line: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Finding], bool]:
    """``DD.MM.YYYY HH:MM:SS.fff GMT+0100`` (with offset: UTC) or without offset (the clock)."""
    text = values.str.strip()
    with_offset = text.str.contains(r"GMT[+-]\d{4}$", regex=True, na=False)
    if with_offset.all():
        parsed = pd.to_datetime(text, format=_GMT_FMT + " GMT%z", errors="coerce", utc=True)
        ns = parsed.dt.tz_localize(None).dt.as_unit("ns").to_numpy().view(np.int64)
        bad = ns == NAT
        findings = capped([
            Finding("error", f"{member.display}, line {line[i]}", f"unparseable time {str(values.iloc[i])!r}")
            for i in np.flatnonzero(bad)[:KEEP_PER_KIND]
        ], int(bad.sum()), member.display)
        return ns, bad, findings, True
    if with_offset.any():
        i = int(np.flatnonzero(~with_offset.to_numpy())[0])
        raise DataError(f"{member.display}, line {line[i]}: some rows carry a GMT offset and some do not")
    ns, bad, findings = parse_time_column(text, _GMT_FMT, member, line, "DD.MM.YYYY HH:MM:SS.fff")
    return ns, bad, findings, False
