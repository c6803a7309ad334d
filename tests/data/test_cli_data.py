"""``exitcore data inspect|synth`` through the CLI: output, and every bad input -> a located message, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from exitcore.cli import cli
from exitcore.data.source_params import SynthParams
from exitcore.data.synth import generate

EXPERIMENTS = textwrap.dedent(
    """
    [defaults.ppo]
    n_envs = 16
    batch_size = 64
    n_steps = 64

    [experiments.t]
    description = "data tests"
    entry = { name = "donchian" }
    features = [{ name = "position" }, { name = "price_window", params = { window = 16 } }]
    rewards = [{ name = "pnl" }]
    """
)


@pytest.fixture
def run(tmp_path: Path):
    exp = tmp_path / "experiments.toml"
    exp.write_text(EXPERIMENTS)

    def invoke(*args: str):
        return CliRunner().invoke(cli, ["--experiments", str(exp), *args], catch_exceptions=False)

    return invoke


def _bars_csv(tmp_path: Path, years: float = 0.3, name: str = "bars.csv") -> Path:
    bars = generate(SynthParams(years=years, seed=1))
    path = tmp_path / name
    frame = bars.frame.copy()
    frame.index = frame.index.strftime("%Y-%m-%d %H:%M:%S")
    frame.rename_axis("time").to_csv(path)
    return path


def test_help_everywhere(run) -> None:
    for args in (["data", "--help"], ["data", "inspect", "--help"], ["data", "synth", "--help"]):
        res = run(*args)
        assert res.exit_code == 0 and "Usage" in res.output


def test_entry_point_modules_stay_light() -> None:
    """The modules loaded for every command (``--help`` too) import neither pandas, numpy nor torch."""
    code = (
        "import sys, exitcore.builtin.data_sources, exitcore_entries, exitcore.cli.data\n"
        "heavy = [m for m in ('pandas', 'numpy', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_synth_writes_a_loadable_file(run, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "eurusd_synth.csv.gz"
    out.parent.mkdir()
    res = run("data", "synth", "--years", "0.2", "--seed", "4", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert out.exists() and not list(out.parent.glob(".*"))  # no temporary left behind
    res = run("data", "inspect", str(out))
    assert res.exit_code == 0, res.output
    assert "csv: " in res.output and "findings     none" in res.output
    back = pd.read_csv(out, index_col="time")
    want = generate(SynthParams(years=0.2, seed=4)).frame
    assert len(back) == len(want) and (back["close"].to_numpy() == want["close"].to_numpy()).all()


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--years", "-1"], "--years: expected a finite number > 0"),
        (["--start", "2015-02-30"], "--start: expected a date"),
        (["--timeframe", "7x"], "--timeframe"),
    ],
)
def test_synth_bad_options_write_nothing(run, tmp_path: Path, args: list[str], phrase: str) -> None:
    out = tmp_path / "out" / "x.csv"
    res = run("data", "synth", "--out", str(out), *args)
    assert res.exit_code == 2 and res.output.count(phrase) == 1  # once: no problem is listed twice
    assert not out.parent.exists()  # not even the folder


def test_synth_says_how_the_symbol_reads_back(run, tmp_path: Path) -> None:
    """The symbol is read from the file name: a name without it gets a note saying how."""
    res = run("data", "synth", "--years", "0.1", "--symbol", "GBPUSD", "--out", str(tmp_path / "s.csv"))
    assert res.exit_code == 0 and "note: the file name does not give the symbol GBPUSD" in res.output
    assert "symbol       GBPUSD" in run("data", "inspect", f"{tmp_path / 's.csv'}?symbol=GBPUSD").output
    named = run("data", "synth", "--years", "0.1", "--symbol", "GBPUSD", "--out", str(tmp_path / "gbpusd_s.csv"))
    assert named.exit_code == 0 and "note:" not in named.output
    assert "symbol       GBPUSD" in run("data", "inspect", str(tmp_path / "gbpusd_s.csv")).output


def test_an_unwritable_output_is_one_error_line(run, tmp_path: Path) -> None:
    """OSErrors (read-only, full disk, a file where a folder should be) get `error:` and 2, no traceback."""
    blocker = tmp_path / "afile"
    blocker.write_text("")
    res = run("data", "synth", "--years", "0.2", "--out", str(blocker / "x.csv"))
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and "Traceback" not in res.output
    assert f"{blocker}: is a file, not a folder (--out {blocker / 'x.csv'})" in res.output
    assert blocker.read_text() == ""


def test_synth_refuses_to_overwrite_and_bad_names(run, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    out.write_text("keep me")
    res = run("data", "synth", "--years", "0.1", "--out", str(out))
    assert res.exit_code == 2 and "already exists" in res.output and out.read_text() == "keep me"
    res = run("data", "synth", "--years", "0.1", "--out", str(tmp_path / "x.xlsx"))
    assert res.exit_code == 2 and "--out: expected a .csv" in res.output


def test_inspect_with_experiment_counts_trades_per_split(run, tmp_path: Path) -> None:
    res = run("data", "inspect", "synthetic?years=0.5&seed=2", "--experiment", "t")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "experiment   t" in out and "purge gap 112 bars" in out  # max_bars 96 + lookback 16
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip().startswith(("train ", "test "))}
    assert set(rows) == {"train", "test"}
    assert int(rows["train"][-3].replace(",", "")) > 100 and rows["train"][-1] == "16"
    assert "purge gap 112 bars (max_bars + feature lookback 16 = minimum)" in out
    assert 'holes        trades stay open across holes in the data (env.data_holes = "hold")' in out
    closing = run("data", "inspect", "synthetic?years=0.5&seed=2", "--experiment", "t", "--set", "env.data_holes=close")
    assert 'holes        trades close at the last bar before a hole in the data, exit reason gap (env.data_holes = "close")' in closing.output
    wider = run("data", "inspect", "synthetic?years=0.5&seed=2", "--experiment", "t", "--set", "split.purge_bars=126")
    # the gap chosen is not called the minimum
    assert "purge gap 126 bars (split.purge_bars; the minimum is max_bars + feature lookback 16 = 112)" in wider.output


def test_inspect_json(run) -> None:
    import json

    res = run("data", "inspect", "synthetic?years=0.1", "--json")
    data = json.loads(res.output)
    assert data["timeframe"] == "15min" and data["gaps"]["weekend"] >= 4


# --------------------------------------------------------------------------- bad input -> exit 2


def test_missing_file(run, tmp_path: Path) -> None:
    res = run("data", "inspect", str(tmp_path / "nope.csv"))
    assert res.exit_code == 2 and f"error: {tmp_path / 'nope.csv'}: no such file or folder" in res.output


def test_a_missing_relative_path_says_where_it_was_looked_for(run, tmp_path: Path, monkeypatch) -> None:
    """A relative path (often written in an experiments file elsewhere) is read from the current
    directory: the message names that directory."""
    monkeypatch.chdir(tmp_path)
    res = run("data", "inspect", "nope.csv")
    assert res.exit_code == 2
    assert f"error: nope.csv: no such file or folder in {tmp_path} (a relative path is read from the directory exitcore runs in)" in res.output
    res = run("data", "inspect", "csv:bars/*.csv")
    assert res.exit_code == 2 and f"no file matches this pattern in {tmp_path}" in res.output


def test_wrong_column_mapping(run, tmp_path: Path) -> None:
    path = _bars_csv(tmp_path)
    res = run("data", "inspect", f"csv:{path}?columns=close:Last")
    assert res.exit_code == 2
    assert "column 'Last' (columns.close) is not in the file" in res.output and "time, open, high" in res.output


def test_unknown_option_in_spec(run, tmp_path: Path) -> None:
    res = run("data", "inspect", f"csv:{_bars_csv(tmp_path)}?colums=close:Last")
    assert res.exit_code == 2 and "error: SOURCE ?colums=: unknown key 'colums' (did you mean 'columns'?)" in res.output


def test_validation_failures_all_at_once(run, tmp_path: Path) -> None:
    path = _bars_csv(tmp_path)
    lines = path.read_text().splitlines()
    f = lines[10].split(",")
    lines[10] = ",".join([f[0], f[1], str(float(f[4]) - 0.01), f[3], f[4], f[5]])  # high below the close
    lines[20] = lines[19]  # an identical duplicate: dropped, not an error
    lines[30] = lines[29].replace(lines[29].split(",")[4], "1.5")  # same time, other close: conflicting
    lines[40], lines[41] = lines[41], lines[40]  # time going backwards
    lines[50] = lines[50].replace(":00,", ":07,", 1)  # off the 15-minute grid
    lines[60] = lines[60].split(",")[0] + ",0,0,0,0,0"  # non-positive prices
    f = lines[70].split(",")
    lines[70] = ",".join([f[0], f[1], f[2], str(float(f[1]) + 0.01), f[4], f[5]])  # low above the open
    f = lines[80].split(",")
    lines[80] = ",".join([*f[:4], "inf", f[5]])  # a non-finite close
    lines[90] = "2015-01-05 yesterday," + lines[90].split(",", 1)[1]  # an unparseable time
    lines[100] = lines[100] + ",42"  # a field too many
    f = lines[110].split(",")
    lines[110] = ",".join([f[0], f[1], "abc", *f[3:]])  # text where a price belongs
    path.write_text("\n".join(lines) + "\n")
    res = run("data", "inspect", str(path))
    assert res.exit_code == 2
    out = res.output
    for line, phrase in [(11, "< max(open, close)"), (31, "duplicate timestamp"), (42, "time goes backwards"),
                         (51, "not on the 15min bar grid"), (61, "non-positive price"), (71, "> min(open, close)"),
                         (81, "non-finite price"), (91, "unparseable time"), (101, "unparseable row: expected 6 fields, saw 7"),
                         (111, "high 'abc' is not a number")]:
        assert f"bars.csv, line {line}: {phrase}" in out or (f"bars.csv, line {line}:" in out and phrase in out), (line, out)
    assert "line 21:" not in out.split("warning")[0]  # the identical duplicate is only a warning


def test_timeframe_that_cannot_be_reached(run, tmp_path: Path) -> None:
    res = run("data", "inspect", str(_bars_csv(tmp_path)), "--timeframe", "20min")
    assert res.exit_code == 2 and "error: --timeframe: cannot resample 15min bars to 20min" in res.output
    res = run("data", "inspect", str(_bars_csv(tmp_path)), "--timeframe", "5min")
    assert res.exit_code == 2 and "whole multiple of 15min" in res.output
    res = run("data", "inspect", str(_bars_csv(tmp_path)), "--timeframe", "soon")
    assert res.exit_code == 2 and "--timeframe" in res.output


def test_empty_split(run, tmp_path: Path) -> None:
    res = run("data", "inspect", "synthetic?years=0.005", "--experiment", "t")
    assert res.exit_code == 2 and "split.test: the test split is empty after the purge gap of 112 bars" in res.output


def test_split_with_too_few_trades(run) -> None:
    res = run("data", "inspect", "synthetic?years=0.05", "--experiment", "t", "--set", "ppo.n_envs=256", "--set", "ppo.batch_size=256")
    assert res.exit_code == 2
    assert "split.train:" in res.output and "but at least 256 are needed (ppo.n_envs = 256)" in res.output
    assert "train " in res.output  # the table is printed before the error


def test_histdata_without_clock(run, tmp_path: Path) -> None:
    path = tmp_path / "DAT_ASCII_EURUSD_M1_2019.csv"
    path.write_text("20190102 000000;1.1;1.2;1.0;1.1;0\n20190102 000100;1.1;1.2;1.0;1.1;0\n")
    res = run("data", "inspect", str(path))
    assert res.exit_code == 2 and "error: SOURCE ?timezone=: required: HistData files are not in UTC" in res.output


def test_usage_errors(run) -> None:
    assert run("data", "inspect").exit_code == 2
    assert run("data", "inspect", "synthetic", "--set", "ppo.n_envs=8").exit_code == 2


def test_shipped_example_trades_are_reproducible_and_load(run, tmp_path: Path) -> None:
    """data/example_trades.csv is what scripts/make_example_trades.py writes, and maps onto the default data."""
    import runpy

    repo = Path(__file__).resolve().parents[2]
    shipped = repo / "data" / "example_trades.csv"
    module = runpy.run_path(str(repo / "scripts" / "make_example_trades.py"))
    out = tmp_path / "again.csv"
    module["example_trades"]().to_csv(out, index=False, lineterminator="\n")
    assert out.read_bytes() == shipped.read_bytes()
    res = run(
        "data", "inspect", "--experiment", "t",
        "--set", "entry.name=csv_trades", "--set", f"entry.params.path={shipped}",
        "--set", "entry.params.stop_column=stop_pips", "--set", "entry.params.target_column=target_pips",
        "--set", "entry.params.distance_unit=pips",
    )
    assert res.exit_code == 0, res.output
    assert "800 signals," in res.output


def test_synth_refuses_a_missing_folder(run, tmp_path: Path) -> None:
    out = tmp_path / "nonexist" / "dir" / "t.csv"
    res = run("data", "synth", "--years", "0.1", "--out", str(out))
    assert res.exit_code == 2
    assert f"error: {out.parent}: no such folder (--out {out}); create it first" in res.output
    assert not (tmp_path / "nonexist").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{csv}?timezone=Foo", "error: SOURCE ?timezone=: unknown clock 'Foo'"),
        ("csv:{csv}?timezone=Foo", "error: SOURCE ?timezone=: unknown clock 'Foo'"),
        ("{csv}?header=maybe", "error: SOURCE ?header=: expected true or false"),
        ("{csv}?sep=;&oops", "error: SOURCE: option 'oops' must read KEY=VALUE"),
        ("{tmp}/nothing.csv", "nothing.csv: no such file or folder (SOURCE)"),
        ("synthetic:somewhere", "error: SOURCE: this source takes no path"),
    ],
)
def test_inspect_names_its_source_argument_not_data(run, tmp_path: Path, spec: str, message: str) -> None:
    """data inspect has no --data option: its messages name the SOURCE argument and its ?KEY=."""
    res = run("data", "inspect", spec.format(csv=_bars_csv(tmp_path), tmp=tmp_path))
    assert res.exit_code == 2 and message in res.output and "--data" not in res.output


def test_inspect_names_the_default_timeframe_it_resamples_to(run, tmp_path: Path) -> None:
    res = run("data", "inspect", "synthetic?timeframe=1h&years=0.05")
    assert res.exit_code == 2
    assert "error: --timeframe (default 15min): cannot resample 1h bars to 15min" in res.output


def test_run_still_names_its_data_option(tmp_path: Path, make_host) -> None:
    import exitcore.builtin.data_sources as builtin_data
    from exitcore.data.pipeline import data_config_from_spec
    from exitcore.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--data\.bogus: unknown key 'bogus'"):
        data_config_from_spec(f"{_bars_csv(tmp_path)}?bogus=1", make_host(builtin_data))


def test_a_folder_of_m15_and_m1_files_is_refused_naming_each(run, tmp_path: Path) -> None:
    """A user's trial: the M15 file's bars were loaded as 1-minute bars (`bars 104,629 at 1min`)
    with a wrong warning about short holes inside the resampled bars."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, params in [("eurusd_m15.csv", SynthParams(years=0.1, seed=1)),
                         ("eurusd_m1.csv", SynthParams(years=0.02, seed=2, timeframe="1min", start="2016-01-04"))]:
        frame = generate(params).frame.copy()
        frame.index = frame.index.strftime("%Y-%m-%d %H:%M:%S")
        frame.rename_axis("time").to_csv(folder / name)
    res = run("data", "inspect", str(folder))
    assert res.exit_code == 2, res.output
    assert (f"{folder / 'eurusd_m15.csv'} has 15min bars; {folder / 'eurusd_m1.csv'} has 1min bars. Files of one data "
            "set must share a bar length") in res.output


