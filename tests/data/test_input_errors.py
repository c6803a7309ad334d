"""Bad data inputs found in a user walkthrough: each message says what is wrong with the value
the user gave, and where."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import exitcore.builtin.data_sources as builtin_data
from exitcore.cli import cli
from exitcore.data.pipeline import data_config_from_spec, load_bars
from exitcore.errors import ConfigError, DataError

HEADER = "time,open,high,low,close\n"
ROW = ",1.1,1.2,1.0,1.1\n"


@pytest.fixture
def host(make_host):
    return make_host(builtin_data)


def _load(spec: str, host):
    return load_bars(data_config_from_spec(spec, host), host)


@pytest.mark.parametrize("fmt", ["", "?time_format=%Y-%m-%dT%H:%M:%S%z"])
def test_a_time_that_is_no_time_is_unparseable_not_a_missing_utc_offset(tmp_path: Path, host, fmt: str) -> None:
    path = tmp_path / "bars.csv"
    times = ["2019-03-04T00:00:00Z", "2019-03-04T00:15:00Z", "garbage", "2019-03-04T00:45:00Z"]
    path.write_text(HEADER + "".join(t + ROW for t in times))
    with pytest.raises(DataError) as info:
        _load(str(path) + fmt, host)
    assert f"{path}, line 4: unparseable time 'garbage' (expected " in str(info.value)
    assert "UTC offset" not in str(info.value)


def test_a_readable_time_without_an_offset_among_offset_times_is_still_named(tmp_path: Path, host) -> None:
    path = tmp_path / "bars.csv"
    times = ["2019-03-04T00:00:00Z", "garbage", "2019-03-04 00:30:00", "2019-03-04T00:45:00Z"]
    path.write_text(HEADER + "".join(t + ROW for t in times))
    with pytest.raises(DataError, match=r"bars\.csv, line 4: some times carry a UTC offset and some do not \('2019-03-04 00:30:00'\)"):
        _load(str(path), host)


@pytest.mark.parametrize(
    "timeframe, message",
    [
        ("X", "error: --timeframe: expected a timeframe such as '15min', '1h' or '1D', got 'X'\n"),
        ("auto", "error: --timeframe: the generator has no data to infer a timeframe from ('auto'); "
                 "give one such as '15min', '1h' or '1D'\n"),
    ],
)
def test_synth_timeframe_errors_do_not_offer_auto(tmp_path: Path, timeframe: str, message: str) -> None:
    res = CliRunner().invoke(cli, ["data", "synth", "--out", str(tmp_path / "x.csv"), "--timeframe", timeframe])
    assert res.exit_code == 2 and res.output == message


def test_the_synthetic_source_refuses_auto_by_its_key(host) -> None:
    with pytest.raises(ConfigError, match=r"timeframe: the generator has no data to infer a timeframe from"):
        data_config_from_spec("synthetic?timeframe=auto", host)


def test_a_utf16_bar_file_is_named_as_such(tmp_path: Path, host) -> None:
    # what Windows tools write when asked for "Unicode" text: no source recognises it
    lines = ["time,open,high,low,close", "2024-01-08 00:00,1.1,1.2,1.0,1.1", "2024-01-08 00:15,1.1,1.2,1.0,1.1"]
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-16")
    with pytest.raises(DataError, match=r"bars\.csv: the file is UTF-16 text \(it starts with a byte-order mark\); save it as UTF-8"):
        data_config_from_spec(str(path), host)
