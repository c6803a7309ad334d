"""docs/json.md stays true: every command's --json (and compare --csv) prints exactly the keys
its tables list. A field added to an output without a row, or a row whose field is gone, fails.
Every output is parsed as strict JSON (a bare NaN or Infinity fails), and its times are checked
to be in the doc's one format.

The commands run as subprocesses on two smoke runs of v4 (seeds 3 and 4, a few seconds each),
made once for the module."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JSON_DOC = ROOT / "docs" / "json.md"


def doc_tables(text: str) -> dict[str, tuple[list[str], set[str]]]:
    """``{heading: (keys, optional keys)}`` for each ``##``/``###`` section holding a
    ``| `key` | type | meaning |`` table; a key is optional when its type cell says so."""
    out = {}
    for section in re.split(r"^#{2,3} ", text, flags=re.M)[1:]:
        heading, _, body = section.partition("\n")
        rows = re.findall(r"^\| `(\w+)` \| ([^|]*) \|", body, re.M)
        if rows:
            out[heading.strip()] = ([k for k, _ in rows], {k for k, t in rows if "optional" in t})
    return out


TABLES = doc_tables(JSON_DOC.read_text(encoding="utf-8"))


def assert_documented(keys, heading: str) -> None:
    """``keys`` (of one printed object) are exactly the table's: none undocumented, none missing
    unless the doc calls it optional."""
    documented, optional = TABLES[heading]
    keys = set(keys)
    undocumented = sorted(keys - set(documented))
    missing = sorted(set(documented) - optional - keys)
    assert not undocumented and not missing, (
        f"docs/json.md, table {heading!r}: printed but not documented {undocumented}; "
        f"documented but not printed {missing}")


#: the doc's one time format: ISO 8601, milliseconds, UTC offset
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def exitcore(*args: str, plugins: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m exitcore ARGS``; ``plugins``: a folder of plugin distributions to add."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("EXITCORE_RUNS_DIR", None)
    if plugins is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugins), str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "exitcore", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=600)


def strict_json(text: str):
    """``text`` parsed as strict JSON: the bare tokens ``NaN``, ``Infinity``, ``-Infinity``
    (which Python's json module accepts and ``jq`` refuses) fail."""

    def refuse(token: str):
        raise AssertionError(f"not strict JSON: a bare {token}")

    return json.loads(text, parse_constant=refuse)


def json_of(*args: str, status: int = 0, plugins: Path | None = None):
    out = exitcore(*args, plugins=plugins)
    assert out.returncode == status, out.stderr
    return strict_json(out.stdout)


def assert_times(*values) -> None:
    """Each value is a time in the doc's one format."""
    for value in values:
        assert isinstance(value, str) and TIME.fullmatch(value), f"not a time in docs/json.md's format: {value!r}"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, list[str]]:
    """A runs directory with two finished smoke runs of v4 (seeds 3 and 4), oldest first."""
    runs = tmp_path_factory.mktemp("runs")
    for seed in ("3", "4"):
        out = exitcore("run", "v4", "--budget", "smoke", "--seed", seed, "--runs-dir", str(runs))
        assert out.returncode == 0, out.stderr
    ids = [r["id"] for r in json_of("runs", "--json", "--runs-dir", str(runs))]
    assert len(ids) == 2
    return runs, ids


def test_every_table_of_the_doc_is_checked():
    """A table added to docs/json.md needs a check here; a heading renamed is noticed."""
    assert set(TABLES) == CHECKED
    for heading, (keys, _) in TABLES.items():
        assert len(keys) == len(set(keys)), f"{heading}: a key listed twice"


def test_runs_and_show(two_runs):
    runs, ids = two_runs
    records = json_of("runs", "--json", "--runs-dir", str(runs))
    for record in records:
        assert_documented(record, "Run record")
        assert_documented(record["params"], "Run record: `params`")
        assert_documented(record["metrics"], "Run record: `metrics`")
        assert record["status"] == "done" and "damaged" not in record
    shown = json_of("show", ids[0], "--json", "--runs-dir", str(runs))
    assert_documented(set(shown) - set(records[0]), "`show --json` adds")
    assert {k: v for k, v in shown.items() if k != "run_path"} == records[0]
    assert Path(shown["run_path"]) == runs / records[0]["run_dir"]
    assert_times(shown["created_at"], shown["started_at"], shown["ended_at"], shown["heartbeat_at"])


