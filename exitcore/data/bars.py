"""The canonical containers between loaders, entry strategies and episode building.

:class:`Bars` is what every data source returns and every entry strategy reads: one row per
bar, indexed by the UTC timestamp of the bar *open*, float64 ``open/high/low/close`` and
optional ``volume`` and ``spread`` (spread in pips). A bar ``t`` covers ``[ts_t, ts_t + tf)``
and its OHLC is known only at its close, ``ts_t + tf`` (design.md §2).

:class:`Trades` is what an entry strategy returns: one row per trade, decided at the close of
its signal bar ``s`` and filled at the open of ``s + 1``.
"""

from __future__ import annotations

import hashlib
import numbers

import attrs
import numpy as np
import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close")
OPTIONAL_COLUMNS = ("volume", "spread")
#: columns evaluation adds to ledgers besides the schema's (walk-forward's window number)
RESERVED_LEDGER_COLUMNS = ("window",)
TRADE_COLUMNS = ("signal_bar", "direction", "stop_dist", "target_dist")


@attrs.frozen
class Finding:
    """A validation observation: ``level`` is ``"error"`` or ``"warning"``; ``where`` names the
    file and row (or the key) it concerns."""

    level: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}" if self.where else f"{self.level}: {self.message}"


@attrs.frozen(eq=False)
class Bars:
    """Bars in canonical form.

    ``frame``: ``DatetimeIndex`` named ``ts`` (tz UTC, strictly increasing, bar open) and
    float64 columns ``open, high, low, close`` plus optional ``volume``/``spread``.
    ``timeframe`` is the bar length (``"15min"``); ``pip_size`` the price of one pip;
    ``source`` a human description of where the bars came from; ``findings`` the validation
    warnings kept for ``data inspect`` and the run record.
    """

    frame: pd.DataFrame
    timeframe: str
    pip_size: float
    symbol: str = ""
    source: str = ""
    findings: tuple[Finding, ...] = ()

    def __attrs_post_init__(self) -> None:
        idx = self.frame.index
        missing = [c for c in PRICE_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"Bars frame lacks columns {missing}")
        twice = sorted({str(c) for c in self.frame.columns[self.frame.columns.duplicated()]})
        if twice:  # a feature reading one of them would read both (and the column hashes one)
            raise ValueError(f"Bars frame has columns named twice: {twice}")
        if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None or str(idx.tz) != "UTC":
            raise ValueError("Bars frame must be indexed by a UTC DatetimeIndex of bar opens")
        problem = timestamp_order_problem(idx)
        if problem:
            raise ValueError(f"Bars timestamps must be strictly increasing: {problem}")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def start(self) -> pd.Timestamp:
        """Open of the first bar."""
        return self.frame.index[0]

    @property
    def end(self) -> pd.Timestamp:
        """Open of the last bar."""
        return self.frame.index[-1]

    def content_hash(self) -> str:
        """sha256 (first 16 hex digits) of timestamps and OHLC: identifies the data a run used."""
        h = hashlib.sha256()
        h.update(self.frame.index.as_unit("ns").asi8.tobytes())  # unit-independent
        for col in PRICE_COLUMNS:
            h.update(np.ascontiguousarray(self.frame[col].to_numpy(dtype=np.float64)).tobytes())
        return h.hexdigest()[:16]

    def column_hashes(self) -> dict[str, str]:
        """sha256 (first 16 hex digits) of each column besides OHLC (``volume``, ``spread``, a
        data source's own), by name. :meth:`content_hash` leaves them out, so that the same
        prices read with or without a volume column are one dataset for trials; a feature that
        reads one of them sees other data when its hash differs, which resume, audit and
        compare check (run.json's ``data.column_hashes``)."""
        return {str(col): _values_hash(self.frame[col]) for col in self.frame.columns if col not in PRICE_COLUMNS}

    def head(self, n_bars: int) -> Bars:
        """The first ``n_bars`` bars (used by the look-ahead audit to truncate history)."""
        return attrs.evolve(self, frame=self.frame.iloc[:n_bars])


def _values_hash(values: pd.Series) -> str:
    """16 hex digits of a column's *values*, not of how pandas stores them: numbers as float64
    (int, float32, a nullable Int64 alike; every NaN one NaN, -0.0 as 0.0), times as UTC
    nanoseconds, anything else as text (object, str, string or category alike; missing as
    missing), so one file read by another pandas version or format hashes the same."""
    kind = values.dtype.kind
    if kind in "biuf" or str(values.dtype) in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32",
                                                "UInt64", "Float32", "Float64", "boolean"):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 + 0.0 is 0.0
        numbers[np.isnan(numbers)] = np.nan  # one NaN bit pattern
        return hashlib.sha256(b"number" + np.ascontiguousarray(numbers).tobytes()).hexdigest()[:16]
    if kind == "M":
        times = pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
        return hashlib.sha256(b"time" + times.view(np.int64).tobytes()).hexdigest()[:16]
    text = pd.Series([None if pd.isna(v) else str(v) for v in values.to_numpy(dtype=object)], dtype=object)
    return hashlib.sha256(b"text" + pd.util.hash_pandas_object(text, index=False).to_numpy().tobytes()).hexdigest()[:16]


