"""Fast parsing of fixed-width timestamps (``20190101 170200``, ``01.01.2006 22:00:00.000``).

Vendor files write timestamps in one fixed layout. Parsing them digit by digit on a numpy byte
view is about ten times faster than ``pandas.to_datetime`` with a non-ISO format, which matters
for multi-year M1 files (370 k rows a year). Rows that do not fit the fixed layout exactly fall
back to ``pandas.to_datetime`` with the same format, so the fast path never changes what is
accepted; anything neither accepts is ``NaT``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

NAT = np.iinfo(np.int64).min
_TOKEN = re.compile(r"%([YmdHMSf])")
_WIDTH = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2, "f": 3}
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def parse_datetimes(values: pd.Series, fmt: str) -> np.ndarray:
    """Naive timestamps in ``values`` (strings) parsed with strptime format ``fmt``.

    Returns int64 nanoseconds since 1970 (no time zone applied), ``NAT`` where a value is
    missing or cannot be parsed. ``%f`` in ``fmt`` means milliseconds (three digits) on the
    fast path; other widths go through the pandas fallback.
    """
    n = len(values)
    out = np.full(n, NAT, dtype=np.int64)
    if n == 0:
        return out
    layout = _layout(fmt)
    present = values.notna().to_numpy()
    ok = np.zeros(n, dtype=bool)
    if layout is not None:
        width, fields, literals = layout
        text = values.fillna("")
        try:
            raw = text.to_numpy(dtype=f"S{width + 1}")
        except UnicodeEncodeError:  # a thin space or a binary row: leave those rows to the fallback
            raw = text.where(text.str.isascii(), "").to_numpy(dtype=f"S{width + 1}")
        u = raw.view(np.uint8).reshape(n, width + 1)
        ok = present & (u[:, width] == 0) & (u[:, width - 1] != 0)  # exactly `width` bytes
        for pos, ch in literals:
            ok &= u[:, pos] == ch
        parts = {}
        for name, (start, w) in fields.items():
            value = np.zeros(n, dtype=np.int64)
            for k in range(start, start + w):
                digit = u[:, k] - np.uint8(48)  # wraps around for bytes below '0'
                ok &= digit <= 9
                value = value * 10 + digit
            parts[name] = value
        y, mo, d = parts.get("Y", 1970), parts.get("m", 1), parts.get("d", 1)
        hh, mm, ss, ff = parts.get("H", 0), parts.get("M", 0), parts.get("S", 0), parts.get("f", 0)
        mo_safe = np.clip(mo, 1, 12)
        leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
        dim = _DAYS_IN_MONTH[mo_safe] + ((mo_safe == 2) & leap)
        ok &= (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= dim) & (hh < 24) & (mm < 60) & (ss < 60)
        days = _days_from_civil(y, mo_safe, d)
        ns = (((days * 24 + hh) * 60 + mm) * 60 + ss) * 1_000_000_000 + ff * 1_000_000
        out[ok] = ns[ok]
    rest = present & ~ok
    if rest.any():
        parsed = pd.to_datetime(values[rest], format=fmt, errors="coerce")
        out[rest] = _to_ns(parsed)
    return out


def _to_ns(parsed: pd.Series) -> np.ndarray:
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.dt.as_unit("ns").to_numpy().view(np.int64)


def _layout(fmt: str) -> tuple[int, dict[str, tuple[int, int]], list[tuple[int, int]]] | None:
    """Byte positions of each field and literal of a fixed-width format (None: not fixed-width)."""
    fields: dict[str, tuple[int, int]] = {}
    literals: list[tuple[int, int]] = []
    pos = 0
    i = 0
    while i < len(fmt):
        if fmt[i] == "%":
            m = _TOKEN.match(fmt, i)
            if not m or m.group(1) in fields:
                return None
            w = _WIDTH[m.group(1)]
            fields[m.group(1)] = (pos, w)
            pos += w
            i = m.end()
        else:
            if not fmt[i].isascii():
                return None
            literals.append((pos, ord(fmt[i])))
            pos += 1
            i += 1
    return (pos, fields, literals) if pos else None


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
