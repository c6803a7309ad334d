"""The data findings a run recorded when it read its bars (run.json's ``data.findings``: a hole
between two joined data sets, dropped duplicates, partly filled resampled bars, ...) are shown
again by ``report`` (``!!`` lines under the title) and ``compare`` (one ``DATA FINDINGS:``
warning per run), not only once by ``exitcore run``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from evalkit import one_torch_thread  # noqa: F401 - autouse fixture

from exitcore.cli import cli
from exitcore.evaluation.report import data_findings, data_findings_lines
from exitcore.registry import Registry

SOURCE = "dukascopy: /data/eurusd_*/*.csv.gz"
DUPLICATES = (f"warning: {SOURCE}, line 12: 3 row(s) repeat an earlier row exactly (same timestamp and values) "
              "and were dropped; the first repeats 2019-01-02 10:00 UTC of x.csv line 11")
RESAMPLED = (f"warning: {SOURCE}: resampled 1min -> 15min: 7 of 100 bars were built from fewer than 15 source bars "
             "(short holes inside the bar)")
TIMEZONE = ("warning: timezone: MetaTrader times are broker time; none was given, so they were taken as UTC (most "
            "brokers use 'UTC+2,US')")


def _hole(start: str, end: str, days: str = "2,571.7") -> str:
    """A long-hole finding in the words of exitcore.data.validate.long_hole_findings."""
    return (f"warning: {SOURCE}: a hole of {days} days in the data, between the bars of {start} and {end} UTC: "
            "longer than a weekend or holiday (7 days), most likely two data sets joined; features, entry signals "
            "(channels, ATR) and the daily results span it as if the market had been closed. Load the data sets "
            "separately unless this is meant")


@pytest.fixture
def runs(finished_run, tmp_path):
    """A runs directory holding two copies of the finished run, recorded as done in its registry."""
    runs = tmp_path / "runs"
    source = finished_run["results"].paths[0].parent
    info = finished_run["info"]
    ids = []
    with Registry(runs) as reg:
        for _ in range(2):
            run_id = reg.create_run(info["experiment"], info["config_hash"], info["data"]["hash"], seed=info["seed"])
            reg.mark_running(run_id)
            reg.mark_done(run_id, {"sharpe": 0.1})
            shutil.copytree(source, runs / run_id)
            ids.append(run_id)
    return runs, ids


def _set_findings(run_dir: Path, findings: list[str] | None) -> None:
    """Record ``findings`` as run.json's ``data.findings`` (None: no such key, as before it was recorded)."""
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    info["data"].pop("findings", None)
    if findings is not None:
        info["data"]["findings"] = findings
    path.write_text(json.dumps(info))