def test_a_walk_forward_runs_record_metrics_are_documented():
    """A walk-forward run's registry metrics add the walk-forward headline (what `run` records
    with them): the smoke runs above have none, so their keys are checked here (trial U)."""
    from exitcore.evaluation.rundir import WALK_FORWARD_KEYS, walk_forward_headline

    documented, optional = TABLES["Run record: `metrics`"]
    headline = walk_forward_headline({"windows": [{}, {}], "aggregate": {}})
    assert set(headline) == set(WALK_FORWARD_KEYS)
    assert set(headline) <= optional and set(headline) <= set(documented)


def test_compare_json_and_csv(two_runs):
    runs, ids = two_runs
    data = json_of("compare", *ids, "--json", "--runs-dir", str(runs))
    assert_documented(data, "compare: top level")
    assert [r["run_id"] for r in data["runs"]] == ids
    for run in data["runs"]:
        assert_documented(run, "compare: `runs[]`")
        metrics = run["metrics"]
        assert_documented(metrics, "compare: `runs[].metrics`")
        assert_times(metrics["span_start"], metrics["span_end"])
        # the significance evaluator's numbers as numbers, not the table's text
        low, high = metrics["sharpe_interval"]
        assert isinstance(low, float) and isinstance(high, float) and low <= high
        assert metrics["sharpe_interval_confidence"] == 0.95
        assert 0 <= metrics["dsr_recorded"] <= 1 and metrics["dsr_trials"] >= 1
    # deflated at run time for 1 and 2 trials, today both for the 2 the registry records
    first, second = (r["metrics"] for r in data["runs"])
    assert (first["dsr_trials"], second["dsr_trials"], first["dsr_today_trials"], second["dsr_today_trials"]) == (1, 2, 2, 2)
    assert second["dsr_today"] == second["dsr_recorded"] and first["dsr_today"] <= first["dsr_recorded"]
    assert any(w.startswith("SEEDS OF ONE CONFIGURATION: ") for w in data["warnings"])
    assert data["config_differences"], "the two runs differ in ppo.seed"
    for diff in data["config_differences"]:
        assert_documented(diff, "compare: `config_differences[]`")
        assert len(diff["values"]) == len(ids)

    out = exitcore("compare", *ids, "--csv", "--runs-dir", str(runs))
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["metric", *ids]
    names = [r[0] for r in rows[1:]]
    metrics = [n for n in names if not n.startswith("config.")]
    assert metrics == TABLES["compare: `--csv` rows"][0]  # the same rows, in the same order
    assert [n for n in names if n.startswith("config.")] == [f"config.{d['key']}" for d in data["config_differences"]]
    # the CSV has --json's significance numbers at full precision; the table writes them as text
    cells = {r[0]: r[1:] for r in rows}
    for cell, run in zip(cells["sharpe_interval"], data["runs"]):
        assert json.loads(cell) == run["metrics"]["sharpe_interval"]
    assert [float(c) for c in cells["sharpe_interval_confidence"]] == [0.95] * len(ids)
    assert [float(c) for c in cells["dsr_recorded"]] == [r["metrics"]["dsr_recorded"] for r in data["runs"]]
    assert [int(c) for c in cells["dsr_trials"]] == [r["metrics"]["dsr_trials"] for r in data["runs"]]
    table = exitcore("compare", *ids, "--runs-dir", str(runs)).stdout
    assert re.search(r"^Sharpe interval \(bootstrap\) +\[-?\d+\.\d\d, -?\d+\.\d\d\] 95% ", table, re.M), table
    assert re.search(r"^deflated Sharpe \(trials at run time\) +\d\.\d{3} \(N = \d+\) ", table, re.M), table


def test_audit(two_runs):
    runs, ids = two_runs
    report = json_of("audit", ids[0], "--json", "-q", "--decisions", "4", "--runs-dir", str(runs))
    assert_documented(report, "audit: top level")
    assert report["verdict"] == "PASS" and report["policy"] == "trained (checkpoint.pt)"
    # a failing audit fills findings and culprits: v3's leaky feature, on a random-init policy
    leaky = json_of("audit", "v3", "--budget", "smoke", "--decisions", "2", "--json", "-q", status=1)
    assert_documented(leaky, "audit: top level")
    assert leaky["verdict"] == "FAIL" and leaky["findings"] and leaky["culprits"]
    for finding in leaky["findings"]:
        assert_documented(finding, "audit: `findings[]` (and `culprits[].first`)")
        assert_times(finding["time"])
    for culprit in leaky["culprits"]:
        assert_documented(culprit, "audit: `culprits[]`")
        assert_documented(culprit["first"], "audit: `findings[]` (and `culprits[].first`)")
        assert_times(culprit["first"]["time"])
    # the random-init policy acts on the leaky feature: a consequence, not a culprit
    assert leaky["consequences"] and {c["kind"] for c in leaky["culprits"]} == {"feature"}
    for consequence in leaky["consequences"]:
        assert_documented(consequence, "audit: `consequences[]`")


