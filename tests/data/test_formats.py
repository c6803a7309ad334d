"""Every file layout, read from small self-made files: sniffing, parsing, clocks, compression."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import exitcore.builtin.data_sources as builtin_data
from exitcore.config import DataConfig
from exitcore.data.pipeline import data_config_from_spec, load_bars, sniff_source
from exitcore.errors import ConfigError, DataError

ROWS = [  # (UTC open, O, H, L, C)
    ("2019-03-04 00:00", 1.13500, 1.13550, 1.13480, 1.13530),
    ("2019-03-04 00:15", 1.13530, 1.13600, 1.13520, 1.13590),
    ("2019-03-04 00:30", 1.13590, 1.13610, 1.13400, 1.13420),
    ("2019-03-04 00:45", 1.13420, 1.13450, 1.13410, 1.13440),
]


@pytest.fixture
def host(make_host):
    return make_host(builtin_data)


def _load(spec: str, host) -> pd.DataFrame:
    return load_bars(data_config_from_spec(spec, host), host)


def _expect(bars, shift_hours: float = 0.0) -> None:
    want = pd.DatetimeIndex([r[0] for r in ROWS]).tz_localize("UTC")
    assert list(bars.frame.index) == list(want)
    np.testing.assert_array_equal(bars.frame["close"].to_numpy(), [r[4] for r in ROWS])
    assert bars.frame["open"].dtype == np.float64


def _local(hours: float, fmt: str) -> list[str]:
    return [(pd.Timestamp(r[0]) + pd.Timedelta(hours=hours)).strftime(fmt) for r in ROWS]


def test_dukascopy_gmt_time(tmp_path: Path, host) -> None:
    text = "Gmt time,Open,High,Low,Close,Volume\r\n" + "\r\n".join(
        f"{t}.000,{o},{h},{l},{c},{1e9 + i}" for i, (t, (_, o, h, l, c)) in enumerate(zip(_local(0, "%d.%m.%Y %H:%M:%S"), ROWS))
    )  # CRLF and no newline at the end, like the real files
    path = tmp_path / "EURUSD_15_m_BID_2019.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    comp, params = sniff_source(str(path), host)
    assert comp.name == "dukascopy" and params == {"path": str(path)}
    bars = _load(str(path), host)
    _expect(bars)
    assert bars.symbol == "EURUSD" and "volume" in bars.frame


def test_dukascopy_local_time_with_offsets(tmp_path: Path, host) -> None:
    lines = [f"{t}.000 GMT+0100,{o},{h},{l},{c},1" for t, (_, o, h, l, c) in zip(_local(1, "%d.%m.%Y %H:%M:%S"), ROWS)]
    path = tmp_path / "x.csv"
    path.write_text("Local time,Open,High,Low,Close,Volume\n" + "\n".join(lines) + "\n")
    _expect(_load(str(path), host))


def test_tickstory_layout_with_clock(tmp_path: Path, host) -> None:
    lines = [f"{t},{o},{h},{l},{c},2.5" for t, (_, o, h, l, c) in zip(_local(2, "%Y%m%d,%H:%M:%S"), ROWS)]
    path = tmp_path / "EURUSD_M15.csv"
    path.write_text("Date,Timestamp,Open,High,Low,Close,Volume\n" + "\n".join(lines) + "\n")
    _expect(_load(f"{path}?timezone=UTC+2", host))


def test_dukascopy_gmt_file_refuses_another_clock(tmp_path: Path, host) -> None:
    path = tmp_path / "x.csv"
    path.write_text("Gmt time,Open,High,Low,Close,Volume\n04.03.2019 00:00:00.000,1,1,1,1,1\n")
    with pytest.raises(DataError, match="says 'Gmt time'"):
        _load(f"{path}?timezone=UTC+1", host)


def _histdata_text(hours: float) -> str:
    return "\n".join(f"{t};{o:.6f};{h:.6f};{l:.6f};{c:.6f};0" for t, (_, o, h, l, c) in zip(_local(hours, "%Y%m%d %H%M%S"), ROWS)) + "\n"


def test_histdata_zip_with_status_file_and_clock(tmp_path: Path, host) -> None:
    path = tmp_path / "HISTDATA_COM_ASCII_EURUSD_M12019.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("DAT_ASCII_EURUSD_M1_2019.csv", _histdata_text(-5))  # 2019-03-04: UTC-5 under both rules
        zf.writestr("DAT_ASCII_EURUSD_M1_2019.txt", "HistData.com status report\nnot data\n")
    bars = _load(f"{path}?timezone=UTC-5,EU", host)
    _expect(bars)
    assert "volume" not in bars.frame  # always 0 in HistData files: dropped
    with pytest.raises(ConfigError, match="timezone: required"):
        data_config_from_spec(str(path), host)


@pytest.mark.parametrize("header", [False, True])
def test_metatrader_layouts(tmp_path: Path, host, header: bool) -> None:
    if header:  # MT5: tab-separated, <...> names, seconds, spread in points
        lines = ["<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"] + [
            f"{d}\t{t}\t{o}\t{h}\t{l}\t{c}\t100\t0\t12" for (d, t), (_, o, h, l, c) in zip((s.split() for s in _local(2, "%Y.%m.%d %H:%M:%S")), ROWS)
        ]
    else:  # MT4: no header, commas, HH:MM
        lines = [f"{t},{o},{h},{l},{c},100" for t, (_, o, h, l, c) in zip(_local(2, "%Y.%m.%d,%H:%M"), ROWS)]
    path = tmp_path / "EURUSD15.csv"
    path.write_text("\n".join(lines) + "\n")
    assert sniff_source(str(path), host)[0].name == "metatrader"
    bars = _load(f"{path}?timezone=UTC+2,US", host)
    _expect(bars)
    if header:
        assert bars.frame["spread"].tolist() == [1.2] * 4
    no_clock = _load(str(path), host)
    assert any("broker time" in f.message for f in no_clock.findings)


def test_generic_csv_with_mapping_folder_and_glob(tmp_path: Path, host) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    for k, rows in ((0, ROWS[:2]), (1, ROWS[2:])):
        body = "\n".join(f"{c};{h};{l};{o};{t.replace(' ', 'T')}+00:00" for t, o, h, l, c in rows)
        (folder / f"part{k}.txt").write_text("Last;Hi;Lo;First;When\n" + body + "\n")
    spec = f"csv:{folder}?sep=;&columns=time:When,open:First,high:Hi,low:Lo,close:Last"
    _expect(_load(spec, host))
    _expect(_load(spec.replace(str(folder), str(folder / "part*.txt")), host))
    with pytest.raises(DataError, match=r"column 'Clos' \(columns.close\) is not in the file"):
        _load(spec.replace("close:Last", "close:Clos"), host)


def test_generic_csv_sniffed_by_header_names_and_unix_times(tmp_path: Path, host) -> None:
    secs = [int(pd.Timestamp(r[0], tz="UTC").timestamp()) for r in ROWS]
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low,close\n" + "\n".join(f"{s},{o},{h},{l},{c}" for s, (_, o, h, l, c) in zip(secs, ROWS)))
    comp, params = sniff_source(f"{path}?time_format=unix_s", host)
    assert comp.name == "csv" and params["time_format"] == "unix_s"
    _expect(_load(f"{path}?time_format=unix_s", host))


def test_parquet(tmp_path: Path, host) -> None:
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(
        {"Open": [r[1] for r in ROWS], "High": [r[2] for r in ROWS], "Low": [r[3] for r in ROWS], "Close": [r[4] for r in ROWS]},
        # stored on a Berlin clock: the offset travels with the dtype and wins over `timezone`
        index=pd.DatetimeIndex([r[0] for r in ROWS], name="time").tz_localize("UTC").tz_convert("Europe/Berlin"),
    )
    path = tmp_path / "eurusd.parquet"
    frame.to_parquet(path)
    assert sniff_source(str(path), host)[0].name == "parquet"
    _expect(_load(str(path), host))


def test_synthetic_spec(host) -> None:
    cfg = data_config_from_spec("synthetic?years=0.05&seed=3", host, base=DataConfig(timeframe="1h"))
    assert (cfg.source, cfg.params, cfg.timeframe) == ("synthetic", {"years": 0.05, "seed": 3}, "1h")
    bars = load_bars(cfg, host)
    assert bars.timeframe == "1h" and 250 < len(bars) < 500


@pytest.mark.parametrize(
    ("spec", "phrase"),
    [
        ("{tmp}/missing.csv", "missing.csv: no such file or folder"),
        ("csv:{tmp}/missing*.csv", "no file matches this pattern"),
        ("{tmp}/notes.txt", "no data source recognises"),
        ("nosuch:{tmp}/x.csv", "unknown data_source 'nosuch'"),
        ("{tmp}/empty", "empty: the folder holds no data files"),
        ("{tmp}/bars.csv.gz", "bars.csv.gz: not a readable gzip file"),
    ],
)
def test_unusable_specs(tmp_path: Path, host, spec: str, phrase: str) -> None:
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bars.csv.gz").write_text("time,open,high,low,close\n")  # named .gz, but plain text
    with pytest.raises((DataError, ConfigError), match=phrase):
        _load(spec.format(tmp=tmp_path), host)


def test_bad_lines_are_located(tmp_path: Path, host) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "time,open,high,low,close\n"
        "2019-03-04 00:00,1.1,1.2,1.0,1.1\n"
        "2019-03-04 00:15,1.1,1.2,1.0,1.1,99\n"  # a field too many: skipped by pandas, reported here
        "2019-03-04 00:30,1.1,abc,1.0,1.1\n"
        "yesterday,1.1,1.2,1.0,1.1\n"
        "2019-03-04 01:00,1.1,1.2,1.0,1.1\n"
    )
    with pytest.raises(DataError) as info:
        _load(str(path), host)
    text = str(info.value)
    assert "bad.csv, line 3: unparseable row" in text
    assert "bad.csv, line 4: high 'abc' is not a number" in text
    assert "bad.csv, line 5: unparseable time 'yesterday'" in text
    assert "line 6" not in text


def test_generic_csv_without_header_by_position(tmp_path: Path, host) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("\n".join(f"{c},{o},{h},{l},{t}" for t, o, h, l, c in ROWS) + "\n")
    _expect(_load(f"csv:{path}?header=false&columns=time:4,open:1,high:2,low:3,close:0", host))
    with pytest.raises(DataError, match=r"columns.time = '9' must be a 0-based field position below 5"):
        _load(f"csv:{path}?header=false&columns=time:9,open:1,high:2,low:3,close:0", host)


def test_auto_source_sniffs_the_experiment_path(tmp_path: Path, host) -> None:
    path = tmp_path / "EURUSD_M15.csv"
    lines = [f"{t},{o},{h},{l},{c},2.5" for t, (_, o, h, l, c) in zip(_local(0, "%Y%m%d,%H:%M:%S"), ROWS)]
    path.write_text("Date,Timestamp,Open,High,Low,Close,Volume\n" + "\n".join(lines) + "\n")
    _expect(load_bars(DataConfig(source="auto", params={"path": str(path), "symbol": "X"}), host))
    with pytest.raises(ConfigError, match=r"data.params.path: required when source = 'auto'"):
        load_bars(DataConfig(source="auto"), host)


# --- rows with too few fields are unparseable rows, like rows with too many


def _layout_lines(layout: str, n: int = 40) -> tuple[list[str], str, str]:
    """``(lines, file name, spec options)`` of ``n`` M15 rows of six fields in one layout (a
    header first where the layout has one)."""
    times = pd.date_range("2019-03-04", periods=n, freq="15min")
    prices = [(1.1 + i * 1e-4, 1.1005 + i * 1e-4, 1.0995 + i * 1e-4, 1.1002 + i * 1e-4, 1000.5 + i) for i in range(n)]
    if layout == "dukascopy":
        rows = [f"{t:%d.%m.%Y %H:%M:%S}.000,{o:.5f},{h:.5f},{l:.5f},{c:.5f},{v}" for t, (o, h, l, c, v) in zip(times, prices)]
        return ["Gmt time,Open,High,Low,Close,Volume", *rows], "EURUSD_15_m_BID_2019.csv", ""
    if layout == "histdata":
        rows = [f"{t:%Y%m%d %H%M%S};{o:.6f};{h:.6f};{l:.6f};{c:.6f};0" for t, (o, h, l, c, v) in zip(times, prices)]
        return rows, "DAT_ASCII_EURUSD_M1_2019.csv", "?timezone=UTC"
    if layout == "metatrader":  # MT4, no header
        rows = [f"{t:%Y.%m.%d,%H:%M},{o:.5f},{h:.5f},{l:.5f},{c:.5f},{v}" for t, (o, h, l, c, v) in zip(times, prices)]
        return rows, "EURUSD15.csv", "?timezone=UTC"
    rows = [f"{t:%Y-%m-%d %H:%M:%S},{o:.5f},{h:.5f},{l:.5f},{c:.5f},{v}" for t, (o, h, l, c, v) in zip(times, prices)]
    return ["time,open,high,low,close,volume", *rows], "bars.csv", ""


def _drop_field(line: str, sep: str, k: int) -> str:
    fields = line.split(sep)
    return sep.join(fields[:k] + fields[k + 1:])


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("layout", ["dukascopy", "histdata", "metatrader", "csv"])
def test_a_row_with_too_few_fields_is_an_unparseable_row(tmp_path: Path, host, layout: str, crlf: bool) -> None:
    """A user deleted one field of a Dukascopy row: it was read padded with NaN and reported as
    `high 1.46021 < max(open, close) 3937546977.9968004` and `volume nan ...`."""
    lines, name, options = _layout_lines(layout)
    sep = ";" if layout == "histdata" else ","
    lines[9] = _drop_field(lines[9], sep, len(lines[9].split(sep)) - 4)  # line 10: the high (or open) gone
    lines[19] = _drop_field(lines[19], sep, len(lines[19].split(sep)) - 1)  # line 20: only the volume gone
    lines[24] += sep + "7"  # line 25: a field too many (already reported)
    lines[29] = lines[29].replace(lines[29].split(sep)[-3], "abc")  # line 30: still located after them
    path = tmp_path / name
    eol = "\r\n" if crlf else "\n"
    path.write_bytes(eol.join(lines).encode())  # no line break at the end, like Dukascopy's files
    with pytest.raises(DataError) as info:
        _load(str(path) + options, host)
    text = str(info.value)
    expected = len(lines[0].split(sep))
    assert f"{name}, line 10: unparseable row: expected {expected} fields, saw {expected - 1}" in text
    assert f"{name}, line 20: unparseable row: expected {expected} fields, saw {expected - 1}" in text
    assert f"{name}, line 25: unparseable row: expected {expected} fields, saw {expected + 1}" in text
    assert f"{name}, line 30: low 'abc' is not a number" in text
    assert "4 problems" in text, text  # nothing else: no missing price, no NaN volume


def test_an_empty_last_field_is_a_missing_value_not_a_missing_field(tmp_path: Path, host) -> None:
    lines, name, _ = _layout_lines("csv")
    lines[9] = lines[9].rsplit(",", 1)[0] + ","  # the volume left empty: six fields
    (tmp_path / name).write_text("\n".join(lines) + "\n\n")  # a blank line at the end is no row
    with pytest.raises(DataError) as info:
        _load(str(tmp_path / name), host)
    assert f"{name}, line 10: volume nan is not a finite number >= 0" in str(info.value)
    assert "unparseable row" not in str(info.value)


@pytest.mark.parametrize(
    "raw, counts",
    [
        (b"a,b,c\n1,2,3\n\n1,2\n1,2,3,4\n1,2,\n", [3, 3, 0, 2, 4, 3]),
        (b"a,b,c\r\n1,2\r\n\r\n1,2,3", [3, 2, 0, 3]),  # CRLF, no final line break
        (b"a,b,c\r1,2\r1,2,3\r", [3, 2, 3]),  # old Mac line breaks
        (b'a,b,c\n"1,5",2,3\n"x\ny",2\n', [3, 3, 2]),  # quoted separators and line breaks
        (b"", []),
    ],
)
def test_fields_per_line(raw: bytes, counts: list[int]) -> None:
    from exitcore.data.files import fields_per_line

    assert fields_per_line(raw, ",").tolist() == counts


def test_a_header_naming_a_column_no_row_has_reports_every_row(tmp_path: Path, host) -> None:
    """Every row one field short (more rows than findings are kept): each is counted, and the
    message says so rather than `no bars in the data`."""
    times = pd.date_range("2019-03-04", periods=1500, freq="15min")
    path = tmp_path / "novolume.csv"
    path.write_text("time,open,high,low,close,volume\n" + "".join(f"{t:%Y-%m-%d %H:%M},1.1,1.2,1.0,1.1\n" for t in times))
    with pytest.raises(DataError) as info:
        _load(str(path), host)
    text = str(info.value)
    assert "1,500 problems" in text and "novolume.csv, line 2: unparseable row: expected 6 fields, saw 5" in text
    assert "... and 1,480 more problems of the same kind (parse)" in text


def test_a_folder_mixing_formats_says_so(tmp_path: Path, host) -> None:
    """A Tickstory .csv.gz beside a HistData .zip: the source sniffed from the first file failed
    on the second with `no 'open' column in the header (20180101 170000, ...)`."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    tickstory = "Date,Timestamp,Open,High,Low,Close,Volume\r\n" + "".join(
        f"{t},{o},{h},{l},{c},1\r\n" for t, (_, o, h, l, c) in zip(_local(0, "%Y%m%d,%H:%M:%S"), ROWS))
    (folder / "EURUSD_M15.csv.gz").write_bytes(gzip.compress(tickstory.encode()))
    with zipfile.ZipFile(folder / "HISTDATA_COM_ASCII_EURUSD_M12019.zip", "w") as zf:
        zf.writestr("DAT_ASCII_EURUSD_M1_2019.csv", _histdata_text(-5))
    for spec in (str(folder), f"dukascopy:{folder}"):
        with pytest.raises(DataError) as info:
            _load(spec, host)
        assert str(info.value).startswith(
            f"{folder / 'HISTDATA_COM_ASCII_EURUSD_M12019.zip'}[DAT_ASCII_EURUSD_M1_2019.csv]: not a Dukascopy or "
            f"Tickstory file (its first line is '20190303 190000;1.135000;1.135500;1.134800;1.135300;0'), unlike "
            f"{folder / 'EURUSD_M15.csv.gz'}: the files mix formats; load each format separately"), str(info.value)


def test_a_header_ending_in_a_separator_still_loads_and_quotes_turn_the_count_off(tmp_path):
    """`time,open,high,low,close,volume,` over 6-field rows loaded before the field count (pandas
    named the 7th column and padded it); then every row was "expected 7 fields, saw 6". And a
    stray quote inside a field made the count drop a full row and keep a short one."""
    from exitcore.data.files import TextMember, read_delimited

    rows = "".join(f"2019-03-04T00:{15 * i:02d}:00Z,1.1,1.2,1.0,1.15,{i}\n" for i in range(4))
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("time,open,high,low,close,volume,\n" + rows)
    table = read_delimited(TextMember(str(trailing), trailing), sep=",", header=True)
    assert not table.findings and len(table.frame) == 4
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('a,b,c\n1,2,3\n4,x"y,6\n7,8\n9,10,11\n')
    table = read_delimited(TextMember(str(quoted), quoted), sep=",", header=True)
    assert not any("line 3" in f.where for f in table.findings)  # a full row is never dropped for a quote