def _test_span(run_dir: Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    results = json.loads((run_dir / "results.json").read_text())
    start, end = results["spans"][results.get("split", "test")]
    return pd.Timestamp(start), pd.Timestamp(end)


def _hole_in_test_split(run_dir: Path) -> tuple[str, int]:
    """A hole finding inside the run's test span, with its weekdays without bars."""
    start, end = _test_span(run_dir)
    assert end - start > pd.Timedelta(days=20), "the fixture's test split is too short for a hole"
    before, after = start.normalize() + pd.Timedelta(days=3), start.normalize() + pd.Timedelta(days=17)
    weekdays = int(np.busday_count((before + pd.Timedelta(days=1)).date(), after.date()))
    return _hole(f"{before:%Y-%m-%d} 21:45", f"{after:%Y-%m-%d} 14:00", "14.0"), weekdays


def _cli(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_report_repeats_the_recorded_data_findings_under_its_title(runs):
    runs_dir, (run_id, _) = runs
    hole, weekdays = _hole_in_test_split(runs_dir / run_id)
    _set_findings(runs_dir / run_id, [hole, DUPLICATES, RESAMPLED, TIMEZONE, TIMEZONE])
    lines = _cli("report", run_id, "--runs-dir", runs_dir).output.splitlines()
    assert lines[0].startswith("exitcore report: ")
    at = lines.index(f"!! the data's findings, recorded when this run read its bars: days without bars inside a hole "
                     f"count as zero days in the daily Sharpe, Sharpe interval and deflated Sharpe (here {weekdays:,} "
                     "weekdays of the TEST split):")
    assert at == 2  # right under the title, before the Run section
    assert lines[at + 1:at + 5] == [
        f"!!   - {hole.removeprefix('warning: ')}",
        f"!!   - {DUPLICATES.removeprefix('warning: ')}",
        f"!!   - {RESAMPLED.removeprefix('warning: ')}",
        "!!   - ... and 2 more (run.json's data.findings lists them)",
    ]
    assert not lines[at + 5].startswith("!!")


def test_report_without_a_hole_lists_the_findings_without_the_zero_days_clause(runs):
    runs_dir, (run_id, _) = runs
    _set_findings(runs_dir / run_id, [DUPLICATES])
    out = _cli("report", run_id, "--runs-dir", runs_dir).output
    assert ("!! the data's findings, recorded when this run read its bars: `exitcore run` warned about them once:\n"
            f"!!   - {DUPLICATES.removeprefix('warning: ')}\n") in out
    assert "zero days" not in out


def test_report_in_markdown_shows_them_too(runs):
    runs_dir, (run_id, _) = runs
    _set_findings(runs_dir / run_id, [DUPLICATES])
    out = _cli("report", run_id, "--runs-dir", runs_dir, "--format", "markdown").output
    assert f"\n!!   - {DUPLICATES.removeprefix('warning: ')}\n" in out


@pytest.mark.parametrize("findings", [None, []])
def test_report_without_recorded_findings_says_nothing_of_them(runs, findings):
    runs_dir, (run_id, _) = runs
    _set_findings(runs_dir / run_id, findings)  # None: a run recorded before run.json held them
    out = _cli("report", run_id, "--runs-dir", runs_dir).output
    assert "findings" not in out and "zero days" not in out


def test_compare_warns_data_findings_once_per_run_that_has_them(runs):
    runs_dir, (with_findings, without) = runs
    hole, weekdays = _hole_in_test_split(runs_dir / with_findings)
    _set_findings(runs_dir / with_findings, [hole, DUPLICATES, RESAMPLED, TIMEZONE])
    _set_findings(runs_dir / without, None)
    expected = (f"DATA FINDINGS: {with_findings}: its data's findings, recorded when it read its bars: "
                f"{hole.removeprefix('warning: ')} | {DUPLICATES.removeprefix('warning: ')} | "
                f"{RESAMPLED.removeprefix('warning: ')} | ... and 1 more (run.json's data.findings lists them); days "
                "without bars inside a hole count as zero days in its daily Sharpe, Sharpe interval and deflated "
                f"Sharpe (here {weekdays:,} weekdays of its TEST split)")
    result = _cli("compare", with_findings, without, "--runs-dir", runs_dir)
    assert f"!! {expected}\n" in result.stdout
    assert result.stdout.count("DATA FINDINGS:") == 1 and f"DATA FINDINGS: {without}" not in result.stdout
    assert f"warning: {expected}\n" in result.stderr  # the table went to a pipe: stderr says it too
    warnings = json.loads(_cli("compare", with_findings, without, "--json", "--runs-dir", runs_dir).stdout)["warnings"]
    assert [w for w in warnings if w.startswith("DATA FINDINGS:")] == [expected]


def test_compare_without_recorded_findings_has_no_data_findings_warning(runs):
    runs_dir, ids = runs
    _set_findings(runs_dir / ids[0], None)
    _set_findings(runs_dir / ids[1], [])
    text = _cli("compare", *ids, "--runs-dir", runs_dir).output
    warnings = json.loads(_cli("compare", *ids, "--json", "--runs-dir", runs_dir).stdout)["warnings"]
    assert "DATA FINDINGS" not in text and not any("DATA FINDINGS" in w for w in warnings)


def test_data_findings_count_the_hole_weekdays_of_the_evaluated_split_and_skip_notes():
    info = {"data": {"findings": ["info: nothing to see", _hole("2010-12-31 21:45", "2018-01-15 14:00")]}}
    results = {"split": "test", "spans": {"test": ["2010-04-01T13:30:00+00:00", "2020-02-14T15:00:00+00:00"]}}
    found = data_findings(info, results)
    assert found is not None and found.shown == (_hole("2010-12-31 21:45", "2018-01-15 14:00")[len("warning: "):],)
    assert found.hole_days == 1835  # 2011-01-03 .. 2018-01-12, every weekday without a bar
    # a hole outside the evaluated split leaves its days alone
    assert data_findings(info, {"split": "test", "spans": {"test": ["2019-01-01", "2020-01-01"]}}).hole_days == 0
    assert data_findings({"data": {"findings": ["info: only a note"]}}) is None
    assert data_findings({"data": {"source": "x"}}) is None and data_findings({}) is None
    assert data_findings_lines({"data": {"findings": "damaged"}}) == []


def test_the_zero_days_clause_says_when_no_hole_lies_in_the_evaluated_split():
    info = {"data": {"findings": [_hole("2010-12-31 21:45", "2018-01-15 14:00")]}}
    found = data_findings(info, {"split": "test", "spans": {"test": ["2019-01-01", "2020-01-01"]}})
    assert found.zero_days().endswith("deflated Sharpe (none lies in the TEST split)")
    unnamed = data_findings({"data": {"findings": [_hole("2010-12-31 21:45", "2018-01-15 14:00"),
                                                   f"warning: {SOURCE}: ... and 2 more hole(s) longer than 7 days"]}},
                            {"split": "test", "spans": {"test": ["2010-04-01", "2020-02-14"]}})
    assert unnamed.hole_days is None and unnamed.zero_days().endswith("deflated Sharpe")


def test_the_hole_count_reads_validate_s_own_long_hole_finding():
    """The weekdays counted come from the words of the finding run.json stores
    (``str(finding)``); this ties the report's parser to exitcore.data.validate's message, so a
    change of its wording fails here instead of silently dropping the count."""
    from exitcore.data.bars import Bars
    from exitcore.data.validate import long_hole_findings

    index = pd.DatetimeIndex([*pd.date_range("2010-12-31 21:00", periods=4, freq="15min", tz="UTC"),
                              *pd.date_range("2018-01-15 14:00", periods=4, freq="15min", tz="UTC")], name="ts")
    frame = pd.DataFrame({c: 1.1 for c in ("open", "high", "low", "close")}, index=index)
    stored = [str(f) for f in long_hole_findings(Bars(frame, "15min", 0.0001, source="joined"))]
    assert len(stored) == 1 and "a hole of 2,571.7 days" in stored[0]
    found = data_findings({"data": {"findings": stored}},
                          {"split": "test", "spans": {"test": ["2010-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00"]}})
    assert found.holes and found.hole_days == int(np.busday_count("2011-01-01", "2018-01-15"))