def test_plugins():
    plugins = json_of("plugins", "--json")
    assert any(p["components"] for p in plugins)
    for plugin in plugins:
        assert_documented(plugin, "plugins: plugin")
        for component in plugin["components"]:
            assert_documented(component, "plugins: `components[]`")


def test_experiments_show():
    assert_documented(json_of("experiments", "show", "v4", "--budget", "smoke", "--json"), "experiments show: top level")


def test_data_inspect():
    bare = json_of("data", "inspect", "synthetic?years=1", "--json")
    assert_documented(bare, "data inspect: top level")
    assert_documented(bare["gaps"], "data inspect: `gaps`")
    assert_times(bare["start"], bare["end"], bare["gaps"]["longest_from"], bare["gaps"]["longest_to"])
    # without --experiment the trades are not computed: every field from `experiment` on is null
    keys = TABLES["data inspect: top level"][0]
    assert [k for k in keys if bare[k] is None] == keys[keys.index("experiment"):]
    full = json_of("data", "inspect", "--experiment", "v4", "--budget", "smoke", "--json")
    assert_documented(full, "data inspect: top level")
    assert_documented(full["gaps"], "data inspect: `gaps`")
    assert full["experiment"] == "v4_no_lookahead" and full["signals"] > 0
    # the entry strategy as an object, its parameters with their defaults, as experiments show has them
    shown = json_of("experiments", "show", "v4", "--budget", "smoke", "--json")
    assert full["entry"] == shown["entry"] and full["entry"]["params"]["period"] == 20
    assert full["splits"]
    for split in full["splits"]:
        assert_documented(split, "data inspect: `splits[]`")
        assert_times(split["start"], split["end"])


@pytest.fixture(scope="module")
def no_limit_plugin(tmp_path_factory) -> Path:
    """A folder holding a plugin distribution whose entry strategy ``capped_donchian`` has a
    parameter that may be non-finite, ``max_stop_atr: AnyFloat = inf`` ("no cap")."""
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "no_limit_entry.py").write_text(textwrap.dedent("""
        import math

        import attrs
        from exitcore import hookimpl
        from exitcore.components import lazy
        from exitcore.params import AnyFloat
        from exitcore_entries import DonchianParams


        @attrs.frozen
        class CappedParams(DonchianParams):
            max_stop_atr: AnyFloat = math.inf


        @hookimpl
        def register_entry_strategies(register):
            register("capped_donchian", lazy("exitcore_entries.strategies:donchian"), params=CappedParams,
                     description="donchian with a stop cap (inf: none)")
    """))
    info = folder / "no_limit_entry-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: no-limit-entry\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\nno_limit = no_limit_entry\n")
    return folder


def test_non_finite_values_are_strict_json_everywhere(no_limit_plugin):
    """plugins, experiments show and data inspect wrote the bare tokens Infinity and NaN."""
    plugins = json_of("plugins", "--json", plugins=no_limit_plugin)
    (mine,) = [p for p in plugins if p["name"] == "no_limit"]
    assert mine["components"][0]["params"]["max_stop_atr"] == "Infinity"
    capped_nan = ("--budget", "smoke", "--set", "entry.name=capped_donchian", "--set", "entry.params.max_stop_atr=nan")
    shown = json_of("experiments", "show", "v4", *capped_nan, "--json", plugins=no_limit_plugin)
    assert shown["entry"] == {"name": "capped_donchian", "params": {**shown["entry"]["params"], "max_stop_atr": "NaN"}}
    inspected = json_of("data", "inspect", "synthetic?years=1", "-e", "v4", *capped_nan, "--json", plugins=no_limit_plugin)
    assert inspected["entry"] == shown["entry"]


#: every table of docs/json.md, each checked by a test above
CHECKED = {
    "Run record", "Run record: `params`", "Run record: `metrics`", "`show --json` adds",
    "compare: top level", "compare: `runs[]`", "compare: `runs[].metrics`", "compare: `config_differences[]`",
    "compare: `--csv` rows",
    "audit: top level", "audit: `findings[]` (and `culprits[].first`)", "audit: `culprits[]`", "audit: `consequences[]`",
    "plugins: plugin", "plugins: `components[]`",
    "experiments show: top level",
    "data inspect: top level", "data inspect: `gaps`", "data inspect: `splits[]`",
}