def _joined_csv(tmp_path: Path) -> Path:
    """Two synthetic data sets two years apart in one file."""
    frames = [generate(SynthParams(years=0.3, seed=1, start=start)).frame for start in ("2015-01-05", "2017-01-02")]
    frame = pd.concat(frames)
    frame.index = frame.index.strftime("%Y-%m-%d %H:%M:%S")
    path = tmp_path / "joined.csv"
    frame.rename_axis("time").to_csv(path)
    return path


def test_a_hole_of_years_is_warned_about_not_counted_as_a_weekend(run, tmp_path: Path) -> None:
    """2006-2010 joined with 2018-2020 said `369 over a weekend`, the 7-year hole among them, and
    a run on it said nothing."""
    path = _joined_csv(tmp_path)
    res = run("data", "inspect", str(path))
    assert res.exit_code == 0, res.output
    gaps = next(line for line in res.output.splitlines() if line.startswith("gaps"))
    assert "1 longer than 7 days (see the findings)" in gaps
    assert "warning: csv: " in res.output
    assert "a hole of 618.4 days in the data, between the bars of 2015-04-24 13:45 and 2017-01-02 00:00 UTC" in res.output
    # run prints it as a warning line before it builds anything (here: too few trades for 4,096 envs)
    res = run("run", "t", "--data", str(path), "--set", "ppo.n_envs=4096", "--runs-dir", str(tmp_path / "runs"))
    assert res.exit_code == 2 and "split.train:" in res.output, res.output
    assert "warning: csv: " in res.output and "a hole of 618.4 days in the data" in res.output