def columns_digest(hashes: dict[str, str]) -> str:
    """One hash of the column hashes (:meth:`Bars.column_hashes`), ``""`` when there are none:
    part of a run's trial (:attr:`exitcore.registry.RunRecord.trial`), so the same prices with
    another volume column are another trial, and bars of OHLC alone keep the trial they had."""
    if not hashes:
        return ""
    return hashlib.sha256(repr(sorted(hashes.items())).encode()).hexdigest()[:16]


def column_differences(then: dict[str, str] | None, now: dict[str, str]) -> str:
    """How the bars' other columns (:meth:`Bars.column_hashes`) differ between a run's record
    and now: ``"'volume' differs, 'spread' is gone"``; ``""`` when they agree or nothing was
    recorded (runs recorded before 2026-11-29 evening have no column hashes)."""
    if not isinstance(then, dict):
        return ""
    words = [f"{name!r} differs" for name in then if name in now and now[name] != then[name]]
    words += [f"{name!r} is gone" for name in then if name not in now]
    words += [f"{name!r} is new" for name in now if name not in then]
    return ", ".join(words)


@attrs.frozen(eq=False)
class Trades:
    """Trades from an entry strategy.

    ``frame`` columns: ``signal_bar`` (int64 position in the bars), ``direction`` (+1/-1),
    ``stop_dist`` and ``target_dist`` (float64 > 0, price units, from information
    ``<= signal_bar``). Extra columns (a tag, the strategy's own reason) are kept and copied
    to every ledger (the RL policy's and the baselines'), after the ledger's own columns; a
    name that is a ledger column (``pnl``, ``policy``...) is refused. Rows are sorted by
    ``signal_bar``. ``findings`` carries the strategy's warnings (e.g. rows of a trades file
    outside the data), shown by ``data inspect``.
    """

    frame: pd.DataFrame
    strategy: str = ""
    findings: tuple[Finding, ...] = ()

    def __attrs_post_init__(self) -> None:
        missing = [c for c in TRADE_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"Trades frame lacks columns {missing}")
        # extra columns go to the ledger beside its own: a clash would overwrite one of them
        from exitcore.evaluation.ledger_schema import LEDGER_COLUMNS, OPTIONAL_COLUMNS

        not_text = [c for c in self.frame.columns if not isinstance(c, str)]
        if not_text:  # a ledger written as parquet takes text column names only
            raise ValueError(f"Trades frame has column names that are not text {not_text[:5]}: name every column")
        clash = [c for c in self.frame.columns if c not in TRADE_COLUMNS and (c in LEDGER_COLUMNS or c in OPTIONAL_COLUMNS
                                                                             or c in RESERVED_LEDGER_COLUMNS)]
        if clash:
            raise ValueError(f"Trades frame has extra columns named like ledger columns {clash}: extra columns are "
                             f"copied to the ledger, so rename them (e.g. {'strategy_' + str(clash[0])!r})")

    def __len__(self) -> int:
        return len(self.frame)


def timestamp_order_problem(index: pd.DatetimeIndex) -> str | None:
    """What is wrong with the order of ``index`` at its first offending row, or ``None`` when
    its timestamps are strictly increasing: a missing timestamp (NaT), a duplicated one or one
    before the previous row's, named by timestamp and 0-based row with what to do about it."""
    if index.is_monotonic_increasing and not index.has_duplicates and not index.hasnans:
        return None  # the common case, without the per-row work below
    missing = np.flatnonzero(index.isna())
    if len(missing):
        return f"row {missing[0]} (0-based) has no timestamp (NaT); drop it or give it its bar's open"
    ts = index.asi8
    i = int(np.flatnonzero(ts[1:] <= ts[:-1])[0]) + 1
    earlier = np.flatnonzero(ts[:i] == ts[i])
    if len(earlier):  # a repeat, not a reordering: sorting would not fix it
        return (f"{index[i]} at row {i} (0-based) is duplicated (also at row {earlier[0]}); keep one bar per "
                f"timestamp, e.g. frame[~frame.index.duplicated()]")
    return (f"{index[i]} at row {i} (0-based) comes before the previous row's {index[i - 1]}; sort the frame "
            f"by time (frame.sort_index())")


#: rows named per kind of problem by :func:`check_bars`
_ROWS_NAMED = 3


