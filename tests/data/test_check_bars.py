"""Bars built outside the file loaders (a data source plugin, a DataFrame in memory) get the
loaders' value checks: a NaN or inverted bar is refused where it enters, not found later as a
diverged training run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from exitcore.config import DataConfig
from exitcore.data.bars import Bars, check_bars
from exitcore.data.pipeline import load_bars
from exitcore.errors import DataError, ExitcoreError
from exitcore.hookspecs import hookimpl


def _frame(n: int = 12) -> pd.DataFrame:
    idx = pd.date_range("2021-03-01", periods=n, freq="15min", tz="UTC", name="ts")
    close = 1.1 + 1e-4 * np.arange(n)
    return pd.DataFrame({"open": close, "high": close + 2e-4, "low": close - 2e-4, "close": close,
                         "spread": np.full(n, 0.6)}, index=idx)


def test_good_bars_have_no_problems() -> None:
    assert check_bars(Bars(_frame(), "15min", 1e-4)) == []


@pytest.mark.parametrize(
    "column, row, value, message",
    [
        ("close", 3, np.nan, "1 bar(s) with a price that is NaN (first at 2021-03-01 00:45:00+00:00)"),
        ("open", 2, np.inf, "1 bar(s) with a price that is infinite (first at 2021-03-01 00:30:00+00:00)"),
        ("low", 4, -1.0, "1 bar(s) with a price <= 0 (first at 2021-03-01 01:00:00+00:00)"),
        ("high", 5, 1.0, "1 bar(s) with a high below max(open, close) (first at 2021-03-01 01:15:00+00:00)"),
        ("low", 6, 2.0, "1 bar(s) with a low above min(open, close) (first at 2021-03-01 01:30:00+00:00)"),
        ("spread", 7, np.nan, "1 bar(s) with a spread that is not a finite number >= 0 (first at 2021-03-01 01:45:00+00:00)"),
    ],
)
def test_each_bad_value_is_named_with_its_bar(column: str, row: int, value: float, message: str) -> None:
    frame = _frame()
    frame.iloc[row, frame.columns.get_loc(column)] = value
    assert check_bars(Bars(frame, "15min", 1e-4)) == [message]


def test_counts_and_first_rows() -> None:
    frame = _frame()
    frame.iloc[[1, 3, 5, 8], frame.columns.get_loc("high")] = 0.5
    (problem,) = check_bars(Bars(frame, "15min", 1e-4))
    assert problem.startswith("4 bar(s) with a high below max(open, close) (first at 2021-03-01 00:15:00+00:00, "
                              "2021-03-01 00:45:00+00:00, 2021-03-01 01:15:00+00:00)")


def test_timeframe_pip_size_and_column_types() -> None:
    frame = _frame()
    frame["close"] = frame["close"].astype(str)
    problems = check_bars(Bars(frame, "15m", float("nan")))
    assert check_bars(Bars(_frame(), "15min", np.float32(1e-4))) == []  # any real number type
    assert problems[0].startswith("timeframe: expected a timeframe such as '15min'")
    assert problems[1] == "pip_size must be a finite number > 0, got nan"
    assert problems[2].startswith("columns ['close'] are not numeric")


class _BadSource:
    """A data source plugin that returns a bar whose high is below its close."""

    @hookimpl
    def register_data_sources(self, register):
        def build(params):
            frame = _frame()
            frame.iloc[5, frame.columns.get_loc("high")] = 1.0
            return Bars(frame, "15min", 1e-4, source="my feed")

        register("inverted", build)


def test_a_data_source_plugins_bad_bars_are_refused_naming_the_source(make_host) -> None:
    host = make_host(_BadSource())
    with pytest.raises(DataError) as info:
        load_bars(DataConfig(source="inverted", timeframe="15min"), host)
    text = str(info.value)
    assert text.startswith("my feed: data source 'inverted' from ")
    assert "returned bad bars: 1 bar(s) with a high below max(open, close) (first at 2021-03-01 01:15:00+00:00)" in text


def test_bars_reordered_after_construction_are_reported_by_timestamp() -> None:
    # Bars checks the order when built; its frame can still be changed in place afterwards
    bars = Bars(_frame(6), "15min", 1e-4)
    ts = bars.frame.index
    bars.frame.index = ts[[0, 1, 1, 3, 2, 5]]
    assert check_bars(bars) == [
        "1 bar(s) with a timestamp duplicating an earlier bar's (first at 2021-03-01 00:15:00+00:00)",
        "1 bar(s) with a timestamp before the previous bar's (first at 2021-03-01 00:30:00+00:00); "
        "the bars must be sorted by time (frame.sort_index())",
    ]
    bars.frame.index = ts[::-1]
    (problem,) = check_bars(bars)
    assert problem.startswith("5 bar(s) with a timestamp before the previous bar's (first at 2021-03-01 01:00:00+00:00")
    bars.frame.index = pd.DatetimeIndex([ts[0], pd.NaT, *ts[2:]], name="ts")
    assert check_bars(bars) == ["1 bar(s) with no timestamp (NaT) (first at row 1, 0-based)"]
    bars.frame.index = range(6)
    assert check_bars(bars) == ["the frame must be indexed by a UTC DatetimeIndex of bar opens, got RangeIndex"]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([0, 1, 2, 2, 3], "2021-03-01 00:30:00+00:00 at row 3 (0-based) is duplicated (also at row 2); keep one bar "
                          "per timestamp, e.g. frame[~frame.index.duplicated()]"),
        ([0, 1, 3, 2, 4], "2021-03-01 00:30:00+00:00 at row 3 (0-based) comes before the previous row's "
                          "2021-03-01 00:45:00+00:00; sort the frame by time (frame.sort_index())"),
    ],
)
def test_the_bars_constructor_names_the_first_unordered_timestamp(rows: list[int], message: str) -> None:
    frame = _frame(6)
    frame = frame.iloc[rows]
    with pytest.raises(ValueError) as info:
        Bars(frame, "15min", 1e-4)
    assert str(info.value) == f"Bars timestamps must be strictly increasing: {message}"


def test_a_missing_timestamp_is_named_by_row() -> None:
    frame = _frame(3)
    frame.index = pd.DatetimeIndex([frame.index[0], pd.NaT, frame.index[2]], name="ts")
    with pytest.raises(ValueError, match=r"strictly increasing: row 1 \(0-based\) has no timestamp \(NaT\)"):
        Bars(frame, "15min", 1e-4)


class _UnsortedSource:
    """A data source plugin that builds Bars from rows in the wrong order."""

    @hookimpl
    def register_data_sources(self, register):
        register("unsorted", lambda params: Bars(_frame().iloc[[0, 2, 1, 3]], "15min", 1e-4))


def test_a_data_source_plugins_unsorted_bars_name_the_timestamp(make_host) -> None:
    host = make_host(_UnsortedSource())
    with pytest.raises(ExitcoreError) as info:
        load_bars(DataConfig(source="unsorted", timeframe="15min"), host)
    assert ("failed: ValueError: Bars timestamps must be strictly increasing: 2021-03-01 00:15:00+00:00 at row 2 "
            "(0-based) comes before the previous row's 2021-03-01 00:30:00+00:00") in str(info.value)
