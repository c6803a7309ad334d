"""File clocks (local wall time -> UTC), the --data grammar, and fast timestamp parsing."""

from __future__ import annotations

import datetime as dt
import os

import attrs
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exitcore.data.clocks import FixedClock, ZoneClock, parse_clock, to_utc
from exitcore.data.source_params import CsvParams, SynthParams
from exitcore.data.spec import parse_spec, spec_params
from exitcore.data.timeparse import NAT, parse_datetimes
from exitcore.errors import ConfigError


def _ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


# --------------------------------------------------------------------------- clocks


@pytest.mark.parametrize(
    ("text", "piece"),
    [
        ("UTC", FixedClock(0)),
        ("gmt", FixedClock(0)),
        ("UTC-5", FixedClock(-300)),
        ("UTC+05:30", FixedClock(330)),
        ("UTC+2,US", FixedClock(120, "US")),
        ("UTC-5,eu", FixedClock(-300, "EU")),
        ("America/New_York", ZoneClock("America/New_York")),
    ],
)
def test_parse_clock_pieces(text: str, piece: object) -> None:
    clock = parse_clock(text)
    assert clock.pieces == ((None, piece),)


@pytest.mark.parametrize("bad", ["", "Mars/Olympus", "UTC+15", "UTC+2,XX", "UTC;2019-01-01", "UTC;2019-13-01=UTC", "UTC;2019-02-01=UTC;2019-01-01=UTC-5"])
def test_parse_clock_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_clock(bad)


def test_fixed_offset_converts() -> None:
    utc, bad = to_utc(np.array([_ns("2019-06-01T12:00")]), parse_clock("UTC+2"))
    assert utc[0] == _ns("2019-06-01T10:00") and not bad.any()


def test_us_rule_matches_new_york_zone() -> None:
    """UTC-5,US is America/New_York (both US DST regimes since 1987), switch hours included."""
    local = np.arange(_ns("1987-01-01"), _ns("2030-01-01"), 3_600_000_000_000 * 7 + 60_000_000_000, dtype=np.int64)
    ours, bad_ours = to_utc(local, parse_clock("UTC-5,US"))
    zone, bad_zone = to_utc(local, parse_clock("America/New_York"))
    np.testing.assert_array_equal(bad_ours, bad_zone)
    np.testing.assert_array_equal(ours[~bad_ours], zone[~bad_zone])


def test_eu_rule_switches_at_one_utc() -> None:
    clock = parse_clock("UTC-5,EU")
    # 2019: EU summer time from 2019-03-31 01:00 UTC to 2019-10-27 01:00 UTC
    local = np.array([_ns(t) for t in ("2019-03-30T19:59", "2019-03-31T17:00", "2019-10-26T19:30", "2019-10-27T17:00")])
    utc, bad = to_utc(local, clock)
    assert list(utc) == [_ns(t) for t in ("2019-03-31T00:59", "2019-03-31T21:00", "2019-10-26T23:30", "2019-10-27T22:00")]
    assert not bad.any()
    # the hour before 01:00 UTC on the switch night happens twice on this clock
    _, bad = to_utc(np.array([_ns("2019-10-26T20:30")]), clock)
    assert bad.all()


def test_switch_hours_are_reported_not_shifted() -> None:
    # 2018-11-04 01:30 happens twice in New York; 2018-03-11 02:30 never happens
    local = np.array([_ns("2018-11-04T01:30"), _ns("2018-03-11T02:30"), _ns("2018-06-01T00:00")])
    for text in ("America/New_York", "UTC-5,US"):
        _, bad = to_utc(local, parse_clock(text))
        assert list(bad) == [True, True, False], text


def test_piecewise_clock() -> None:
    clock = parse_clock("America/New_York;2019-01-01=UTC-5,EU")
    local = np.array([_ns("2018-07-02T12:00"), _ns("2019-03-25T12:00"), _ns("2019-04-02T12:00"), NAT])
    utc, bad = to_utc(local, clock)
    assert list(utc[:3]) == [_ns("2018-07-02T16:00"), _ns("2019-03-25T17:00"), _ns("2019-04-02T16:00")]
    assert utc[3] == NAT and not bad.any()


# --------------------------------------------------------------------------- --data grammar


def test_parse_spec_parts() -> None:
    s = parse_spec("histdata:dir/*EUR?USD*.zip?timezone=UTC-5,EU&symbol=EURUSD")
    assert (s.source, s.path) == ("histdata", "dir/*EUR?USD*.zip")  # a glob's '?' is not the query
    assert s.options == {"timezone": "UTC-5,EU", "symbol": "EURUSD"}
    assert parse_spec("C:/data/x.csv").source == ""  # a drive letter is not a source
    assert parse_spec("synthetic?years=2").path == "synthetic"
    assert parse_spec("csv:a.csv?sep=%3B").options == {"sep": ";"}


