"""Generic delimited text (``csv`` source) and Parquet (``parquet`` source) with a column mapping.

Columns are found by name unless ``columns`` maps them: ``time`` (or ``date`` + ``time`` joined
by a space), ``open``, ``high``, ``low``, ``close`` and optionally ``volume`` and ``spread`` (pips).
Names are matched case-insensitively, with MetaTrader's ``<...>`` stripped; without a mapping
these spellings are tried:

====== ===========================================================================
time   time, datetime, timestamp, date_time, gmt time, local time, date (alone);
       a ``time`` or ``timestamp`` column next to a ``date`` column is joined to it
open   open, o;  high: high, h;  low: low, l;  close: close, c, last
volume volume, vol, tickvol, tick_volume;  spread: spread
====== ===========================================================================

Times are ISO 8601 unless ``time_format`` gives a strptime format or ``unix_s``/``unix_ms``/
``unix_us``/``unix_ns``. Times that carry an offset (``Z``, ``+02:00``) are converted with it;
naive times are on the ``timezone`` clock (default UTC). Epoch numbers are UTC.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from exitcore.data.bars import Bars, Finding
from exitcore.data.clocks import parse_clock
from exitcore.data.files import TextMember, expand_paths, first_line, read_delimited, text_members
from exitcore.data.formats.common import (
    capped,
    load_members,
    make_chunk,
    numeric_columns,
    parse_time_column,
    symbol_of,
)
from exitcore.data.progress import report
from exitcore.data.source_params import CsvParams, ParquetParams
from exitcore.data.spec import parse_spec, spec_params
from exitcore.data.timeparse import NAT
from exitcore.data.validate import KEEP_PER_KIND, RawChunk, TimeframeError, assemble_bars
from exitcore.errors import DataError

CSV_SUFFIXES = (".csv", ".txt", ".tsv", ".zip", ".gz", ".bz2", ".xz")
PARQUET_SUFFIXES = (".parquet", ".pq")
ALIASES: dict[str, tuple[str, ...]] = {
    "time": ("time", "datetime", "timestamp", "date_time", "gmt time", "local time"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "last"),
    "volume": ("volume", "vol", "tickvol", "tick_volume"),
    "spread": ("spread",),
}
REQUIRED = ("time", "open", "high", "low", "close")
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")
_EPOCH = {"unix_s": 1_000_000_000, "unix_ms": 1_000_000, "unix_us": 1_000, "unix_ns": 1}
_EPOCH_NAMES = {"unix_s": "unix seconds", "unix_ms": "unix milliseconds", "unix_us": "unix microseconds",
                "unix_ns": "unix nanoseconds"}
_MAX_NS = 9.2e18


# --------------------------------------------------------------------------- sniffing


def sniff_csv(spec: str) -> dict[str, Any] | None:
    """Recognise delimited text whose header names a time column and OHLC columns."""
    parsed = parse_spec(spec)
    if parsed.source or not parsed.path:
        return None
    try:
        paths = expand_paths(parsed.path, CSV_SUFFIXES)
        line = first_line(text_members(paths[0])[0])
    except DataError:
        return None
    sep = next((s for s in ("\t", ";", ",") if s in line), ",")
    names = [_norm(c) for c in line.split(sep)]
    try:
        resolve_columns(names, {}, "")
    except DataError:
        return None
    out = spec_params(parsed, CsvParams)
    if sep != "," and "sep" not in out:
        out["sep"] = sep
    return out


def csv_header_problem(path: str) -> str | None:
    """Why :func:`sniff_csv` does not take ``path`` as CSV bars, read off its first line (``no
    column for close; the file's columns are: ...``), for the error of a file no source
    recognised; None where it would, or the file cannot be read."""
    try:
        line = first_line(text_members(expand_paths(path, CSV_SUFFIXES)[0])[0])
    except DataError:
        return None
    if not line:
        return None
    sep = next((s for s in ("\t", ";", ",") if s in line), ",")
    try:
        resolve_columns([_norm(c) for c in line.split(sep)], {}, "")
    except DataError as exc:
        return str(exc).lstrip(": ")
    return None


def sniff_parquet(spec: str) -> dict[str, Any] | None:
    """Recognise ``.parquet``/``.pq`` files."""
    parsed = parse_spec(spec)
    if parsed.source or not parsed.path:
        return None
    try:
        paths = expand_paths(parsed.path, PARQUET_SUFFIXES)
    except DataError:
        return None
    if not paths[0].name.lower().endswith(PARQUET_SUFFIXES):
        return None
    return spec_params(parsed, ParquetParams)


# --------------------------------------------------------------------------- columns


def _norm(name: Any) -> str:
    return str(name).strip().lstrip("\ufeff").strip("<>").strip().lower()


def resolve_columns(columns: list[Any], mapping: dict[str, str], display: str) -> dict[str, Any]:
    """Canonical name -> the file's column, from ``mapping`` first, then by the usual names.

    Raises :class:`DataError` naming the file, the mapping key and the columns it has.
    """
    by_norm: dict[str, Any] = {}
    for c in columns:
        by_norm.setdefault(_norm(c), c)
    out: dict[str, Any] = {}
    for key, wanted in mapping.items():
        if wanted in columns:
            out[key] = wanted
        elif _norm(wanted) in by_norm:
            out[key] = by_norm[_norm(wanted)]
        else:
            raise DataError(
                f"{display}: column {wanted!r} (columns.{key}) is not in the file; "
                f"its columns are: {', '.join(map(str, columns))}"
            )
    for key, aliases in ALIASES.items():
        if key in out:
            continue
        hit = next((by_norm[a] for a in aliases if a in by_norm), None)
        if hit is not None:
            out[key] = hit
    if "time" not in out and "date" not in mapping and "date" in by_norm:
        out["time"] = by_norm["date"]  # a lone "date" column holds the full timestamp
    elif "time" not in mapping and "date" not in out and "date" in by_norm and _norm(out.get("time")) in ("time", "timestamp"):
        out["date"] = by_norm["date"]  # "date" + "time" columns: the time of day is joined to the date
    missing = [k for k in REQUIRED if k not in out]
    if missing:
        raise DataError(
            f"{display}: no column for {', '.join(missing)}; the file's columns are: "
            f"{', '.join(map(str, columns))}. Map them with columns = {{time = \"...\", open = \"...\", ...}} "
            "(or ?columns=time:...,open:... in --data)"
        )
    return out


def _positional(n_cols: int, mapping: dict[str, str], display: str) -> dict[str, Any]:
    """Column positions for a file without a header."""
    if not mapping:
        names = ["time", "open", "high", "low", "close", "volume"][:n_cols]
        if n_cols < 5:
            raise DataError(f"{display}: expected at least 5 fields (time, open, high, low, close), found {n_cols}")
        return {k: i for i, k in enumerate(names)}
    out: dict[str, Any] = {}
    for key, pos in mapping.items():
        if not pos.isdigit() or int(pos) >= n_cols:
            raise DataError(
                f"{display}: columns.{key} = {pos!r} must be a 0-based field position below {n_cols} "
                "(the file has no header)"
            )
        out[key] = int(pos)
    missing = [k for k in REQUIRED if k not in out]
    if missing:
        raise DataError(f"{display}: columns must map {', '.join(missing)} (the file has no header)")
    return out


# --------------------------------------------------------------------------- times


def parse_times(
    values: pd.Series, time_format: str, member: TextMember, line: np.ndarray, unit: str = "line"
) -> tuple[np.ndarray, np.ndarray, list[Finding], bool]:
    """``(ns, bad, findings, is_utc)`` for a time column of strings, numbers or datetimes."""
    if time_format in _EPOCH:
        num = pd.to_numeric(values, errors="coerce")
        scaled = num.to_numpy(dtype=np.float64, na_value=np.nan) * _EPOCH[time_format]
        ok = np.isfinite(scaled) & (np.abs(scaled) < _MAX_NS)  # beyond int64 nanoseconds: years past 2262
        ns = np.full(len(values), NAT, dtype=np.int64)
        ns[ok] = scaled[ok].round().astype(np.int64)
        expected = time_format
        guess = epoch_unit(values[~ok & num.notna().to_numpy()])
        if guess and guess != time_format:
            expected += f"; the values look like {_EPOCH_NAMES[guess]}: try time_format={guess}"
        return ns, ~ok, _bad_times(values, ~ok, member, line, expected, unit), True
    if values.dtype.kind == "M":
        if getattr(values.dt, "tz", None) is not None:
            return values.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("ns").to_numpy().view(np.int64), values.isna().to_numpy(), [], True
        ns = values.dt.as_unit("ns").to_numpy().view(np.int64)
        return ns, ns == NAT, [], False
    text = values.astype("str").str.strip().where(values.notna())
    if time_format and "%z" not in time_format:
        ns, bad, findings = parse_time_column(text, time_format, member, line, repr(time_format))
        return ns, bad, findings, False
    aware = text.str.contains(_OFFSET, na=False).to_numpy()
    naive = text.notna().to_numpy() & ~aware
    if aware.any() and naive.any():
        # only a value that reads as a time lacks an offset; anything else ('garbage') is an
        # unparseable row, reported with the others below
        fmt = time_format.replace("%z", "").strip() if time_format else "ISO8601"
        readable = pd.to_datetime(text.where(naive), format=fmt, errors="coerce").notna().to_numpy()
        if readable.any():
            i = int(np.flatnonzero(readable)[0])
            raise DataError(f"{member.display}, {unit} {line[i]}: some times carry a UTC offset and some do not ({text.iloc[i]!r})")
    if aware.any():
        parsed = pd.to_datetime(text, format=time_format or "ISO8601", errors="coerce", utc=True)
        ns = parsed.dt.tz_localize(None).dt.as_unit("ns").to_numpy().view(np.int64)
        bad = ns == NAT
        return ns, bad, _bad_times(values, bad, member, line, time_format or "ISO 8601", unit), True
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    ns = parsed.dt.as_unit("ns").to_numpy().view(np.int64)
    bad = ns == NAT
    expected = "ISO 8601"
    guess = epoch_unit(text[bad]) if bad.any() else ""
    if guess:
        expected += f"; the values look like {_EPOCH_NAMES[guess]}: set time_format={guess}"
    return ns, bad, _bad_times(values, bad, member, line, expected, unit), False


def epoch_unit(values: pd.Series) -> str:
    """``unix_s``/``unix_ms``/``unix_us``/``unix_ns`` when the first of ``values`` reads as epoch
    time of that unit between 1990 and 2100 (by its number of digits), else ``""``."""
    if not len(values):
        return ""
    text = str(values.iloc[0]).strip()
    if not re.fullmatch(r"\d+(\.\d*)?", text):
        return ""
    seconds_digits = len(text.split(".")[0])
    for name, digits in (("unix_s", 0), ("unix_ms", 3), ("unix_us", 6), ("unix_ns", 9)):
        if 6.3e8 <= float(text) / 10**digits <= 4.11e9 and seconds_digits - digits in (9, 10):
            return name
    return ""


def _bad_times(values: pd.Series, bad: np.ndarray, member: TextMember, line: np.ndarray, expected: str, unit: str) -> list[Finding]:
    out = []
    for i in np.flatnonzero(bad)[:KEEP_PER_KIND]:
        v = values.iloc[i]
        what = "missing time" if pd.isna(v) else f"unparseable time {str(v)!r}"
        out.append(Finding("error", f"{member.display}, {unit} {line[i]}", f"{what} (expected {expected})"))
    return capped(out, int(bad.sum()), member.display)


# --------------------------------------------------------------------------- loading


def load_csv(params: CsvParams) -> Bars:
    """Load and validate delimited text with the column mapping ``params.columns``."""
    clock = parse_clock(params.timezone)
    chunks = load_members(params.path, CSV_SUFFIXES, lambda m: _parse_csv(m, params), symbol=params.symbol)
    return _assemble(chunks, clock, f"csv: {params.path}", params)


def _assemble(chunks: list[RawChunk], clock: Any, source: str, params: CsvParams | ParquetParams) -> Bars:
    """:func:`assemble_bars`, with a hint at ``time_format`` when epoch times look read in the wrong unit."""
    try:
        return assemble_bars(
            chunks,
            clock=clock,
            source=source,
            timeframe=params.timeframe,
            symbol=symbol_of([c.display for c in chunks], params.symbol, params.path),
        )
    except TimeframeError as exc:
        if params.time_format in _EPOCH:
            first = next((c.local_ns[(~c.bad) & (c.local_ns != NAT)][:1] for c in chunks if ((~c.bad) & (c.local_ns != NAT)).any()), None)
            if first is not None:
                guess = epoch_unit(pd.Series([str(int(first[0]) // _EPOCH[params.time_format])]))
                if guess and guess != params.time_format:
                    raise TimeframeError(
                        f"{exc} (the values look like {_EPOCH_NAMES[guess]}: try time_format={guess})", exc.spacing_ns
                    ) from None
        raise


def _parse_csv(member: TextMember, params: CsvParams) -> RawChunk:
    line = first_line(member)
    if not line:
        raise DataError(f"{member.display}: the file is empty")
    n_cols = line.count(params.sep) + 1
    if params.header:
        header = [c.strip() for c in line.lstrip("\ufeff").split(params.sep)]
        cols = resolve_columns(header, params.columns, member.display)
        dtype = {cols["time"]: str, **({cols["date"]: str} if "date" in cols else {})}
        table = read_delimited(member, sep=params.sep, header=True, dtype=dtype)
        table.frame.columns = [str(c).strip().lstrip("\ufeff") for c in table.frame.columns]
    else:
        cols = _positional(n_cols, params.columns, member.display)
        dtype = {cols["time"]: str, **({cols["date"]: str} if "date" in cols else {})}
        table = read_delimited(member, sep=params.sep, header=False, dtype=dtype)
    return _chunk_from_frame(member, table.frame, cols, table.line, table.findings, params.time_format, "line")


def _chunk_from_frame(
    member: TextMember, frame: pd.DataFrame, cols: dict[str, Any], line: np.ndarray, findings: list[Finding], time_format: str, unit: str
) -> RawChunk:
    mapping = {k: cols[k] for k in ("open", "high", "low", "close", "volume", "spread") if k in cols}
    values, bad, vf = numeric_columns(frame, mapping, member, line, unit)
    times = frame[cols["time"]]
    if "date" in cols:
        times = frame[cols["date"]].astype("str").str.strip() + " " + times.astype("str").str.strip()
    ns, tbad, tf, is_utc = parse_times(times, time_format, member, line, unit)
    return make_chunk(member, ns, values, line, bad | tbad, findings + vf + tf, is_utc=is_utc, unit=unit)


def load_parquet(params: ParquetParams) -> Bars:
    """Load and validate Parquet files (pyarrow required) with the column mapping ``params.columns``."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataError("reading Parquet needs pyarrow: pip install 'exitcore[parquet]'") from None
    clock = parse_clock(params.timezone)
    paths = expand_paths(params.path, PARQUET_SUFFIXES)
    symbol_of([str(p) for p in paths], params.symbol, params.path)  # different symbols: refused before reading
    chunks = []
    for k, path in enumerate(paths, 1):
        report(f"reading {path} ({k}/{len(paths)})")
        chunks.append(_parse_parquet(TextMember(display=str(path), path=path), params))
    return _assemble(chunks, clock, f"parquet: {params.path}", params)


def _parse_parquet(member: TextMember, params: ParquetParams) -> RawChunk:
    try:
        frame = pd.read_parquet(member.path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DataError(f"{member.display}: cannot read Parquet: {exc}") from None
    if isinstance(frame.index, pd.DatetimeIndex) or _norm(frame.index.name or "") in ALIASES["time"]:
        frame = frame.reset_index()
    cols = resolve_columns(list(frame.columns), params.columns, member.display)
    line = np.arange(1, len(frame) + 1, dtype=np.int64)
    return _chunk_from_frame(member, frame, cols, line, [], params.time_format, "row")
