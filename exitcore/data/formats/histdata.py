"""HistData.com "Generic ASCII" bars: ``YYYYMMDD HHMMSS;open;high;low;close;volume``, no header.

HistData's clock is not UTC and was not even the same from one year to the next (see
``docs/data.md`` and ``../shared/data/README.md``), so ``timezone`` is required: the loader never
guesses. Zips are read directly (only their ``.csv`` member; the status ``.txt`` is skipped).
The volume column is always 0 in these files, so it is dropped when every value is 0.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from exitcore.data.bars import Bars
from exitcore.data.clocks import parse_clock
from exitcore.data.files import TextMember, first_line, read_delimited
from exitcore.data.formats.common import load_members, make_chunk, numeric_columns, parse_time_column, sniff_first_line, symbol_of
from exitcore.data.source_params import HistDataParams
from exitcore.data.validate import RawChunk, assemble_bars
from exitcore.errors import DataError

SUFFIXES = (".csv", ".txt", ".zip", ".gz", ".bz2", ".xz")
_LINE = re.compile(r"^\d{8} \d{6};")
_NAMES = ["dt", "open", "high", "low", "close", "volume"]


def sniff(spec: str) -> dict[str, Any] | None:
    """Recognise ``YYYYMMDD HHMMSS;`` rows in the first file of ``spec``."""
    return sniff_first_line(spec, HistDataParams, SUFFIXES, _matches)


def _matches(line: str) -> bool:
    """Whether a first line is a HistData row."""
    return bool(_LINE.match(line))


def load(params: HistDataParams) -> Bars:
    """Load and validate HistData ASCII bars on the clock ``params.timezone``."""
    clock = parse_clock(params.timezone)
    chunks = load_members(params.path, SUFFIXES, _parse, ("HistData ASCII", _matches), symbol=params.symbol)
    if all("volume" in c.values and not np.any(c.values["volume"][~c.bad]) for c in chunks):
        for c in chunks:
            c.values.pop("volume")
    return assemble_bars(
        chunks,
        clock=clock,
        source=f"histdata: {params.path} (clock {clock})",
        timeframe=params.timeframe,
        symbol=symbol_of([c.display for c in chunks], params.symbol, params.path),
    )


def _parse(member: TextMember) -> RawChunk:
    line = first_line(member)
    if not _LINE.match(line):
        raise DataError(
            f"{member.display}: not a HistData ASCII file (expected rows like "
            f"'20180101 170000;1.2003;1.2010;1.2003;1.2010;0', found {line[:60]!r})"
        )
    n_fields = line.count(";") + 1
    names = _NAMES[:n_fields] if n_fields <= len(_NAMES) else None
    if names is None or n_fields < 5:
        raise DataError(f"{member.display}, line 1: expected 5 or 6 ';'-separated fields, found {n_fields}")
    table = read_delimited(member, sep=";", header=False, names=names, dtype={"dt": str})
    frame = table.frame
    mapping = {k: k for k in names[1:]}
    values, bad, findings = numeric_columns(frame, mapping, member, table.line)
    local, tbad, tf = parse_time_column(frame["dt"], "%Y%m%d %H%M%S", member, table.line, "YYYYMMDD HHMMSS")
    return make_chunk(member, local, values, table.line, bad | tbad, table.findings + findings + tf)