def test_spec_params_are_typed(tmp_path, monkeypatch) -> None:
    got = spec_params(parse_spec("synthetic:?years=2.5&seed=7&vol_of_vol=0.1,0.2"), SynthParams)
    assert got == {"years": 2.5, "seed": 7, "vol_of_vol": ["0.1", "0.2"]}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text("")
    got = spec_params(parse_spec("csv:x.csv?columns=time:Date,close:Last&header=false"), CsvParams)
    # a local path is made absolute: a run's frozen config must find the data from any directory
    assert got == {"path": str(tmp_path / "x.csv"), "columns": {"time": "Date", "close": "Last"}, "header": False}
    assert spec_params(parse_spec("csv:*.csv"), CsvParams)["path"] == str(tmp_path / "*.csv")  # a glob with matches
    # what names no local file (missing, a URL) is kept as written, for the source to judge
    assert spec_params(parse_spec("csv:missing.csv"), CsvParams)["path"] == "missing.csv"


@pytest.mark.parametrize(
    ("spec", "where", "message"),
    [
        ("csv:x.csv?colums=time:a", "--data.colums", "did you mean 'columns'"),
        ("csv:x.csv?tz=UTC", "--data.tz", "did you mean 'timezone'"),  # too short for a spelling match (trial W)
        ("synthetic:?seed=one", "--data.seed", "expected an integer"),
        ("csv:x.csv?header=maybe", "--data.header", "expected true or false"),
        ("csv:x.csv?sep=;&oops", "--data", "KEY=VALUE"),
        ("synthetic:somewhere", "--data", "takes no path"),
    ],
)
def test_spec_errors_name_the_key(spec: str, where: str, message: str) -> None:
    cls = SynthParams if spec.startswith("synthetic") else CsvParams
    with pytest.raises(ConfigError) as info:
        spec_params(parse_spec(spec), cls)
    assert info.value.problems[0][0] == where
    assert message in info.value.problems[0][1]


def test_options_given_as_a_path_get_the_query_hint() -> None:
    # a path-less source with "KEY=VALUE" where its path would be: options go after a "?"
    with pytest.raises(ConfigError) as info:
        spec_params(parse_spec("synthetic:seed=3,years=1"), SynthParams)
    assert info.value.problems == [("--data", "this source takes no path, got 'seed=3,years=1'; options go after "
                                              "a '?': SOURCE:?KEY=VALUE&KEY=VALUE")]
    with pytest.raises(ConfigError) as info:  # a path that is no option gets no hint
        spec_params(parse_spec("synthetic:somewhere"), SynthParams)
    assert info.value.problems == [("--data", "this source takes no path, got 'somewhere'")]


def test_params_validators() -> None:
    with pytest.raises(ValueError, match="unknown column key"):
        CsvParams(path="x", columns={"tim": "a"})
    with pytest.raises(ValueError, match="timezone"):
        CsvParams(path="x", timezone="Nowhere/Land")
    assert attrs.evolve(SynthParams(), years=0.5).years == 0.5


# --------------------------------------------------------------------------- fast parsing


@settings(max_examples=60, deadline=None)
@given(st.lists(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 12, 31)), min_size=1, max_size=30))
def test_fast_parser_matches_pandas(values: list[dt.datetime]) -> None:
    for fmt in ("%Y%m%d %H%M%S", "%d.%m.%Y %H:%M:%S.%f", "%Y.%m.%d %H:%M"):
        text = pd.Series([v.strftime(fmt.replace("%f", "000")) for v in values], dtype="str")
        want = pd.to_datetime(text, format=fmt).dt.as_unit("ns").to_numpy().view(np.int64)
        np.testing.assert_array_equal(parse_datetimes(text, fmt), want)


def test_fast_parser_rejects_bad_dates() -> None:
    text = pd.Series(["20190230 120000", "20191301 000000", "2019010 1120000", "20190101 246000", None, "20190101 235959"])
    got = parse_datetimes(text, "%Y%m%d %H%M%S")
    assert list(got[:5]) == [NAT] * 5
    assert got[5] == _ns("2019-01-01T23:59:59")


def test_fast_parser_leaves_non_ascii_times_unparsed_instead_of_failing() -> None:
    """A thin space in one time cell (or a binary row) raised UnicodeEncodeError from the byte
    view, reported with no file or line; now those rows go to the pandas fallback like any
    other that does not fit the layout (which reads a thin space as a space), and what it
    cannot parse is NaT, which the loader names with its line."""
    text = pd.Series(["20190101 120000", "20190101\u2009121500", "\x00\xff\xfe", "20190101 123000"])
    got = parse_datetimes(text, "%Y%m%d %H%M%S")
    want = pd.to_datetime(text, format="%Y%m%d %H%M%S", errors="coerce").dt.as_unit("ns").to_numpy().view(np.int64)
    np.testing.assert_array_equal(got, want)
    assert got[2] == NAT and got[3] == _ns("2019-01-01T12:30:00")