@pytest.mark.parametrize("prefix", ["", "dukascopy:"])
def test_a_bad_path_is_named_as_given_with_or_without_a_source_prefix(run, tmp_path: Path, prefix: str) -> None:
    """`data inspect dukascopy:FOLDER` ended its error with `(data.params.path)`, `data inspect
    FOLDER` with `(SOURCE)`, as docs/data.md says."""
    missing = tmp_path / "missing"
    res = run("data", "inspect", f"{prefix}{missing}")
    assert res.exit_code == 2 and res.output == f"error: {missing}: no such file or folder (SOURCE)\n", res.output
    res = run("run", "t", "--data", f"{prefix}{missing}", "--runs-dir", str(tmp_path / "runs"))
    assert res.exit_code == 2 and f"error: {missing}: no such file or folder (--data)\n" in res.output, res.output
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "readme.md").write_text("no data here\n")
    res = run("data", "inspect", f"dukascopy:{empty}")
    assert res.exit_code == 2, res.output
    assert res.output.endswith(f"{empty}: the folder holds no data files (.csv, .txt, .zip, .gz, .bz2, .xz) (SOURCE)\n"), res.output


def test_a_row_going_back_in_time_still_shows_the_corrupt_price(run, tmp_path: Path) -> None:
    """User trial: with the row at 00:07 the bar length came out as 7min, every row was off its
    grid and the corrupt price on line 4 went unreported."""
    path = tmp_path / "bad3.csv"
    path.write_text("time,open,high,low,close\n2020-01-01T00:00,1.1,1.2,1.0,1.15\n2020-01-01T00:15,1.1,1.2,1.0,1.15\n"
                    "2020-01-01T00:30,11,12,10,11.5\n2020-01-01T00:07,1.1,1.2,1.0,1.15\n")
    res = run("data", "inspect", str(path))
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        f"error: csv: {path}: 4 problems in the data; nothing was loaded",
        f"  error: {path}, line 5: timestamp 2020-01-01 00:07 is not on the 15min bar grid",
        f"  error: {path}, line 5: time goes backwards: 2020-01-01 00:07 UTC comes after 2020-01-01 00:30 UTC ({path}, line 4)",
        f"  error: {path}, line 4: price 10.4 times off the previous bar's close 1.15 (2020-01-01 00:15 UTC, {path}, "
        "line 3): a misplaced decimal point or a corrupt row, not a market move (open=11.0, high=12.0, low=10.0, close=11.5)",
        f"  error: {path}, line 5: price 11.5 times off the previous bar's close 11.5 (2020-01-01 00:30 UTC, {path}, "
        "line 4): a misplaced decimal point or a corrupt row, not a market move (open=1.1, high=1.2, low=1.0, close=1.15)",
    ]


def test_a_source_timeframe_taken_for_resampling_is_one_message(run, tmp_path: Path) -> None:
    """``?timeframe=1h`` on 15-minute bars printed thousands of grid errors, one per row."""
    path = _bars_csv(tmp_path)
    n = len(path.read_text().splitlines()) - 1
    off = sum(1 for line in path.read_text().splitlines()[1:] if not line[14:16] == "00")
    res = run("data", "inspect", f"{path}?timeframe=1h")
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        f"error: csv: {path}: 1 problem in the data; nothing was loaded",
        f"  error: {path}: {off:,} of {n:,} timestamps are not on the 1h bar grid: the bars are 15min apart, but "
        "timeframe=1h was given, and a source's timeframe is the file's own bar length (leave it \"auto\" or set 15min); "
        'to resample the bars to 1h, set data.timeframe = "1h" (exitcore run: --set data.timeframe=1h; '
        "exitcore data inspect: --timeframe 1h)",
    ]
    res = run("data", "inspect", str(path), "--timeframe", "1h")  # what it says works
    assert res.exit_code == 0 and "at 1h" in res.output, res.output
