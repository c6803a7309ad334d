"""Timeframe spellings the user may type (``1d``, ``15Min``, ``4H``) -> the canonical one (``1D``).

The canonical spellings are ``Ns``, ``Nmin``, ``Nh`` and ``ND`` (:func:`exitcore.config.timeframe_seconds`).
Units are read case-insensitively where that is unambiguous; ``m``/``M`` is refused (minutes to
most trading tools, months to pandas), and so are calendar units (weeks, months, quarters,
years: not a fixed bar length on the UTC grid) and units below a second. Pure Python: the CLI
and the parameter classes use it while parsing options.
"""

from __future__ import annotations

import re

_SPELLING = re.compile(r"^\s*(\d*)\s*([A-Za-z]+)\s*$")
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "s"),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), "min"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("d", "day", "days"), "D"),
}
_CALENDAR = {"w", "wk", "week", "weeks", "me", "mo", "mon", "month", "months", "bm", "bme", "bms", "sm", "sme",
             "sms", "q", "qe", "qs", "bq", "y", "ye", "ys", "yr", "year", "years", "a", "as", "ba", "bas"}
_SUBSECOND = {"ms", "l", "us", "u", "ns", "n", "milli", "micro", "nano"}
_EXAMPLES = "'15min', '1h' or '1D'"


def canonical_timeframe(text: str) -> str:
    """``text`` in its canonical spelling (``"1d"`` -> ``"1D"``, ``"4H"`` -> ``"4h"``).

    Raises :class:`ValueError` saying why when ``text`` is no timeframe, an ambiguous one
    (``1m``, ``1M``) or a calendar or sub-second unit.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a timeframe such as {_EXAMPLES}, got {text!r}")
    m = _SPELLING.match(text)
    if not m:
        raise ValueError(f"expected a timeframe such as {_EXAMPLES}, got {text!r}")
    number, unit = m.group(1) or "1", m.group(2)
    low = unit.lower()
    if low == "m":
        raise ValueError(
            f"{text!r} is ambiguous (minutes or months?); write '{number}min' for minutes "
            "(months are not a bar length)"
        )
    if unit in ("MS", "Ms") or low in _CALENDAR:
        raise ValueError(
            f"{text!r}: calendar units (weeks, months, quarters, years) are not bar lengths; give "
            f"seconds, minutes, hours or days, e.g. {_EXAMPLES}"
        )
    if low in _SUBSECOND:
        raise ValueError(f"{text!r}: bars shorter than a second are not supported; e.g. {_EXAMPLES}")
    if low not in _UNITS:
        raise ValueError(f"expected a timeframe such as {_EXAMPLES}, got {text!r}")
    if int(number) == 0:
        raise ValueError(f"expected a timeframe such as {_EXAMPLES}, got {text!r} (a length of 0)")
    return f"{int(number)}{_UNITS[low]}"


def lenient_timeframe(value: object) -> object:
    """:func:`canonical_timeframe` of ``value`` where it has one, else ``value`` unchanged (an
    attrs converter: the field's validator then reports what is wrong)."""
    if isinstance(value, str) and value != "auto":
        try:
            return canonical_timeframe(value)
        except ValueError:
            return value
    return value