def price_problems(o: np.ndarray, h: np.ndarray, l: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """Per kind of bad OHLC value, the rows that have it, each row under its first kind only:
    ``missing`` (NaN), ``non-finite``, ``non-positive``, ``high`` (below max(open, close)),
    ``low`` (above min(open, close)). What the file loaders and :func:`check_bars` both check."""
    prices = np.stack([o, h, l, c])
    missing = np.isnan(prices).any(axis=0)
    infinite = ~missing & np.isinf(prices).any(axis=0)
    finite = ~missing & ~infinite
    nonpos = finite & (prices <= 0).any(axis=0)
    positive = finite & ~nonpos
    return {"missing": missing, "non-finite": infinite, "non-positive": nonpos,
            "high": positive & (h < np.maximum(o, c)), "low": positive & (l > np.minimum(o, c))}


def bad_optional(values: np.ndarray) -> np.ndarray:
    """Rows of a ``volume``/``spread`` column that are not a finite number >= 0."""
    return ~(np.isfinite(values) & (values >= 0))


#: how :func:`check_bars` words each kind of :func:`price_problems`
_PRICE_WORDS = {"missing": "price that is NaN", "non-finite": "price that is infinite", "non-positive": "price <= 0",
                "high": "high below max(open, close)", "low": "low above min(open, close)"}


def check_bars(bars: Bars) -> list[str]:
    """What is wrong with the values of ``bars`` (empty when nothing is).

    The checks the file loaders make on every row, for bars built any other way (a data source
    plugin, a DataFrame in memory): OHLC finite and positive, ``high >= max(open, close)``,
    ``low <= min(open, close)``, ``volume``/``spread`` finite and ``>= 0``, a usable timeframe
    and pip size, and timestamps strictly increasing (:class:`Bars` checks that when built, but
    its frame can be reordered afterwards). Each problem names its count and first rows by
    timestamp. The engine checks a data source's bars with this before anything is built on
    them; a NaN price would otherwise surface only as a diverged training run.
    """
    from exitcore.config import timeframe_seconds

    problems = []
    try:
        timeframe_seconds(bars.timeframe)
    except (TypeError, ValueError) as exc:
        problems.append(f"timeframe: {exc}")
    if not (isinstance(bars.pip_size, numbers.Real) and np.isfinite(bars.pip_size) and bars.pip_size > 0):
        problems.append(f"pip_size must be a finite number > 0, got {bars.pip_size!r}")
    frame = bars.frame
    _add_order_problems(problems, frame)
    columns = [c for c in (*PRICE_COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]
    not_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])]
    if not_numeric:
        problems.append(f"columns {not_numeric} are not numeric (dtypes {[str(frame[c].dtype) for c in not_numeric]})")
        return problems
    prices = (frame[col].to_numpy(dtype=np.float64) for col in PRICE_COLUMNS)
    for kind, bad in price_problems(*prices).items():
        _add(problems, frame, bad, _PRICE_WORDS[kind])
    for name in OPTIONAL_COLUMNS:
        if name in frame.columns:
            _add(problems, frame, bad_optional(frame[name].to_numpy(dtype=np.float64)),
                 f"{name} that is not a finite number >= 0")
    return problems


def _add_order_problems(problems: list[str], frame: pd.DataFrame) -> None:
    """Duplicated and out-of-order timestamps of ``frame`` (its index checked as :class:`Bars`
    checks it when built: a frame changed since passes that check)."""
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None or str(idx.tz) != "UTC":
        problems.append(f"the frame must be indexed by a UTC DatetimeIndex of bar opens, got {type(idx).__name__}"
                        + (f" in {idx.tz}" if getattr(idx, "tz", None) is not None else ""))
        return
    if idx.is_monotonic_increasing and not idx.has_duplicates and not idx.hasnans:
        return
    missing = idx.isna()
    if missing.any():  # named by row: a NaT names no place
        rows = np.flatnonzero(missing)
        problems.append(f"{len(rows):,} bar(s) with no timestamp (NaT) (first at row "
                        f"{', '.join(str(r) for r in rows[:_ROWS_NAMED])}, 0-based)")
    ts = idx.asi8
    duplicated = idx.duplicated() & ~missing
    _add(problems, frame, duplicated, "timestamp duplicating an earlier bar's")
    before = np.zeros(len(idx), dtype=bool)
    before[1:] = (ts[1:] < ts[:-1]) & ~missing[1:] & ~missing[:-1]
    if before.any():
        problems.append(_named(frame, before, "timestamp before the previous bar's")
                        + "; the bars must be sorted by time (frame.sort_index())")


def _add(problems: list[str], frame: pd.DataFrame, bad: np.ndarray, what: str) -> None:
    if bad.any():
        problems.append(_named(frame, bad, what))


def _named(frame: pd.DataFrame, bad: np.ndarray, what: str) -> str:
    idx = np.flatnonzero(bad)
    first = ", ".join(str(frame.index[i]) for i in idx[:_ROWS_NAMED])
    return f"{len(idx):,} bar(s) with a {what} (first at {first})"


def infer_pip_size(close: pd.Series | np.ndarray) -> float:
    """0.01 for quotes around or above 20 (JPY pairs, gold), else 0.0001 (EURUSD-like)."""
    level = float(np.nanmedian(np.asarray(close, dtype=np.float64)))
    return 0.01 if level >= 20 else 0.0001
