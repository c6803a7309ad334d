"""Parameter classes of the built-in data sources (what ``[experiment.data.params]`` accepts).

Kept free of pandas and numpy: the built-in plugin imports this module when it registers, which
happens for every CLI command. The loaders live in :mod:`exitcore.data.formats` and
:mod:`exitcore.data.synth`; ``docs/data.md`` documents every field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from exitcore.data.clocks import validate_clock
from exitcore.data.timeframes import canonical_timeframe, lenient_timeframe
from exitcore.params import FieldError, non_empty_str, non_negative, non_negative_int, positive

#: canonical names a column mapping may use
COLUMN_KEYS = ("time", "date", "open", "high", "low", "close", "volume", "spread")


def _timeframe_or_auto(_inst: Any, attribute: Any, value: Any) -> None:
    if value == "auto":
        return
    try:
        canonical_timeframe(value)
    except (TypeError, ValueError) as exc:
        raise FieldError(attribute.name, f"{exc} (or 'auto' to infer it from the data)") from None


def _explicit_timeframe(_inst: Any, attribute: Any, value: Any) -> None:
    if value == "auto":
        raise FieldError(attribute.name, "the generator has no data to infer a timeframe from ('auto'); "
                                         "give one such as '15min', '1h' or '1D'")
    try:
        canonical_timeframe(value)
    except (TypeError, ValueError) as exc:  # without _timeframe_or_auto's 'auto' hint
        raise FieldError(attribute.name, str(exc)) from None


def _columns(_inst: Any, attribute: Any, value: Any) -> None:
    bad = [k for k in value if k not in COLUMN_KEYS]
    if bad:
        raise FieldError(
            attribute.name, f"unknown column key(s) {', '.join(map(repr, bad))}; allowed: {', '.join(COLUMN_KEYS)}"
        )
    empty = [k for k, v in value.items() if not isinstance(v, str) or not v.strip()]
    if empty:
        raise FieldError(attribute.name, f"column name for {', '.join(map(repr, empty))} must be a non-empty string")
    if "time" not in value and "date" in value:
        raise FieldError(attribute.name, "'date' needs 'time' too (the time-of-day column joined to it)")


def _required_clock(inst: Any, attribute: Any, value: Any) -> None:
    if value == "":
        raise FieldError(
            attribute.name,
            "required: HistData files are not in UTC and their clock changed between years; give it "
            "explicitly, e.g. 'America/New_York' (the 2018 files), 'UTC-5,EU' (the 2019 files) or "
            "'America/New_York;2019-01-01=UTC-5,EU' (both); see docs/data.md",
        )
    validate_clock(inst, attribute, value)


def _optional_clock(inst: Any, attribute: Any, value: Any) -> None:
    if value != "":
        validate_clock(inst, attribute, value)


def _iso_date(_inst: Any, attribute: Any, value: Any) -> None:
    try:
        dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise FieldError(attribute.name, f"expected a date YYYY-MM-DD, got {value!r}") from None


def _single_char(_inst: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or len(value) != 1:
        raise FieldError(attribute.name, f"expected one character (',' ';' or a tab), got {value!r}")


@attrs.frozen
class CsvParams:
    """Generic delimited text with a column mapping (``csv`` source)."""

    #: a file, folder or glob; .gz/.zip/.bz2/.xz are read directly
    path: str = attrs.field(validator=non_empty_str)
    #: canonical name -> column in the file (or 0-based position when header = false);
    #: empty: columns are found by name (time/datetime/timestamp, open, high, low, close, ...)
    columns: dict[str, str] = attrs.field(factory=dict, validator=_columns)
    #: strptime format of the time (after joining date + " " + time); "" = ISO 8601;
    #: "unix_s", "unix_ms", "unix_us", "unix_ns" = epoch numbers
    time_format: str = ""
    #: the clock of naive timestamps (see exitcore.data.clocks); offsets written in the
    #: timestamps themselves always win
    timezone: str = attrs.field(default="UTC", validator=validate_clock)
    sep: str = attrs.field(default=",", validator=_single_char)
    header: bool = True
    #: bar length of the file ("auto": the most common spacing)
    timeframe: str = attrs.field(default="auto", converter=lenient_timeframe, validator=_timeframe_or_auto)
    symbol: str = ""


@attrs.frozen
class ParquetParams:
    """Parquet files with a column mapping (``parquet`` source; needs pyarrow)."""

    path: str = attrs.field(validator=non_empty_str)
    #: as for csv; a datetime index is used as the time when no time column is found
    columns: dict[str, str] = attrs.field(factory=dict, validator=_columns)
    time_format: str = ""
    timezone: str = attrs.field(default="UTC", validator=validate_clock)
    timeframe: str = attrs.field(default="auto", converter=lenient_timeframe, validator=_timeframe_or_auto)
    symbol: str = ""


@attrs.frozen
class DukascopyParams:
    """Dukascopy exports (``Gmt time,Open,...``) and Tickstory's ``Date,Timestamp,...`` layout."""

    path: str = attrs.field(validator=non_empty_str)
    #: clock of the Tickstory layout and of ``Local time`` exports without an offset
    #: (``Gmt time`` files are UTC by their header)
    timezone: str = attrs.field(default="UTC", validator=validate_clock)
    timeframe: str = attrs.field(default="auto", converter=lenient_timeframe, validator=_timeframe_or_auto)
    symbol: str = ""


