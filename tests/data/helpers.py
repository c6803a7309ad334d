"""Small self-made bar series and files for the data tests."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from exitcore.data.bars import Bars
from exitcore.data.validate import RawChunk

MIN_NS = 60_000_000_000
T0 = int(np.datetime64("2019-01-07T00:00", "ns").astype(np.int64))  # a Monday


def random_ohlc(n: int, rng: np.random.Generator, start: float = 1.1) -> dict[str, np.ndarray]:
    """Valid OHLC (5 decimals) following a random walk."""
    close = np.round(start + np.cumsum(rng.normal(0, 2e-4, n)), 5)
    open_ = np.round(np.r_[start, close[:-1]] + rng.normal(0, 5e-5, n), 5)
    high = np.round(np.maximum(open_, close) + np.abs(rng.normal(0, 1e-4, n)), 5)
    low = np.round(np.minimum(open_, close) - np.abs(rng.normal(0, 1e-4, n)), 5)
    return {"open": open_, "high": high, "low": low, "close": close}


def grid_times(n: int, rng: np.random.Generator, step_ns: int = MIN_NS, hole_p: float = 0.1) -> np.ndarray:
    """``n`` increasing timestamps on a grid of ``step_ns`` with random holes."""
    steps = rng.geometric(1 - hole_p, n) if hole_p > 0 else np.ones(n, dtype=np.int64)
    return T0 + np.cumsum(steps).astype(np.int64) * step_ns


def chunk(ts: np.ndarray, values: dict[str, np.ndarray], display: str = "bars.csv", first_line: int = 2) -> RawChunk:
    """A parsed chunk as a loader would produce it (UTC times, lines from ``first_line``)."""
    n = len(ts)
    return RawChunk(
        display=display,
        local_ns=np.asarray(ts, dtype=np.int64),
        values={k: np.asarray(v, dtype=np.float64) for k, v in values.items()},
        line=np.arange(first_line, first_line + n, dtype=np.int64),
        bad=np.zeros(n, dtype=bool),
    )


def bars_from(ts: np.ndarray, values: dict[str, np.ndarray], timeframe: str = "1min") -> Bars:
    """Canonical bars from arrays."""
    index = pd.DatetimeIndex(np.asarray(ts).astype("datetime64[ns]"), name="ts").tz_localize("UTC")
    return Bars(frame=pd.DataFrame(values, index=index), timeframe=timeframe, pip_size=0.0001)


def write_csv(path: Path, ts: np.ndarray, values: dict[str, np.ndarray], header: str = "time,open,high,low,close") -> Path:
    """A generic CSV with ISO times (no offset)."""
    lines = [header]
    times = pd.DatetimeIndex(np.asarray(ts).astype("datetime64[ns]")).strftime("%Y-%m-%d %H:%M:%S")
    for i, t in enumerate(times):
        lines.append(",".join([t] + [repr(float(values[k][i])) for k in ("open", "high", "low", "close")]))
    path.write_text("\n".join(lines) + "\n")
    return path


_WHERE = re.compile(r"(?:line|row) (\d+)$")


def lines_of(findings, level: str = "error") -> dict[int, list[str]]:
    """``{line: [messages]}`` of the findings at ``level``."""
    out: dict[int, list[str]] = {}
    for f in findings:
        if f.level != level:
            continue
        m = _WHERE.search(f.where)
        if m:
            out.setdefault(int(m.group(1)), []).append(f.message)
    return out
