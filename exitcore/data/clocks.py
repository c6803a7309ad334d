"""File clocks: how a data file's wall-clock timestamps map to UTC.

Many vendors do not write UTC (HistData writes a New York-ish clock, MetaTrader writes broker
time), and guessing is how a whole data set ends up shifted by an hour. A *clock* is therefore
always stated explicitly, as a string:

``UTC``
    The file is in UTC (also ``GMT`` or ``Z``).
``UTC+2``, ``UTC-5``, ``UTC+05:30``
    A fixed offset from UTC, all year.
``UTC-5,EU`` / ``UTC+2,US``
    A standard offset that moves one hour ahead while a daylight-saving rule is in force.
    ``EU``: from the last Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC.
    ``US``: from the second Sunday of March 02:00 local standard time to the first Sunday of
    November 02:00 local daylight time (first Sunday of April / last Sunday of October before
    2007). ``UTC+2,US`` is the usual MetaTrader broker clock (New York close = midnight).
An IANA zone name, e.g. ``America/New_York``
    Any zone the system's time-zone database knows, with its full history.
``CLOCK;YYYY-MM-DD=CLOCK;...``
    Different clocks for different periods: each ``DATE=CLOCK`` applies from that date (file
    time, inclusive) on. HistData's 2018 and 2019 files together:
    ``America/New_York;2019-01-01=UTC-5,EU``.

A wall-clock time inside a daylight-saving switch is ambiguous (the repeated hour) or does not
exist (the skipped hour); those rows are reported as errors, never silently shifted.

Parsing is pure Python (this module is imported when plugins register); converting imports
numpy and pandas when it runs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import attrs

_HOUR_NS = 3_600_000_000_000
_OFFSET = re.compile(r"^(?:UTC|GMT)\s*(?:([+-])(\d{1,2})(?::?(\d{2}))?)?(?:\s*,\s*(EU|US))?$", re.IGNORECASE)
_PIECE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*=\s*(.+)$")

CLOCK_HELP = (
    "expected a clock: 'UTC', a fixed offset such as 'UTC-5' or 'UTC+05:30', an offset with a "
    "daylight-saving rule such as 'UTC-5,EU' or 'UTC+2,US', an IANA zone such as "
    "'America/New_York', or pieces 'CLOCK;YYYY-MM-DD=CLOCK' (see docs/data.md)"
)


@attrs.frozen
class FixedClock:
    """UTC plus ``offset_min`` minutes, optionally one hour more under a DST ``rule``."""

    offset_min: int
    rule: str = ""  # "", "EU" or "US"

    def describe(self) -> str:
        """The canonical spelling (``UTC-5,EU``)."""
        if self.offset_min == 0 and not self.rule:
            return "UTC"
        sign = "+" if self.offset_min >= 0 else "-"
        h, m = divmod(abs(self.offset_min), 60)
        text = f"UTC{sign}{h}" + (f":{m:02d}" if m else "")
        return text + (f",{self.rule}" if self.rule else "")


@attrs.frozen
class ZoneClock:
    """An IANA time zone (``America/New_York``)."""

    zone: str

    def describe(self) -> str:
        """The zone name."""
        return self.zone


@attrs.frozen
class Clock:
    """A file clock: ``pieces`` are ``(from_date, clock)``; the first piece starts at ``None``."""

    pieces: tuple[tuple[dt.date | None, FixedClock | ZoneClock], ...]
    text: str

    @property
    def is_utc(self) -> bool:
        """True when the clock is plain UTC (no conversion needed)."""
        return len(self.pieces) == 1 and self.pieces[0][1] == FixedClock(0)

    def __str__(self) -> str:
        return self.text


def parse_clock(text: str) -> Clock:
    """Parse a clock string (grammar in the module docstring); ``ValueError`` says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(CLOCK_HELP)
    parts = [p.strip() for p in text.split(";")]
    pieces: list[tuple[dt.date | None, FixedClock | ZoneClock]] = [(None, _parse_simple(parts[0]))]
    for part in parts[1:]:
        m = _PIECE.match(part)
        if not m:
            raise ValueError(f"clock piece {part!r} must read 'YYYY-MM-DD=CLOCK'; {CLOCK_HELP}")
        try:
            start = dt.date.fromisoformat(m.group(1))
        except ValueError:
            raise ValueError(f"clock piece {part!r}: {m.group(1)!r} is not a date") from None
        previous = pieces[-1][0]
        if previous is not None and start <= previous:
            raise ValueError(f"clock pieces must be in increasing date order, got {m.group(1)} after {previous}")
        pieces.append((start, _parse_simple(m.group(2).strip())))
    return Clock(tuple(pieces), text.strip())