@attrs.frozen
class HistDataParams:
    """HistData.com ASCII bars: ``YYYYMMDD HHMMSS;open;high;low;close;volume``, no header."""

    path: str = attrs.field(validator=non_empty_str)
    #: required, no default: the files' clock (see docs/data.md, "HistData clocks")
    timezone: str = attrs.field(default="", validator=_required_clock)
    timeframe: str = attrs.field(default="auto", converter=lenient_timeframe, validator=_timeframe_or_auto)
    symbol: str = ""


@attrs.frozen
class MetaTraderParams:
    """MetaTrader 4/5 history exports: ``YYYY.MM.DD,HH:MM[:SS],open,high,low,close,volume``."""

    path: str = attrs.field(validator=non_empty_str)
    #: the broker's clock, e.g. 'UTC+2,US' (most brokers); "" = UTC, with a warning
    timezone: str = attrs.field(default="", validator=_optional_clock)
    #: MT5's <SPREAD> column is in points; points per pip (10 on 5- and 3-digit quotes)
    points_per_pip: float = attrs.field(default=10.0, validator=positive)
    timeframe: str = attrs.field(default="auto", converter=lenient_timeframe, validator=_timeframe_or_auto)
    symbol: str = ""


@attrs.frozen
class SynthParams:
    """The seeded synthetic generator (``synthetic`` source): realistic EURUSD-like bars."""

    #: length of the series in years (fractions allowed)
    years: float = attrs.field(default=3.0, validator=positive)
    seed: int = attrs.field(default=0, validator=non_negative_int)
    #: first day (UTC); the series starts at the first market open on or after it
    start: str = attrs.field(default="2015-01-05", validator=_iso_date)
    symbol: str = attrs.field(default="EURUSD", validator=non_empty_str)
    timeframe: str = attrs.field(default="15min", converter=lenient_timeframe, validator=_explicit_timeframe)
    #: price at the start and the pip size (EURUSD: 1.10 and 0.0001)
    start_price: float = attrs.field(default=1.10, validator=positive)
    pip_size: float = attrs.field(default=0.0001, validator=positive)
    #: long-run annualised volatility of log returns
    annual_vol: float = attrs.field(default=0.08, validator=positive)
    #: Student-t degrees of freedom of the shocks (lower = fatter tails; > 2)
    tail_df: float = attrs.field(default=4.0, validator=positive)
    #: half-lives in days of the fast and slow volatility components (clustering)
    vol_halflife_days: list[float] = attrs.field(factory=lambda: [0.5, 10.0])
    #: stationary standard deviation of each component's log-volatility
    vol_of_vol: list[float] = attrs.field(factory=lambda: [0.3, 0.35])
    #: mean tick volume per bar (the volume column; 0 drops it)
    tick_volume: float = attrs.field(default=400.0, validator=non_negative)

    def __attrs_post_init__(self) -> None:
        if self.tail_df <= 2:
            raise FieldError("tail_df", f"expected a number > 2 (finite variance), got {self.tail_df!r}")
        if len(self.vol_halflife_days) != len(self.vol_of_vol):
            raise FieldError("vol_of_vol", "needs one value per entry of vol_halflife_days")
        if any((not isinstance(v, (int, float))) or v <= 0 for v in self.vol_halflife_days):
            raise FieldError("vol_halflife_days", f"expected positive numbers, got {self.vol_halflife_days!r}")
        if any((not isinstance(v, (int, float))) or v < 0 for v in self.vol_of_vol):
            raise FieldError("vol_of_vol", f"expected numbers >= 0, got {self.vol_of_vol!r}")

