"""Validation: every problem reported at once, with file and line; gaps described, not rejected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exitcore.data.clocks import parse_clock
from exitcore.data.validate import DataValidationError, assemble_bars, gap_report
from exitcore.errors import DataError
from .helpers import MIN_NS, chunk, grid_times, lines_of, random_ohlc

UTC = parse_clock("UTC")

#: injected corruption -> (how to apply it to row i, the phrase its message contains)
CORRUPTIONS = {
    # just below the larger / above the smaller of open and close: the sharpest violation
    "high": (lambda v, ts, i: v["high"].__setitem__(i, max(v["open"][i], v["close"][i]) - 1e-5), "< max(open, close)"),
    "low": (lambda v, ts, i: v["low"].__setitem__(i, min(v["open"][i], v["close"][i]) + 1e-5), "> min(open, close)"),
    "nonpositive": (lambda v, ts, i: v["low"].__setitem__(i, -abs(v["low"][i])), "non-positive price"),
    "nonfinite": (lambda v, ts, i: v["close"].__setitem__(i, np.inf), "non-finite price"),
    "missing": (lambda v, ts, i: v["open"].__setitem__(i, np.nan), "missing price"),
    "offgrid": (lambda v, ts, i: ts.__setitem__(i, ts[i] + 30_000_000_000), "not on the 1min bar grid"),
}


def _assemble(chunks, **kw):
    return assemble_bars(chunks, clock=UTC, source="test", **{"timeframe": "1min", **kw})


def test_clean_data_passes() -> None:
    rng = np.random.default_rng(0)
    ts = grid_times(500, rng)
    bars = _assemble([chunk(ts, random_ohlc(500, rng))])
    assert len(bars) == 500 and bars.timeframe == "1min" and bars.findings == ()
    assert bars.frame.index.unit == "ns" and str(bars.frame.index.tz) == "UTC"


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(20, 300),
    seed=st.integers(0, 2**31),
    picks=st.lists(st.tuples(st.floats(0, 0.999), st.sampled_from(sorted(CORRUPTIONS))), min_size=1, max_size=12),
)
def test_every_injected_problem_is_reported_at_its_line(n: int, seed: int, picks: list) -> None:
    """Inject corruptions at random rows: exactly those lines are reported, with the right problem."""
    rng = np.random.default_rng(seed)
    ts = grid_times(n, rng)
    values = random_ohlc(n, rng)
    expected: dict[int, str] = {}
    for frac, kind in picks:
        i = int(frac * n)
        if (i + 2) in expected:
            continue  # one corruption per row keeps the expectation exact
        CORRUPTIONS[kind][0](values, ts, i)
        expected[i + 2] = CORRUPTIONS[kind][1]  # data starts on line 2 (after the header)
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, values)])
    reported = lines_of(info.value.findings)
    assert set(reported) == set(expected)
    for line, phrase in expected.items():
        assert any(phrase in m for m in reported[line]), (line, reported[line])
    assert "bars.csv, line" in str(info.value)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(5, 200), seed=st.integers(0, 2**31), k=st.integers(1, 5))
def test_identical_duplicates_are_dropped_and_counted(n: int, seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    ts = grid_times(n, rng)
    values = random_ohlc(n, rng)
    rows = np.sort(rng.choice(n, size=min(k, n), replace=False))
    # a repeated block right after the originals (HistData 2019's shape: time steps back once)
    ts2 = np.r_[ts, ts[rows]]
    values2 = {c: np.r_[v, v[rows]] for c, v in values.items()}
    order = np.r_[np.arange(rows[-1] + 1), np.arange(n, n + len(rows)), np.arange(rows[-1] + 1, n)]
    bars = _assemble([chunk(ts2[order], {c: v[order] for c, v in values2.items()})])
    assert len(bars) == n
    np.testing.assert_array_equal(bars.frame.index.asi8, ts)
    (warning,) = [f for f in bars.findings if "repeat an earlier row" in f.message]
    assert warning.message.startswith(f"{len(rows)} row(s)")


def test_conflicting_duplicate_names_both_rows() -> None:
    rng = np.random.default_rng(1)
    ts = grid_times(10, rng, hole_p=0)
    values = random_ohlc(10, rng)
    ts = np.r_[ts[:5], ts[4], ts[5:]]
    values = {c: np.r_[v[:5], v[4] + (1e-4 if c in ("close", "high") else 0), v[5:]] for c, v in values.items()}
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, values)])
    (msg,) = lines_of(info.value.findings)[7]
    assert "duplicate timestamp" in msg and "bars.csv, line 6" in msg


def test_time_going_backwards_is_an_error() -> None:
    rng = np.random.default_rng(2)
    ts = grid_times(10, rng, hole_p=0)
    ts[[3, 4]] = ts[[4, 3]]
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, random_ohlc(10, rng))])
    assert "time goes backwards" in lines_of(info.value.findings)[6][0]


def test_files_are_ordered_by_time_and_overlaps_detected() -> None:
    rng = np.random.default_rng(3)
    ts = grid_times(20, rng, hole_p=0)
    v = random_ohlc(20, rng)
    late = chunk(ts[10:], {c: x[10:] for c, x in v.items()}, display="2020.csv")
    early = chunk(ts[:11], {c: x[:11] for c, x in v.items()}, display="2019.csv")  # shares one identical bar
    bars = _assemble([late, early])
    np.testing.assert_array_equal(bars.frame.index.asi8, ts)
    overlap = chunk(ts[5:15] + 1, {c: x[5:15] for c, x in v.items()}, display="bad.csv")  # 1 ns off: off grid
    with pytest.raises(DataValidationError, match="bad.csv, line 2"):
        _assemble([early, overlap])


def test_unparseable_rows_from_the_parser_are_reported_once() -> None:
    rng = np.random.default_rng(4)
    ts = grid_times(6, rng)
    c = chunk(ts, random_ohlc(6, rng))
    c.bad[2] = True
    c.local_ns[2] = np.iinfo(np.int64).min
    from exitcore.data.bars import Finding

    c.findings.append(Finding("error", "bars.csv, line 4", "unparseable time 'x'"))
    with pytest.raises(DataValidationError) as info:
        _assemble([c])
    assert lines_of(info.value.findings) == {4: ["unparseable time 'x'"]}


def test_message_caps_repeated_problems_but_counts_them_all() -> None:
    rng = np.random.default_rng(5)
    ts = grid_times(200, rng)
    v = random_ohlc(200, rng)
    v["close"][:] = -1.0
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, v)])
    text = str(info.value)
    assert "... and 180 more rows with the same problem (non-positive)" in text
    assert info.value.counts["error:non-positive"] == 200


def test_timeframe_is_inferred() -> None:
    rng = np.random.default_rng(6)
    ts = grid_times(300, rng, step_ns=15 * MIN_NS)
    bars = assemble_bars([chunk(ts, random_ohlc(300, rng))], clock=UTC, source="t")
    assert bars.timeframe == "15min"


def test_gap_report() -> None:
    rng = np.random.default_rng(7)
    ts = np.r_[np.arange(10), np.arange(13, 20), np.arange(20 + 60 * 24 * 2, 20 + 60 * 24 * 2 + 5)] * MIN_NS
    ts = ts + int(np.datetime64("2019-01-11T20:00", "ns").astype(np.int64))  # a Friday evening
    bars = _assemble([chunk(ts, random_ohlc(len(ts), rng))])
    g = gap_report(bars, max_gap_bars=4)
    assert (g.count, g.weekend, g.over_limit, g.over_limit_weekday) == (2, 1, 1, 0)
    assert g.longest_bars == 60 * 24 * 2 and "2 gaps" in g.describe()


@pytest.mark.parametrize(("column", "factor"), [("close", 1e300), ("high", 10.0), ("low", 0.1), ("open", 6.0)])
def test_a_price_far_off_its_neighbour_is_refused_at_its_line(column: str, factor: float) -> None:
    """A misplaced decimal point or a corrupt row (a close of 1e300 trained, then failed in
    evaluation with "feature 'price_window' returned non-finite values" and no location)."""
    rng = np.random.default_rng(3)
    ts = grid_times(50, rng, hole_p=0)
    values = random_ohlc(50, rng)
    values[column][20] *= factor
    if column in ("close", "open"):  # keep the bar's own high/low consistent with it
        values["high"][20] = max(values["high"][20], values[column][20])
        values["low"][20] = min(values["low"][20], values[column][20])
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, values)])
    lines = lines_of(info.value.findings)
    assert 22 in lines, lines  # row 20's line (the rows start at line 2, after a header)
    assert any("times off the previous bar's close" in m for ms in lines.values() for m in ms), lines


def test_an_ordinary_large_move_is_not_a_jump() -> None:
    rng = np.random.default_rng(4)
    ts = grid_times(50, rng, hole_p=0)
    values = random_ohlc(50, rng)
    for k in ("open", "high", "low", "close"):  # a 30 % fall from bar 20 on (EURCHF, 2015-01-15)
        values[k][20:] *= 0.7
    values["high"][20] = max(values["high"][20], values["close"][19])
    bars = _assemble([chunk(ts, values)])
    assert len(bars) == 50


# --- files of different bar lengths (a user's M15 and M1 files in one folder)


def _m15_and_m1(overlap: bool) -> list:
    """An M15 file and an M1 file, after it in time or covering the same hours."""
    rng = np.random.default_rng(8)
    ts15 = grid_times(400, rng, step_ns=15 * MIN_NS, hole_p=0)
    start = ts15[0] if overlap else ts15[-1] + 15 * MIN_NS
    ts1 = start + np.arange(1, 2001, dtype=np.int64) * MIN_NS
    return [chunk(ts15, random_ohlc(400, rng), "a.csv"), chunk(ts1, random_ohlc(2000, rng), "b.csv")]


@pytest.mark.parametrize("timeframe", ["auto", "1min"])
@pytest.mark.parametrize("overlap", [False, True])
def test_files_of_different_bar_lengths_are_refused_naming_each(timeframe: str, overlap: bool) -> None:
    """Pooled, the M15 file's bars were relabelled as 1-minute bars (every stamp is on the 1min
    grid); where the files overlap, the message comes instead of their duplicate timestamps."""
    with pytest.raises(DataError) as info:
        _assemble(_m15_and_m1(overlap), timeframe=timeframe)
    text = str(info.value)
    assert not isinstance(info.value, DataValidationError), text
    assert "a.csv has 15min bars; b.csv has 1min bars" in text and "load them separately" in text


def test_a_short_file_with_an_odd_spacing_is_not_refused() -> None:
    """A file of a few bars across a hole says nothing about its bar length: it is not compared."""
    rng = np.random.default_rng(9)
    ts = grid_times(500, rng, hole_p=0)
    tail = ts[-1] + np.array([5, 10, 15], dtype=np.int64) * MIN_NS  # three bars, 5 minutes apart
    bars = assemble_bars([chunk(ts, random_ohlc(500, rng), "a.csv"), chunk(tail, random_ohlc(3, rng), "b.csv")],
                    clock=UTC, source="t")
    assert bars.timeframe == "1min" and len(bars) == 503


# --- holes longer than a weekend (2006-2010 joined with 2018-2020 counted its 7 years as a weekend)


def _bars_around(hole_from: str, hole_to: str, n: int = 40) -> "object":
    """15-minute bars: ``n`` ending at ``hole_from``, ``n`` starting at ``hole_to``."""
    from .helpers import bars_from

    rng = np.random.default_rng(10)
    step = 15 * MIN_NS
    a = int(np.datetime64(hole_from, "ns").astype(np.int64)) - step * np.arange(n - 1, -1, -1)
    b = int(np.datetime64(hole_to, "ns").astype(np.int64)) + step * np.arange(n)
    ts = np.r_[a, b]
    return bars_from(ts, random_ohlc(len(ts), rng), timeframe="15min")


@pytest.mark.parametrize(
    "hole_from, hole_to, weekend, long",
    [
        ("2019-01-11T21:45", "2019-01-13T22:00", 1, 0),  # Friday close -> Sunday open
        ("2018-03-29T20:45", "2018-04-01T22:00", 1, 0),  # Good Friday beside it (XAUUSD): 3 days
        ("2019-01-09T21:45", "2019-01-14T22:00", 0, 0),  # Wednesday -> Monday: an outage, not a weekend
        ("2010-12-31T21:45", "2018-01-15T14:00", 0, 1),  # two data sets joined: 7 years
    ],
)
def test_only_a_hole_of_weekend_length_is_over_a_weekend(hole_from: str, hole_to: str, weekend: int, long: int) -> None:
    g = gap_report(_bars_around(hole_from, hole_to), max_gap_bars=4)
    assert (g.count, g.weekend, g.over_limit_weekday, g.long_holes) == (1, weekend, 1 - weekend, long)
    assert ("longer than 7 days" in g.describe()) == bool(long)


def test_a_hole_longer_than_a_week_is_a_warning_naming_it() -> None:
    from exitcore.data.validate import LongHole, long_hole_findings

    assert long_hole_findings(_bars_around("2019-01-11T21:45", "2019-01-13T22:00")) == []
    (f,) = long_hole_findings(_bars_around("2010-12-31T21:45", "2018-01-15T14:00"))
    assert isinstance(f, LongHole) and f.level == "warning"
    assert "a hole of 2,571.7 days in the data, between the bars of 2010-12-31 21:45 and 2018-01-15 14:00 UTC" in f.message
    assert "Load the data sets separately" in f.message


# --- a row going back in time (user trial: the bar length came out as 7min from 00:00, 00:07, 00:15)


def _back_in_time() -> list:
    """bad3.csv of the user trial: 15-minute bars, a corrupt price (line 4), then a row at 00:07."""
    t0 = int(np.datetime64("2020-01-01T00:00", "ns").astype(np.int64))
    ts = t0 + np.array([0, 15, 30, 7], dtype=np.int64) * MIN_NS
    v = {"open": [1.1, 1.1, 11, 1.1], "high": [1.2, 1.2, 12, 1.2], "low": [1.0, 1.0, 10, 1.0], "close": [1.15, 1.15, 11.5, 1.15]}
    return [chunk(ts, {k: np.array(x, dtype=np.float64) for k, x in v.items()})]


def test_a_row_going_back_in_time_neither_sets_the_bar_length_nor_hides_a_price() -> None:
    """The bar length is the most common step forward in file order (15min), so only the row that
    goes back is off the grid, and the corrupt price before it is still reported."""
    with pytest.raises(DataValidationError) as info:
        assemble_bars(_back_in_time(), clock=UTC, source="test")
    assert [str(f) for f in info.value.findings] == [
        "error: bars.csv, line 5: timestamp 2020-01-01 00:07 is not on the 15min bar grid",
        "error: bars.csv, line 5: time goes backwards: 2020-01-01 00:07 UTC comes after 2020-01-01 00:30 UTC "
        "(bars.csv, line 4)",
        "error: bars.csv, line 4: price 10.4 times off the previous bar's close 1.15 (2020-01-01 00:15 UTC, "
        "bars.csv, line 3): a misplaced decimal point or a corrupt row, not a market move "
        "(open=11.0, high=12.0, low=10.0, close=11.5)",
        "error: bars.csv, line 5: price 11.5 times off the previous bar's close 11.5 (2020-01-01 00:30 UTC, "
        "bars.csv, line 4): a misplaced decimal point or a corrupt row, not a market move "
        "(open=1.1, high=1.2, low=1.0, close=1.15)",
    ]


def test_a_swapped_pair_of_rows_keeps_the_bar_length() -> None:
    rng = np.random.default_rng(11)
    ts = grid_times(6, rng, step_ns=15 * MIN_NS, hole_p=0)
    ts[[2, 3]] = ts[[3, 2]]
    with pytest.raises(DataValidationError) as info:
        assemble_bars([chunk(ts, random_ohlc(6, rng))], clock=UTC, source="test")
    assert set(info.value.counts) == {"error:backwards"}, str(info.value)


def test_a_jump_is_reported_beside_other_problems_skipping_rows_without_prices() -> None:
    """Before, any other error (a row off the grid, a missing price) silenced the jump check."""
    rng = np.random.default_rng(12)
    ts = grid_times(30, rng, hole_p=0)
    values = random_ohlc(30, rng)
    ts[5] += 30_000_000_000  # off the 1min grid
    values["open"][10] = np.nan  # a missing price: not compared, and not compared with
    for k in ("open", "high", "low", "close"):
        values[k][20] *= 10
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, values)])
    lines = lines_of(info.value.findings)
    assert sorted(lines) == [7, 12, 22, 23], lines
    assert "times off the previous bar's close" in lines[22][0] and "times off the previous bar's close" in lines[23][0]


# --- a source timeframe that is not the file's bar length (taken for the one to resample to)


@pytest.mark.parametrize(("timeframe", "off", "resample"), [
    ("1h", 75, '; to resample the bars to 1h, set data.timeframe = "1h" (exitcore run: --set data.timeframe=1h; '
               "exitcore data inspect: --timeframe 1h)"),
    ("30min", 50, '; to resample the bars to 30min, set data.timeframe = "30min" (exitcore run: --set '
                  "data.timeframe=30min; exitcore data inspect: --timeframe 30min)"),
    ("10min", 50, ""),  # 15min bars cannot be resampled to 10min: no such advice
])
def test_a_wrong_source_timeframe_is_one_message(timeframe: str, off: int, resample: str) -> None:
    rng = np.random.default_rng(13)
    ts = int(np.datetime64("2020-01-06T00:00", "ns").astype(np.int64)) + np.arange(100, dtype=np.int64) * 15 * MIN_NS
    values = random_ohlc(100, rng)
    values["close"][50] = -1.0  # the rows are still checked
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, values)], timeframe=timeframe)
    assert [str(f) for f in info.value.findings] == [
        f"error: bars.csv: {off} of 100 timestamps are not on the {timeframe} bar grid: the bars are 15min apart, "
        f'but timeframe={timeframe} was given, and a source\'s timeframe is the file\'s own bar length (leave it "auto" '
        f"or set 15min){resample}",
        "error: bars.csv, line 52: non-positive price ("
        + ", ".join(f"{k}={float(values[k][50])!r}" for k in ("open", "high", "low", "close")) + ")",
    ]
    assert info.value.counts == {"error:timeframe": 1, "error:non-positive": 1}
    assert str(info.value).startswith("test: 2 problems in the data; nothing was loaded\n  error: bars.csv: ")


@pytest.mark.parametrize("timeframe", ["1min", "5min"])
def test_a_source_timeframe_finer_than_the_file_is_one_message(timeframe: str) -> None:
    """Every M15 stamp is on the 1min grid, so nothing was off it: the bars loaded as 1min bars
    with a 14-bar hole after each one (a trial's finding)."""
    rng = np.random.default_rng(15)
    ts = grid_times(100, rng, step_ns=15 * MIN_NS, hole_p=0.05)
    n_steps = int((np.diff(ts) == 15 * MIN_NS).sum())
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, random_ohlc(100, rng))], timeframe=timeframe)
    holes = 15 // int(timeframe.removesuffix("min")) - 1
    assert [str(f) for f in info.value.findings] == [
        f"error: bars.csv: timeframe={timeframe} was given, but {n_steps} of 99 steps between the bars are 15min: a "
        f'source\'s timeframe is the file\'s own bar length (leave it "auto" or set 15min); read as {timeframe} bars, '
        f"every bar would be followed by a hole of {holes} missing bars (bars are never split or interpolated, so "
        "the data cannot be made finer)"]
    # the file's own length, and sparse bars of the given length, load as before
    assert _assemble([chunk(ts, random_ohlc(100, rng))], timeframe="15min").timeframe == "15min"
    sparse = grid_times(100, rng, step_ns=MIN_NS, hole_p=0.3)
    assert _assemble([chunk(sparse, random_ohlc(100, rng))], timeframe="1min").timeframe == "1min"


def test_a_few_rows_off_a_given_timeframe_are_each_reported() -> None:
    rng = np.random.default_rng(14)
    ts = grid_times(100, rng, step_ns=15 * MIN_NS, hole_p=0)
    ts[[10, 40]] += 7 * MIN_NS
    with pytest.raises(DataValidationError) as info:
        _assemble([chunk(ts, random_ohlc(100, rng))], timeframe="15min")
    assert info.value.counts == {"error:grid": 2}
    assert sorted(lines_of(info.value.findings)) == [12, 42]