def _parse_simple(text: str) -> FixedClock | ZoneClock:
    if text.upper() in ("UTC", "GMT", "Z"):
        return FixedClock(0)
    m = _OFFSET.match(text)
    if m:
        sign, hours, minutes, rule = m.groups()
        total = int(hours or 0) * 60 + int(minutes or 0)
        if total > 14 * 60 or int(minutes or 0) >= 60:
            raise ValueError(f"clock offset {text!r} is out of range (UTC-14 .. UTC+14)")
        return FixedClock(-total if sign == "-" else total, (rule or "").upper())
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown clock {text!r}; {CLOCK_HELP}") from None
    return ZoneClock(text)


def validate_clock(_instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: ``value`` must be a clock string (see :func:`parse_clock`)."""
    from exitcore.params import FieldError

    try:
        parse_clock(value)
    except ValueError as exc:
        raise FieldError(attribute.name, str(exc)) from None


# --------------------------------------------------------------------------- conversion


def to_utc(local_ns: Any, clock: Clock) -> tuple[Any, Any]:
    """Convert file-clock nanoseconds to UTC nanoseconds.

    ``local_ns`` is an int64 array of naive wall-clock times (``NaT`` as the minimum int64).
    Returns ``(utc_ns, bad)`` where ``bad`` marks wall-clock times that are ambiguous or do not
    exist on this clock (a daylight-saving switch); their ``utc_ns`` is meaningless.
    """
    import numpy as np

    local = np.asarray(local_ns, dtype=np.int64)
    nat = local == np.iinfo(np.int64).min
    out = local.copy()
    bad = np.zeros(len(local), dtype=bool)
    if clock.is_utc:
        return out, bad
    starts = [np.iinfo(np.int64).min] + [
        int(np.datetime64(start, "ns").astype(np.int64)) for start, _ in clock.pieces[1:]
    ]
    bounds = starts[1:] + [np.iinfo(np.int64).max]
    for (_, piece), lo, hi in zip(clock.pieces, starts, bounds):
        sel = ~nat & (local >= lo) & (local < hi)
        if not sel.any():
            continue
        conv, piece_bad = _convert_piece(local[sel], piece)
        out[sel] = conv
        bad[sel] = piece_bad
    return out, bad


def _convert_piece(local: Any, piece: FixedClock | ZoneClock) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    if isinstance(piece, ZoneClock):
        idx = pd.DatetimeIndex(local.astype("datetime64[ns]")).tz_localize(
            piece.zone, ambiguous="NaT", nonexistent="NaT"
        )
        bad = np.asarray(idx.isna())
        return idx.tz_convert("UTC").as_unit("ns").asi8, bad
    std = local - piece.offset_min * 60_000_000_000
    if not piece.rule:
        return std, np.zeros(len(local), dtype=bool)
    # Both readings of the wall time: standard (offset) and daylight (offset + 1 h). The one
    # consistent with the rule wins; both consistent = the repeated hour, neither = the skipped one.
    dst = std - _HOUR_NS
    years = local.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970
    uniq, inv = np.unique(years, return_inverse=True)
    edges = np.array([_dst_window(int(y), piece) for y in uniq], dtype=np.int64).reshape(-1, 2)
    begin, end = edges[inv, 0], edges[inv, 1]
    std_ok = ~((std >= begin) & (std < end))
    dst_ok = (dst >= begin) & (dst < end)
    bad = std_ok == dst_ok
    return np.where(dst_ok, dst, std), bad


def _dst_window(year: int, piece: FixedClock) -> tuple[int, int]:
    """UTC nanoseconds ``[begin, end)`` of daylight time in ``year`` under ``piece.rule``."""
    import numpy as np

    std_off = dt.timedelta(minutes=piece.offset_min)
    if piece.rule == "EU":
        begin = _last_sunday(year, 3) + dt.timedelta(hours=1)
        end = _last_sunday(year, 10) + dt.timedelta(hours=1)
    elif year >= 2007:  # US, Energy Policy Act of 2005
        begin = _nth_sunday(year, 3, 2) + dt.timedelta(hours=2) - std_off
        end = _nth_sunday(year, 11, 1) + dt.timedelta(hours=2) - std_off - dt.timedelta(hours=1)
    else:
        begin = _nth_sunday(year, 4, 1) + dt.timedelta(hours=2) - std_off
        end = _last_sunday(year, 10) + dt.timedelta(hours=2) - std_off - dt.timedelta(hours=1)
    return int(np.datetime64(begin, "ns").astype(np.int64)), int(np.datetime64(end, "ns").astype(np.int64))


def _nth_sunday(year: int, month: int, n: int) -> dt.datetime:
    first = dt.datetime(year, month, 1)
    return first + dt.timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def _last_sunday(year: int, month: int) -> dt.datetime:
    nxt = dt.datetime(year + (month == 12), month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() + 1) % 7)
