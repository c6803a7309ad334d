"""The entry strategies' implementations (imported when an experiment builds one).

Each factory returns ``strategy(bars: Bars) -> Trades``. Everything is vectorised over bars;
every value at bar ``s`` is computed from bars ``<= s`` (rolling windows end at ``s``, the
breakout level is shifted by one bar, averages and ATR are causal recursions), so running a
strategy on bars truncated after ``s`` yields the same trades up to ``s`` - which the
look-ahead audit and this package's tests check.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from exitcore.data.bars import Bars, Finding, Trades
from exitcore.errors import DataError


def atr(bars: Bars, period: int) -> np.ndarray:
    """Wilder's ATR at each bar's close (the engine's definition, :func:`exitcore.episodes.wilder_atr`)."""
    from exitcore.episodes import wilder_atr

    f = bars.frame
    return wilder_atr(
        f["high"].to_numpy(dtype=np.float64), f["low"].to_numpy(dtype=np.float64), f["close"].to_numpy(dtype=np.float64), period
    )


def _trades(signal: np.ndarray, direction: np.ndarray, a: np.ndarray, params: Any, name: str) -> Trades:
    """Trades at the bars where ``signal`` is set, with stop/target = multiples of ATR there."""
    usable = signal & np.isfinite(a) & (a > 0)
    s = np.flatnonzero(usable)
    frame = pd.DataFrame(
        {
            "signal_bar": s.astype(np.int64),
            "direction": direction[s].astype(np.int64),
            "stop_dist": params.stop_atr * a[s],
            "target_dist": params.target_atr * a[s],
        }
    )
    return Trades(frame=frame, strategy=name)


def _allowed(direction: np.ndarray, which: str) -> np.ndarray:
    if which == "long":
        return direction > 0
    if which == "short":
        return direction < 0
    return direction != 0


def donchian(params: Any, ctx: Any) -> Any:
    """Donchian breakout on the first bar that closes outside the prior ``period``-bar channel."""

    def strategy(bars: Bars) -> Trades:
        f = bars.frame
        high, low, close = (f[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close"))
        # the channel of the `period` bars *before* each bar (shift 1: bar s is not its own level)
        upper = pd.Series(high).rolling(params.period).max().shift(1).to_numpy()
        lower = pd.Series(low).rolling(params.period).min().shift(1).to_numpy()
        up = close > upper  # NaN compares False: no signal during warm-up
        down = close < lower
        prev_up = np.r_[True, up[:-1]]  # bar 0 has no predecessor: never a "first" breakout
        prev_down = np.r_[True, down[:-1]]
        direction = np.where(up & ~prev_up, 1, np.where(down & ~prev_down, -1, 0))
        direction[: max(params.period + 1, params.atr_period)] = 0
        signal = _allowed(direction, params.direction) & (direction != 0)
        if params.cooldown:
            # a breakout (either side) within `cooldown` bars before silences this one
            cand = np.flatnonzero(direction != 0)
            quiet = np.r_[True, np.diff(cand) > params.cooldown]
            keep = np.zeros_like(signal)
            keep[cand[quiet]] = True
            signal &= keep
        return _trades(signal, direction, atr(bars, params.atr_period), params, "donchian")

    return strategy


def ma_cross(params: Any, ctx: Any) -> Any:
    """Moving-average cross: a signal on the bar where fast - slow changes sign."""

    def strategy(bars: Bars) -> Trades:
        close = pd.Series(bars.frame["close"].to_numpy(dtype=np.float64))
        if params.kind == "ema":
            fast = close.ewm(span=params.fast, adjust=False).mean()
            slow = close.ewm(span=params.slow, adjust=False).mean()
        else:
            fast = close.rolling(params.fast).mean()
            slow = close.rolling(params.slow).mean()
        diff = (fast - slow).to_numpy()
        prev = np.r_[np.nan, diff[:-1]]
        direction = np.where((diff > 0) & (prev <= 0), 1, np.where((diff < 0) & (prev >= 0), -1, 0))
        direction[: max(params.slow, params.atr_period)] = 0
        signal = _allowed(direction, params.direction) & (direction != 0)
        return _trades(signal, direction, atr(bars, params.atr_period), params, "ma_cross")

    return strategy


# --------------------------------------------------------------------------- csv_trades

_LONG = {"1", "+1", "1.0", "+1.0", "long", "buy", "l", "b"}
_SHORT = {"-1", "-1.0", "short", "sell", "s"}


def csv_trades(params: Any, ctx: Any) -> Any:
    """Trades read from a CSV file and mapped onto the bars (see ``CsvTradesParams``)."""

    def strategy(bars: Bars) -> Trades:
        return read_trades(params, bars)

    return strategy


def read_trades(params: Any, bars: Bars) -> Trades:
    """Read, validate and map the trades file of ``params`` onto ``bars``.

    Every bad row (unparseable time, a time inside the data that is not a bar open, an
    unknown direction, a non-positive distance) is reported at once with its file and line;
    rows outside the data's span are skipped and counted in a warning.
    """
    from exitcore.data.clocks import parse_clock, to_utc
    from exitcore.data.files import expand_paths, read_delimited, text_members
    from exitcore.data.formats.generic import parse_times
    from exitcore.data.validate import DataValidationError, format_ts

    ts = bars.frame.index.as_unit("ns").asi8
    a = atr(bars, params.atr_period)
    clock = parse_clock(params.timezone)
    errors: list[Finding] = []
    parts: list[pd.DataFrame] = []
    skipped = 0
    for path in expand_paths(params.path, key="entry.params.path"):
        for member in text_members(path):
            table = read_delimited(member, sep=params.sep, header=True, dtype=str)
            frame, line = table.frame, table.line
            errors.extend(table.findings)
            needed = {"time_column": params.time_column, "direction_column": params.direction_column}
            needed.update({k: getattr(params, k) for k in ("stop_column", "target_column") if getattr(params, k)})
            for key, col in needed.items():
                if col not in frame.columns:
                    raise DataError(
                        f"{member.display}: no column {col!r} (entry.params.{key}); "
                        f"the file's columns are: {', '.join(map(str, frame.columns))}"
                    )
            where = [f"{member.display}, line {ln}" for ln in line]
            t, bad, tf, is_utc = parse_times(frame[params.time_column], params.time_format, member, line)
            errors.extend(tf)
            if not is_utc and not clock.is_utc:
                t, amb = to_utc(t, clock)
                for i in np.flatnonzero(amb & ~bad):
                    errors.append(Finding("error", where[i], f"time {frame[params.time_column].iloc[i]!r} is ambiguous on clock {clock}"))
                bad |= amb
            raw_dir = frame[params.direction_column].fillna("").str.strip().str.lower()
            direction = np.where(raw_dir.isin(_LONG), 1, np.where(raw_dir.isin(_SHORT), -1, 0))
            for i in np.flatnonzero(direction == 0):
                errors.append(
                    Finding("error", where[i], f"direction {frame[params.direction_column].iloc[i]!r} is not +1/-1, long/short or buy/sell")
                )
            pos = np.searchsorted(ts, t)
            inside = ~bad & (t >= ts[0]) & (t <= ts[-1]) if len(ts) else np.zeros(len(t), dtype=bool)
            on_bar = inside & (ts[np.minimum(pos, len(ts) - 1)] == t)
            for i in np.flatnonzero(inside & ~on_bar):
                nearest = ts[min(pos[i], len(ts) - 1)]
                errors.append(
                    Finding("error", where[i], f"time {format_ts(t[i])} UTC is not the open of a {bars.timeframe} bar "
                            f"(the next bar opens at {format_ts(nearest)} UTC)")
                )
            signal = pos - 1 if params.time_is == "entry" else pos
            use = on_bar & (signal >= 0)
            skipped += int((~bad & ~inside).sum() + (on_bar & (signal < 0)).sum())
            s = np.where(use, signal, 0)
            stop = _distance(frame, params.stop_column, params.stop_atr, params, a, s, bars.pip_size, where, errors, "stop")
            target = _distance(frame, params.target_column, params.target_atr, params, a, s, bars.pip_size, where, errors, "target")
            ok = use & (direction != 0) & np.isfinite(stop) & (stop > 0) & np.isfinite(target) & (target > 0)
            parts.append(
                pd.DataFrame(
                    {
                        "signal_bar": s[ok].astype(np.int64),
                        "direction": direction[ok].astype(np.int64),
                        "stop_dist": stop[ok],
                        "target_dist": target[ok],
                        "csv_line": line[ok],
                    }
                )
            )
    if errors:
        kinds = ["error:trades"] * len(errors)
        raise DataValidationError(f"csv_trades: {params.path}", errors, {"error:trades": len(errors)}, kinds)
    frame = pd.concat(parts, ignore_index=True).sort_values("signal_bar", kind="stable", ignore_index=True)
    findings = ()
    if skipped:
        findings = (Finding("warning", params.path, f"{skipped} trade(s) lie outside the data ({bars.start} .. {bars.end}) and were skipped"),)
    if frame.empty:
        raise DataError(f"{params.path}: no trade falls inside the data ({bars.start} .. {bars.end})")
    return Trades(frame=frame, strategy="csv_trades", findings=findings)


def _distance(
    frame: pd.DataFrame,
    column: str,
    atr_mult: float,
    params: Any,
    a: np.ndarray,
    s: np.ndarray,
    pip: float,
    where: list[str],
    errors: list[Finding],
    what: str,
) -> np.ndarray:
    """Stop/target distance in price units per row: from ``column`` (in ``distance_unit``) or ATR."""
    if not column:
        return atr_mult * a[s]
    raw = frame[column]
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    for i in np.flatnonzero(~(np.isfinite(num) & (num > 0))):
        errors.append(Finding("error", where[i], f"{what} distance {raw.iloc[i]!r} is not a number > 0"))
    scale = {"price": 1.0, "pips": pip}.get(params.distance_unit)
    return num * scale if scale is not None else num * a[s]
