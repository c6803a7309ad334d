"""`exitcore run` / `compare` end to end (smoke budget): the run directory, the registry,
interruption and exact resume, concurrent runs, and every bad-input case."""

from __future__ import annotations

import io
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exitcore.experiments import SHIPPED_FILE

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ("--budget", "smoke")


def _default_sigint() -> None:
    # A job started in the background without job control (CI runners, `cmd &` in a script)
    # inherits SIGINT as *ignored*, and Python then installs no Ctrl-C handler: the child must
    # get the default back, as an interactive terminal would give it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def exitcore(*args, runs, wait=True, env=None):
    cmd = [sys.executable, "-m", "exitcore", *args, "--runs-dir", str(runs)]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                                preexec_fn=_default_sigint)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=full_env, timeout=600)


def registry_rows(runs):
    with sqlite3.connect(runs / "registry.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY seq")]


def wait_for_training(run_root: Path, proc, timeout=240):
    """Block until some run under run_root has written a training log line."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        logs = list(run_root.glob("*/train_log.jsonl"))
        if logs and logs[0].stat().st_size > 0:
            return logs[0].parent
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.returncode}\n{proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError("training never started")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    out = exitcore("run", "v4", *SMOKE, "--seed", "3", runs=runs)
    assert out.returncode == 0, out.stderr
    return runs, out


def test_stage_lines_say_what_they_count_in_plain_words():
    """'per split, with a decision to train on / evaluated: train 3,435 / 3,639' and 'minibatches
    of 8,192 in passes of 2,048' were internals' words: the stage lines say what they count."""
    from exitcore.config import PPOConfig
    from exitcore.runner import trades_words, training_words

    text = trades_words(6032, "donchian", {"train": 3435, "validation": 10, "test": 2223},
                        {"train": 3639, "validation": 12, "test": 2363})
    # the 18 trades no split holds are counted, so that the numbers add up (trial AA)
    assert text == ("6,032 trades from donchian: train 3,639, validation 12, test 2,363, 18 in no split (their window "
                    "crosses a split's edge or a purge gap) (the agent manages train "
                    "3,435, validation 10, test 2,223: those still open after their entry bar; the others count in "
                    "the results as they closed)")
    ppo = PPOConfig(total_timesteps=262144, batch_size=8192, micro_batch_size=2048, compile="off")
    assert training_words(ppo, "cpu") == ("262,144 steps on cpu; trade simulator not compiled; float32; network "
                                          "updated on batches of 8,192 steps, computed 2,048 at a time")
    on_gpu = PPOConfig(total_timesteps=262144, batch_size=8192, precision="fp32")
    assert training_words(on_gpu, "cuda").endswith("; trade simulator compiled; float32; network updated on batches "
                                                   "of 8,192 steps; rollout and updates replayed as CUDA graphs")
    assert "bfloat16" in training_words(PPOConfig(precision="bf16"), "cpu")
    # `--timesteps 1` trained a whole update of 16 x 32 steps under a line saying "1 steps"
    one = PPOConfig(total_timesteps=1, n_envs=16, n_steps=32, batch_size=256)
    assert training_words(one, "cpu").startswith("512 steps (1 asked, rounded up to whole updates) on cpu; ")


def _a_copy_of(finished_run, tmp_path):
    """``(runs, row, run_dir, cli_run)``: a copy of the finished run's runs directory, its one
    registry row and run directory, and ``cli_run(*args)`` invoking the CLI in-process on it."""
    import shutil

    from click.testing import CliRunner

    from exitcore.cli import cli

    runs = tmp_path / "runs"
    shutil.copytree(finished_run[0], runs)
    (row,) = registry_rows(runs)
    return runs, row, runs / row["run_dir"], lambda *args: CliRunner().invoke(cli, [*args, "--runs-dir", str(runs)])


def test_report_flags_and_compare_refuses_a_config_toml_edited_after_the_run(finished_run, tmp_path):
    """Trial Z: report and compare read config.toml without resolving it, so a file edited
    after the run (spread 1.0 -> 0.1) showed contradictory costs and made compare call a run and
    its own copy DIFFERENT COSTS, silently. run.json records the file's sha256."""
    runs, row, run_dir, cli_run = _a_copy_of(finished_run, tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["config_sha256"] == hashlib.sha256((run_dir / "config.toml").read_bytes()).hexdigest()
    assert isinstance(info["owner"]["pid"], int) and info["owner"]["host"]  # the process that wrote it
    assert "was edited after the run" not in cli_run("report", row["id"]).output
    text = (run_dir / "config.toml").read_text()
    assert "spread_pips = 1.0" in text
    (run_dir / "config.toml").write_text(text.replace("spread_pips = 1.0", "spread_pips = 0.1"))
    report = cli_run("report", row["id"])
    assert report.exit_code == 0 and (f"!! {run_dir / 'config.toml'} was edited after the run (it is not the file "
                                      "the run wrote: run.json records another sha256)") in report.output, report.output
    compare = cli_run("compare", row["id"], row["id"])
    assert compare.exit_code == 2 and "config.toml was edited after the run" in compare.output, compare.output


def test_a_ledger_changed_since_the_evaluation_is_refused_by_compare_and_flagged_by_report(finished_run, tmp_path):
    """Trial Z: a ledger copied from another run with as many trades was compared under a mere
    RECOMPUTED warning, and report said nothing of a truncated one that compare refused.
    results.json records each ledger's sha256."""
    runs, row, run_dir, cli_run = _a_copy_of(finished_run, tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    ledger = run_dir / results["ledgers"]["test"]
    assert results["ledger_sha256"]["test"] == hashlib.sha256(ledger.read_bytes()).hexdigest()
    lines = ledger.read_text().splitlines(keepends=True)
    # another file with as many trades per policy that reads as a valid ledger (two rows swapped),
    # as a ledger copied from another run of as many trades is
    rl = [i for i, line in enumerate(lines) if ",rl," in line]
    other = [i for i, line in enumerate(lines) if i and i not in rl and ",rl_sample" not in line]
    assert rl and other
    swapped = list(lines)
    swapped[rl[0]], swapped[other[0]] = lines[other[0]], lines[rl[0]]
    ledger.write_text("".join(swapped))
    compare = cli_run("compare", row["id"], row["id"])
    assert compare.exit_code == 2 and f"{ledger} is not the ledger the run's evaluation wrote" in compare.output, compare.output
    report = cli_run("report", row["id"])
    assert report.exit_code == 0 and f"!! incomplete run directory: {ledger} is not the ledger" in report.output
    ledger.write_text("".join(lines[:-5]))  # truncated on a row boundary, in a run recorded before the sha256
    _edit = json.loads((run_dir / "results.json").read_text())
    del _edit["ledger_sha256"]
    (run_dir / "results.json").write_text(json.dumps(_edit))
    report = cli_run("report", row["id"])
    assert f"{ledger} does not match" in report.output and "it is truncated or was replaced" in report.output, report.output


def test_run_writes_a_complete_run_directory_and_registry_row(finished_run):
    runs, out = finished_run
    (row,) = registry_rows(runs)
    assert row["status"] == "done" and row["experiment"] == "v4_no_lookahead" and row["seed"] == 3
    run_dir = runs / row["run_dir"]
    assert f"run {row['id']} done -> {run_dir}" in out.stdout
    for stage in ("exitcore run v4_no_lookahead", "loading data", "building episodes", "training", "evaluating"):
        assert stage in out.stderr
    assert "training (2,048 steps on cpu; trade simulator not compiled; float32; network updated on batches of 256 steps)" in out.stderr
    assert ("6,032 trades from donchian: train 3,645, test 2,366, 21 in no split (their window crosses a split's edge or "
            "a purge gap) (the agent manages train 3,440, test 2,226: ") in out.stderr
    # the rate shown is the whole training's, not the last update's: at most the steps over the
    # updates' own time (the session also spans what happens between them), at least the steps
    # over the stage's seconds (which also count building the trainer: on a loaded machine most of it)
    rate, seconds = re.search(r"done after 2,048 steps / 4 updates, ([\d,]+) steps/s \(([\d.]+) s\)", out.stderr).groups()
    updates = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    in_updates = sum(u["time_rollout"] + u["time_update"] for u in updates)
    assert 2048 / (float(seconds) + 0.05) <= int(rate.replace(",", "")) <= 2048 / in_updates * 1.001 + 1, (rate, seconds)
    # the next steps printed work as printed: they name the runs directory given
    assert f"next: exitcore report {row['id']} --runs-dir {runs}   |   " in out.stdout
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.toml", "run.json", "checkpoint.pt", "train_log.jsonl", "results.json"} <= names
    # the round trip in price and bp of the median close: 1 pip of spread on EURUSD-like prices
    costs = json.loads((run_dir / "run.json").read_text())["costs"]
    assert costs["round_trip"] == pytest.approx(1e-4) and costs["pip_size"] == 1e-4
    assert costs["round_trip_bp"] == pytest.approx(1.0 / costs["median_price"]) and "warning: costs" not in out.stderr
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["run_id"] == row["id"] and meta["data"]["hash"] == row["data_hash"] == json.loads(
        (run_dir / "results.json").read_text()).get("data_hash", row["data_hash"])
    assert [s["name"] for s in meta["splits"]] == ["train", "test"]
    assert meta["features"][0] == "position.upnl_pct" and meta["obs_dim"] == len(meta["features"])
    assert any(p["distribution"] == "exitcore-masks" for p in meta["plugins"])
    assert isinstance(meta["threads"], int) and meta["threads"] >= 1  # CPU bit-identity needs the same count
    assert meta["git"] is None or len(meta["git"]["commit"]) == 40
    metrics = json.loads(row["metrics"])
    assert metrics["split"] == "test" and metrics["in_sample"] is False and metrics["n_trades"] > 100
    logs = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert len(logs) == 2048 // (16 * 32)
    # the frozen config is the resolved experiment with the budget and --seed applied
    import tomllib

    frozen = tomllib.loads((run_dir / "config.toml").read_text())["experiment"]
    assert frozen["ppo"]["seed"] == 3 and frozen["ppo"]["n_envs"] == 16 and frozen["masks"][0]["name"] == "min_exit_bar"


def test_runs_and_show_list_the_run(finished_run):
    runs, _ = finished_run
    (row,) = registry_rows(runs)
    out = exitcore("runs", "--experiment", "v4_no_lookahead", runs=runs)
    assert out.returncode == 0 and row["id"] in out.stdout and "done" in out.stdout
    out = exitcore("show", row["id"][:20], runs=runs)
    assert out.returncode == 0 and row["data_hash"] in out.stdout


def test_runs_record_rebuilds_a_lost_registry_from_the_run_directories(tmp_path, finished_run):
    """A runs directory whose registry was lost (or run directories copied in from elsewhere):
    `runs --record` gives back the rows the registry had (so the deflated Sharpe counts the
    trials again), an evaluated run done and comparable, one without results interrupted and
    resumable; copies and damaged directories are named with why, exit 2, and not recorded."""
    import shutil

    from exitcore.registry import Registry

    source, _ = finished_run
    (original,) = registry_rows(source)
    runs = tmp_path / "runs"
    runs.mkdir()
    done_dir = runs / original["run_dir"]
    shutil.copytree(source / original["run_dir"], done_dir)
    # the same run stopped before its evaluation, under another id
    info = json.loads((done_dir / "run.json").read_text())
    stopped_id = original["id"][:-4] + "beef"
    stopped = runs / stopped_id
    shutil.copytree(done_dir, stopped)
    for name in ("results.json", "ledger_test.csv", "ledger_train.csv"):
        (stopped / name).unlink()
    (stopped / "run.json").write_text(json.dumps({**info, "run_id": stopped_id}))
    # another run's walk_forward.json beside a run without walk-forward changes nothing (it was
    # recorded interrupted, as if stopped in its windows)
    (done_dir / "walk_forward.json").write_text(json.dumps({"config_hash": "0123456789abcdef", "windows": [{}],
                                                            "aggregate": {}}))
    # a plain `cp -r` gives the files the copy's time: the end is run.json's finished_at (trial W)
    later = time.time() + 3600
    os.utime(done_dir / "results.json", (later, later))
    out = exitcore("runs", runs=runs)
    assert out.returncode == 0 and f"`exitcore runs --record --runs-dir {runs}` records them" in out.stderr, out.stderr

    out = exitcore("runs", "--record", runs=runs)
    assert out.returncode == 0, out.stderr
    assert f"recorded {original['id']}: v4_no_lookahead, done" in out.stdout
    assert f"recorded {stopped_id}: v4_no_lookahead, interrupted" in out.stdout
    rows = {r["id"]: r for r in registry_rows(runs)}
    same = ("experiment", "config_hash", "data_hash", "data_source", "seed", "status", "run_dir", "params")
    assert {k: rows[original["id"]][k] for k in same} == {k: original[k] for k in same}, rows[original["id"]]["error"]
    assert rows[original["id"]]["created_at"][:19] == original["created_at"][:19]  # the id's time, to the second
    from exitcore.evaluation.jsonable import iso_time

    assert rows[original["id"]]["ended_at"] == iso_time(info["finished_at"]) <= original["ended_at"]
    assert json.loads(rows[original["id"]]["metrics"]) == json.loads(original["metrics"])
    assert rows[stopped_id]["status"] == "interrupted" and rows[stopped_id]["pid"] is None
    with Registry(runs, read_only=True) as registry:
        assert registry.trial_count(original["data_hash"]) == 1  # one configuration and seed
    out = exitcore("runs", "--record", runs=runs)
    assert out.returncode == 0 and out.stdout.startswith(f"every run directory in {runs} is recorded"), out.stderr
    out = exitcore("compare", "v4", original["id"], "--json", runs=runs)
    assert out.returncode == 0 and [r["run_id"] for r in json.loads(out.stdout)["runs"]] == [original["id"]] * 2

    out = exitcore("run", "--resume", stopped_id, runs=runs)
    assert out.returncode == 0 and "resumed at step 2,048" in out.stderr, out.stderr
    assert {r["id"]: r["status"] for r in registry_rows(runs)} == {original["id"]: "done", stopped_id: "done"}

    # a copy of a recorded run, a directory without run.json, results of another run
    shutil.copytree(done_dir, runs / "copy")
    (runs / "20261127-000000-v4-0000").mkdir()
    shutil.copy(done_dir / "config.toml", runs / "20261127-000000-v4-0000")
    foreign_id = original["id"][:-4] + "f00d"
    shutil.copytree(done_dir, runs / foreign_id)
    (runs / foreign_id / "run.json").write_text(json.dumps({**info, "run_id": foreign_id, "seed": 4}))
    out = exitcore("runs", "--record", runs=runs)
    assert out.returncode == 2 and out.stdout == "", out.stdout
    assert (f"not recorded copy: a copy of run {original['id']} (its run.json names that run), which the registry "
            f"records already in {done_dir}: delete the copy or move it out") in out.stderr
    assert "not recorded 20261127-000000-v4-0000: it has no run.json (the run stopped before recording" in out.stderr
    assert f"not recorded {foreign_id}: results.json does not belong to this run: its seed is 3, " in out.stderr
    assert f"error: 3 run directories in {runs} could not be recorded" in out.stderr
    assert len(registry_rows(runs)) == 2
    # the original renamed is not 'a copy' to delete: it is the only one left
    shutil.rmtree(runs / "copy")
    done_dir.rename(runs / "best")
    out = exitcore("runs", "--record", runs=runs)
    assert (f"not recorded best: run {original['id']} renamed (its run.json names that run, which the registry records "
            f"in {done_dir}, gone): rename it back to {original['id']}") in out.stderr
    # compare of a directory without run.json names the file
    out = exitcore("compare", str(runs / "best"), str(runs / "20261127-000000-v4-0000"), runs=runs)
    assert out.returncode == 2 and (f"{runs / '20261127-000000-v4-0000' / 'run.json'}: no such file (the run's "
                                    "metadata): the run directory is incomplete") in out.stderr, out.stderr


def test_a_resume_whose_checkpoint_is_gone_says_it_starts_again(tmp_path, finished_run):
    """The training log records updates but the checkpoint is gone (deleted, or a copy without
    it): the resume says it starts from step 0, and the log ends up with each update once."""
    import shutil

    source, _ = finished_run
    (original,) = registry_rows(source)
    runs = tmp_path / "runs"
    run_dir = runs / original["run_dir"]
    shutil.copytree(source / original["run_dir"], run_dir)
    for name in ("results.json", "ledger_test.csv", "ledger_train.csv", "checkpoint.pt"):
        (run_dir / name).unlink()
    assert exitcore("runs", "--record", runs=runs).returncode == 0
    out = exitcore("run", "--resume", original["id"], runs=runs)
    assert out.returncode == 0, out.stderr
    assert (f"warning: no checkpoint.pt in {run_dir}, although its training log records 4 updates: training starts "
            "again from step 0") in out.stderr
    logged = [json.loads(line)["update"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]
    assert json.loads((run_dir / "results.json").read_text())["headline"] == json.loads(original["metrics"])


def _copied_with_other_code(tmp_path, finished_run, plugin):
    """A copy of the finished run without its results, recorded where run.json says it started
    with other code of ``plugin`` (its source hash and the run's code hash changed)."""
    import shutil

    source, _ = finished_run
    (original,) = registry_rows(source)
    runs = tmp_path / "runs"
    run_dir = runs / original["run_dir"]
    shutil.copytree(source / original["run_dir"], run_dir)
    (run_dir / "results.json").unlink()
    info = json.loads((run_dir / "run.json").read_text())
    now = {p["name"]: p["source_hash"] for p in info["plugins"]}
    plugins = [{**p, "source_hash": "1" * 16} if p["name"] == plugin else p for p in info["plugins"]]
    (run_dir / "run.json").write_text(json.dumps({**info, "code_hash": "0" * 16, "plugins": plugins}))
    assert exitcore("runs", "--record", runs=runs).returncode == 0
    return original, runs, run_dir, now


def test_a_resume_whose_training_plugin_code_changed_is_refused_naming_it(tmp_path, finished_run):
    """A resume after an edit of a component's code trained on with the new code, its results of
    two codes counted as the first one's trial (review AA): refused, as a changed configuration
    is, naming the plugin whose code changed (review AB: two opaque hashes said nothing of which)
    and the way to run the configuration again as another trial."""
    original, runs, _, now = _copied_with_other_code(tmp_path, finished_run, "rewards")
    out = exitcore("run", "--resume", original["id"], runs=runs)
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        f"error: cannot resume run {original['id']}: the code of plugins it trains with changed since it started: "
        f"plugin 'rewards' (exitcore-rewards 0.1.0) (source {'1' * 16} -> {now['rewards']}); a resume continues the "
        f"code it started with: restore that code, or start a new run (`exitcore run --from {original['id']} "
        f"--runs-dir {runs}` runs its configuration again with this code, another trial)\n")
    assert [r["status"] for r in registry_rows(runs)] == ["interrupted"]


def test_a_refused_resume_says_when_the_changed_package_also_holds_the_evaluator(tmp_path, monkeypatch):
    """Trial Y: "fix the evaluator and resume" was refused as changed training code when the
    evaluator lived in the package of the run's features, and the refusal did not say why."""
    from types import SimpleNamespace

    import exitcore.code_changes as cc
    from exitcore.errors import ExitcoreError
    from exitcore.resume import check_code_unchanged

    def changes(plugin):
        return cc.CodeChanges(tmp_path, "a" * 16, "b" * 16, {plugin: "1" * 16}, (plugin,),
                              {plugin: SimpleNamespace(distribution="qx-exits", version="0.1", source="2" * 16)})

    def component(plugin):
        return SimpleNamespace(component=SimpleNamespace(plugin=plugin))

    resolved = SimpleNamespace(plugins_training=lambda: {"qx", "rewards"},
                               evaluators=[component("evaluators"), component("qx")])
    previous = SimpleNamespace(id="r1", params={"code_hash": "a" * 16})
    for plugin, says in (("qx", True), ("rewards", False)):
        monkeypatch.setattr(cc, "code_changes", lambda *args, plugin=plugin: changes(plugin))
        with pytest.raises(ExitcoreError) as exc:
            check_code_unchanged(previous, tmp_path, resolved, None, "exitcore run --from r1")
        assert ("(if only an evaluator changed: 'qx' also supplies the components the run trains with, and a "
                "plugin's code is hashed as a whole package; keep evaluators in a package of their own, "
                "docs/plugins.md)") in str(exc.value) or not says
        assert ("if only an evaluator changed" in str(exc.value)) is says


def test_a_resume_after_an_evaluator_fix_evaluates_with_the_new_code(tmp_path, finished_run):
    """'Fix the evaluator and resume' (what a failed evaluation advises) was refused as changed
    code (review AB): evaluators only read the ledgers, so the resume evaluates with the fixed
    code, says so, records it under run.json's resumes, and the run stays its first trial."""
    original, runs, run_dir, now = _copied_with_other_code(tmp_path, finished_run, "evaluators")
    out = exitcore("run", "--resume", original["id"], runs=runs)
    assert out.returncode == 0, out.stderr
    assert (f"note: plugin 'evaluators' (exitcore-evaluators 0.1.0) (source {'1' * 16} -> "
            f"{now['evaluators']}) changed since run {original['id']} started; it supplies only evaluators, so the "
            "resume evaluates with the new code (run.json's resumes record it), and the run stays the trial it "
            "started as\n") in out.stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["code_hash"] == "0" * 16 and info["resumes"][-1]["code_hash"] != "0" * 16
    (row,) = registry_rows(runs)
    assert row["status"] == "done" and json.loads(row["params"])["code_hash"] == "0" * 16


def test_a_runs_plugin_source_is_read_when_it_starts_not_after_its_data_loads(tmp_path, monkeypatch):
    """The source hash was read when the run was recorded, after the data, the assembly and the
    sweep: a plugin file saved meanwhile was recorded as the code the run ran (review AB)."""
    import exitcore.data.pipeline as pipeline
    from click.testing import CliRunner

    from exitcore.cli import cli

    plugin = tmp_path / "latecode.py"
    plugin.write_text("from exitcore import hookimpl\n\n@hookimpl\ndef register_reward_terms(register):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("EXITCORE_PLUGINS", "latecode")
    monkeypatch.delitem(sys.modules, "latecode", raising=False)
    from exitcore.plugins import source_hash

    loading = pipeline.load_bars

    def edited_while_loading(*args, **kwargs):
        plugin.write_text(plugin.read_text() + "# saved while the data loaded\n")
        return loading(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load_bars", edited_while_loading)
    runs = tmp_path / "runs"
    out = CliRunner().invoke(cli, ["run", "v4", *SMOKE, "-q", "--runs-dir", str(runs)])
    assert out.exit_code == 0, out.output
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    recorded = {p["name"]: p["source_hash"] for p in json.loads((run_dir / "run.json").read_text())["plugins"]}
    plugin.write_text(plugin.read_text().replace("# saved while the data loaded\n", ""))
    assert recorded["latecode"] == source_hash(sys.modules["latecode"])
    sys.modules.pop("latecode", None)


def test_compare_reads_run_directories_no_registry_records(tmp_path, finished_run):
    """`report DIR` reads a run directory alone; so does `compare`: copies kept outside any runs
    directory, in two places, compare without `runs --record` (they were 'no run registry')."""
    import shutil

    source, _ = finished_run
    (row,) = registry_rows(source)
    first, second = tmp_path / "a" / "best", tmp_path / "b" / row["id"]
    for copy in (first, second):
        shutil.copytree(source / row["run_dir"], copy)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}

    def bare(*args, **more):  # no --runs-dir, and no ./runs where it runs
        return subprocess.run([sys.executable, "-m", "exitcore", *args], cwd=tmp_path, capture_output=True, text=True,
                              env={**env, **more}, timeout=300)

    out = bare("compare", str(first), str(second), str(source / row["run_dir"]), "--json")
    assert out.returncode == 0, out.stderr
    compared = json.loads(out.stdout)["runs"]
    assert [r["run_id"] for r in compared] == [row["id"]] * 3
    # the same numbers; today's deflated Sharpe only where a registry records the run (not the lone copy)
    today = ("dsr_today", "dsr_today_trials")
    assert [compared[0]["metrics"].pop(k) for k in today] == [None, None]
    assert compared[2]["metrics"].pop("dsr_today_trials") == 1 and compared[2]["metrics"].pop("dsr_today") is not None
    assert compared[0]["metrics"] == compared[2]["metrics"] and compared[0]["metrics"]["n_trades"] > 100
    # beside their recorded original, the copies are SAME RUN, not NOT RECORDED; alone, no registry here counts
    # them as trials: said, with where their N was counted and how to record each (by its run id's name only)
    assert not [w for w in json.loads(out.stdout)["warnings"] if w.startswith("NOT RECORDED")]
    out = bare("compare", str(first), str(second), "--json")
    unrecorded = [w for w in json.loads(out.stdout)["warnings"] if w.startswith("NOT RECORDED")]
    assert [w.split(", which")[0] for w in unrecorded] == [f"NOT RECORDED: {row['id']} is read from {copy}"
                                                           for copy in (first, second)]
    assert f"(run registry {(source / 'registry.sqlite').resolve()}: distinct (config, seed, plugin code)" in unrecorded[0]
    assert unrecorded[0].endswith(f"`exitcore runs --record` records a run directory named by its run id ({row['id']})")
    assert unrecorded[1].endswith(f"`exitcore runs --record --runs-dir {second.parent}` records it there")
    # where the runs directory's registry records the run, a copy is counted there: no note
    out = bare("compare", str(first), str(second), "--json", EXITCORE_RUNS_DIR=str(source))
    assert out.returncode == 0, out.stderr
    assert not [w for w in json.loads(out.stdout)["warnings"] if w.startswith("NOT RECORDED")]
    reported = bare("report", str(first))  # report says it too, on stderr beside the report
    assert reported.returncode == 0 and reported.stdout.startswith("exitcore report: ")
    assert reported.stderr.startswith(f"note: {row['id']} is read from {first}, which no registry here records"), reported.stderr
    assert bare("report", str(source / row["run_dir"])).stderr == ""  # a recorded run: no note
    assert bare("report", str(first), EXITCORE_RUNS_DIR=str(source)).stderr == ""  # its runs directory records it
    # show reads a run directory alone too (it was "no run registry in ..."), with the same note
    shown = bare("show", str(second))
    assert shown.returncode == 0, shown.stderr
    assert re.match(rf"run +{row['id']}\n", shown.stdout) and re.search(r"\nstatus +done\n", shown.stdout)
    assert shown.stderr.startswith(f"note: {row['id']} is read from {second}, which no registry here records")
    shown = json.loads(bare("show", str(second), "--json").stdout)
    assert (shown["id"], shown["run_dir"], shown["run_path"]) == (row["id"], second.name, str(second))
    # a copy of a run the runs directory's registry records is counted there: no note, as report (review Z)
    assert bare("show", str(second), EXITCORE_RUNS_DIR=str(source)).stderr == ""
    (second / "results.json").unlink()
    out = bare("compare", str(first), str(second))
    # 4, as for a recorded run that is not done; named by its run id, with how to record and continue it
    assert out.returncode == 4 and f"{second / 'results.json'}: no results: the run was not evaluated" in out.stderr
    holder = second.parent.resolve()
    assert out.stderr.strip().endswith(f"`exitcore runs --record --runs-dir {holder}` records it, and "
                                       f"`exitcore run --resume {row['id']} --runs-dir {holder}` continues it")
    assert bare("runs", "--record", "--runs-dir", str(holder)).returncode == 0
    assert "interrupted" in bare("show", row["id"], "--runs-dir", str(holder)).stdout
    (first / "results.json").unlink()  # a renamed copy cannot be recorded under its name: no such advice
    out = bare("report", str(first))
    assert out.returncode == 4 and "no results" in out.stderr and "runs --record" not in out.stderr
    shown = bare("show", str(first))  # without results: no deflated Sharpe to speak of in its note
    assert "no registry here counts it as a trial; compare it" in shown.stderr and "deflated" not in shown.stderr


def test_a_closed_output_pipe_does_not_stop_the_run(tmp_path):
    """`exitcore run v4 --budget quick 2>&1 | head -1`: the reader leaves after the first line,
    before the run is registered. The run used to exit 0 having done nothing (the CLI's
    `plugins | head` handling); it now goes on with its output discarded, as under nohup, and
    finishes, recorded as done."""
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "exitcore", "run", "v4", *SMOKE, "--runs-dir", str(runs)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_default_sigint)
    first = proc.stdout.readline()
    proc.stdout.close()  # `head -1` has what it wanted; every later write meets a closed pipe
    assert proc.wait(timeout=600) == 0
    assert first.startswith(b"exitcore run v4_no_lookahead: ")
    assert (runs / "registry.sqlite").exists(), "the run stopped before it was registered"
    (row,) = registry_rows(runs)
    assert row["status"] == "done", row
    assert (runs / row["run_dir"] / "results.json").exists()


@pytest.mark.parametrize("closed", [1, 2])
def test_run_started_with_stdout_or_stderr_closed_reports_as_usual(tmp_path, closed):
    """`exitcore run ... >&-` (or `2>&-`): Python gives sys.stdout/stderr None; the closed-pipe
    guard must not turn that into an AttributeError (exit 1) that hides the real outcome."""
    runs = tmp_path / "runs"
    keep = subprocess.PIPE
    proc = subprocess.run([sys.executable, "-m", "exitcore", "run", "v4_no_lookahed", "--runs-dir", str(runs)],
                          cwd=ROOT, stdin=subprocess.DEVNULL, stdout=keep if closed == 2 else None,
                          stderr=keep if closed == 1 else None, timeout=120,
                          preexec_fn=lambda: os.close(closed))
    assert proc.returncode == 2
    if closed == 1:
        assert b"unknown experiment 'v4_no_lookahed'" in proc.stderr and b"Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("run", "v4_no_lookahed"), "unknown experiment 'v4_no_lookahed'; did you mean v4_no_lookahead"),
        (("run", "v4", "--set", "ppo.n_envz=4"), "--set ppo.n_envz: unknown key 'n_envz' (did you mean 'n_envs'?)"),
        (("run", "v4", "--set", "ppo.learning_rate=fast"), "--set ppo.learning_rate: expected a number, got 'fast'"),
        (("run", "v4", "--budget", "quik"), "unknown budget 'quik' (did you mean 'quick'?)"),
        (("run", "v4", "--data", "/nonexistent/bars.csv"), "/nonexistent/bars.csv: no such file or folder"),
        (("run", "--resume", "20990101-000000-nope-0000"), "no run registry in"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_no_trace(tmp_path, args, message):
    runs = tmp_path / "runs"
    out = exitcore(*args, runs=runs)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and out.stderr.startswith("error: ")
    assert "Traceback" not in out.stderr
    assert not runs.exists(), "bad input must not create the runs directory or the registry"


def test_a_parquet_ledger_without_pyarrow_is_refused_before_the_data(tmp_path):
    # it failed after training and evaluation, leaving a failed run that could not be resumed
    hide = tmp_path / "hide"
    (hide / "pyarrow").mkdir(parents=True)
    (hide / "pyarrow" / "__init__.py").write_text("raise ImportError('No module named pyarrow')\n")
    runs = tmp_path / "runs"
    path = os.pathsep.join(filter(None, [str(hide), os.environ.get("PYTHONPATH", "")]))
    out = exitcore("run", "v4", *SMOKE, "--set", "eval.ledger_format=parquet", runs=runs, env={"PYTHONPATH": path})
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and "eval.ledger_format: 'parquet' needs pyarrow (pip install " \
        "'exitcore[parquet]'), or use 'csv'" in out.stderr
    assert not runs.exists()


def test_a_run_directory_path_finds_its_own_registry(tmp_path, finished_run):
    runs, _ = finished_run
    (row,) = registry_rows(runs)
    run_dir = str(runs / row["run_dir"])
    env = {k: v for k, v in os.environ.items() if k != "EXITCORE_RUNS_DIR"}

    def bare(*args):  # no --runs-dir, and no ./runs where it runs
        return subprocess.run([sys.executable, "-m", "exitcore", *args], cwd=tmp_path, capture_output=True, text=True,
                              env=env, timeout=300)

    out = bare("show", run_dir)
    assert out.returncode == 0 and re.match(rf"run +{row['id']}\n", out.stdout), out.stderr
    out = bare("compare", run_dir, run_dir, "--json")
    assert out.returncode == 0 and [r["run_id"] for r in json.loads(out.stdout)["runs"]] == [row["id"]] * 2, out.stderr
    out = exitcore("show", run_dir, runs=tmp_path / "elsewhere")
    assert out.returncode == 2 and f"the run directory given lies in {runs.resolve()}, not in --runs-dir" in out.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()
    # compare reads each run directory by the registry holding it, or alone: a recorded run beside
    # a colleague's directory kept elsewhere compares (it was refused as "not in --runs-dir")
    import shutil

    loose = tmp_path / "loose" / row["id"]
    shutil.copytree(runs / row["run_dir"], loose)
    out = exitcore("compare", row["id"], str(loose), "--json", runs=runs)
    assert out.returncode == 0, out.stderr
    assert [w.split(":")[0] for w in json.loads(out.stdout)["warnings"]] == ["SAME RUN"]
    # ids and experiment names are answered by the runs directory's registry whatever directories are
    # given beside them (with one directory they were looked up in its holder: "no run registry in loose")
    out = subprocess.run([sys.executable, "-m", "exitcore", "compare", str(loose), "v4", "--json"], cwd=tmp_path,
                         capture_output=True, text=True, env={**env, "EXITCORE_RUNS_DIR": str(runs)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert [w.split(":")[0] for w in json.loads(out.stdout)["warnings"]] == ["SAME RUN"]
    # directories alone need no registry: a --runs-dir without one is not an error (review Z)
    out = exitcore("compare", str(loose), run_dir, "--json", runs=tmp_path / "nowhere")
    assert out.returncode == 0 and not (tmp_path / "nowhere").exists(), out.stderr


def test_a_frictionless_run_is_warned_about(tmp_path):
    # and a run directory its registry does not record (a replaced registry): its trial is missing
    stray = tmp_path / "runs" / "20261101-000000-v4_no_lookahead-ab12"
    stray.mkdir(parents=True)
    (stray / "run.json").write_text("{}")
    out = exitcore("run", "v4", *SMOKE, "--set", "costs.spread_pips=0", "-q", runs=tmp_path / "runs")
    assert out.returncode == 0, out.stderr
    assert "warning: costs are zero: every result is frictionless" in out.stderr  # even with -q
    assert (f"warning: 1 run directory in {tmp_path / 'runs'} is not in its registry (e.g. {stray.name}: copied in, "
            "or the registry was replaced)") in out.stderr


def test_a_failed_run_is_not_resumed(tmp_path):
    from exitcore.registry import Registry

    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        run_id = reg.create_run("v4_no_lookahead", "cfg", "data")
        reg.mark_running(run_id)
        reg.mark_failed(run_id, "TrainingDiverged: loss is NaN")
    out = exitcore("run", "--resume", run_id, runs=runs)
    assert out.returncode == 4 and out.stderr.startswith("error: ")  # 4: the run's state, not bad input (2)
    assert f"run {run_id} failed (TrainingDiverged: loss is NaN); only an interrupted run can be resumed" in out.stderr
    # what to do instead (trial W: "start a new run" left the user to find --from); this run has
    # no directory, so no config.toml --from could start from (review AG)
    assert ("once the cause is fixed, `exitcore run v4_no_lookahead` starts a new run (it failed before writing "
            "its config.toml)\n") in out.stderr
    assert "loading data" not in out.stderr  # refused before any work
    with Registry(runs) as reg:
        done = reg.create_run("v4_no_lookahead", "cfg", "data")
        reg.mark_running(done)
        reg.mark_done(done)
    out = exitcore("run", "--resume", done, runs=runs)
    assert out.returncode == 4 and f"run {done} is already done; nothing to resume" in out.stderr


def test_runs_dir_that_is_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = exitcore("run", "v4", *SMOKE, runs=blocker / "runs")
    assert out.returncode == 2 and "is not writable" in out.stderr and "Traceback" not in out.stderr


def test_interrupt_then_resume_reaches_the_uninterrupted_parameters(tmp_path):
    import torch

    longer = ("--set", "ppo.total_timesteps=8192", "--set", "ppo.checkpoint_every=1")
    straight = tmp_path / "straight"
    out = exitcore("run", "v4", *SMOKE, *longer, runs=straight)
    assert out.returncode == 0, out.stderr

    runs = tmp_path / "interrupted"
    proc = exitcore("run", "v4", *SMOKE, *longer, runs=runs, wait=False)
    run_dir = wait_for_training(runs, proc)
    proc.send_signal(signal.SIGINT)  # training or evaluation (seconds) is still running: either is interrupted
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    (row,) = registry_rows(runs)
    assert row["status"] == "interrupted"
    assert f"exitcore run --resume {row['id']} --runs-dir {runs}" in err

    # a changed configuration or different data is refused, saying what differs
    out = exitcore("run", "--resume", row["id"], "--set", "ppo.learning_rate=0.001", runs=runs)
    assert out.returncode == 2 and "the resolved configuration changed (ppo.learning_rate: 0.0003 -> 0.001" in out.stderr
    out = exitcore("run", "--resume", row["id"], "--data", "synthetic?years=3&seed=9", runs=runs)
    # other data named on the command line is a configuration change, refused before loading it
    assert out.returncode == 2 and "the resolved configuration changed (data.params.seed: 0 -> 9)" in out.stderr
    assert "loading data" not in out.stderr
    assert registry_rows(runs)[0]["status"] == "interrupted"

    # an unreadable checkpoint is refused and the run stays resumable once the file is back
    checkpoint = run_dir / "checkpoint.pt"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[: len(good) // 2])
    out = exitcore("run", "--resume", row["id"][:22], runs=runs)
    assert out.returncode == 2 and f"{checkpoint}: cannot be read as a checkpoint" in out.stderr, out.stderr
    assert registry_rows(runs)[0]["status"] == "interrupted"

    # a readable checkpoint written under another [ppo] configuration (copied from another run)
    from exitcore.ppo.checkpoint import DIGEST_KEY, save_checkpoint

    state = torch.load(io.BytesIO(good), weights_only=True)
    foreign = {k: v for k, v in state.items() if k not in ("format", "version", DIGEST_KEY)}
    save_checkpoint(checkpoint, {**foreign, "ppo": {**state["ppo"], "seed": 3, "learning_rate": 0.003}})
    out = exitcore("run", "--resume", row["id"], runs=runs)
    assert out.returncode == 2 and f"{checkpoint}: this checkpoint was not written by this run: it was trained with " \
        "ppo.learning_rate = 0.003 (this run: 0.0003); ppo.seed = 3 (this run: 0)" in out.stderr, out.stderr
    assert "resumed at step" not in out.stderr and registry_rows(runs)[0]["status"] == "interrupted"
    # ... and one of this configuration whose network does not fit (checked only once training
    # starts): the file is at fault, so the run stays interrupted, resumable from a good one
    save_checkpoint(checkpoint, {**foreign, "model": {k: v[..., :1] if v.dim() > 1 else v
                                                      for k, v in state["model"].items()}})
    out = exitcore("run", "--resume", row["id"], runs=runs)
    assert out.returncode == 2 and f"run {row['id']} cannot continue from its checkpoint: {checkpoint}: " \
        "the checkpoint's model does not fit this policy" in out.stderr, out.stderr
    assert "The run stays interrupted" in out.stderr
    assert registry_rows(runs)[0]["status"] == "interrupted"
    checkpoint.write_bytes(good)

    # the run's directory names the run and its registry: no --runs-dir needed
    env = {k: v for k, v in os.environ.items() if k != "EXITCORE_RUNS_DIR"}
    out = subprocess.run([sys.executable, "-m", "exitcore", "run", "--resume", str(run_dir)], cwd=tmp_path,
                         capture_output=True, text=True, env={**env, "PYTHONUNBUFFERED": "1"}, timeout=600)
    assert out.returncode == 0, out.stderr
    assert re.search(r"done after 8,192 steps / 16 updates \([\d,]+ of them now\)", out.stderr)
    assert f"next: exitcore report {row['id']} --runs-dir {runs}   |   " in out.stdout  # the registry it used
    assert "resumed at step" in out.stderr
    assert registry_rows(runs)[0]["status"] == "done"
    a = torch.load(next(straight.glob("*/checkpoint.pt")), weights_only=False)["model"]
    b = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_the_frozen_configuration_without_the_experiments_file(tmp_path):
    """A run of an experiment from another experiments file resumes with the printed command
    alone, even after that file changed (a new experiment sharing the prefix, the run's own
    experiment edited): the run directory's config.toml is what continues."""
    project = SHIPPED_FILE.read_text(encoding="utf-8")
    mine = tmp_path / "mine.toml"
    mine.write_text(project + '\n[experiments.mine]\nextends = "v4_no_lookahead"\n', encoding="utf-8")
    runs = tmp_path / "runs"
    proc = exitcore("--experiments", str(mine), "run", "mine", "--set", "ppo.total_timesteps=8192",
                    "--set", "ppo.checkpoint_every=1", *SMOKE, runs=runs, wait=False)
    wait_for_training(runs, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    (row,) = registry_rows(runs)
    hint = re.search(r"continue it with: (exitcore run --resume \S+ --runs-dir \S+)", err)
    assert hint and "--experiments" not in hint.group(1), err
    mine.write_text(project + '\n[experiments.mine]\nextends = "v4_no_lookahead"\nppo = { learning_rate = 0.01 }\n'
                    '[experiments.mine_too]\nextends = "v1"\n', encoding="utf-8")
    # the edited file is not what continues: only a change given on the command line is seen
    out = exitcore("--experiments", str(mine), "run", "mine", "--resume", row["id"], "--set", "ppo.n_epochs=3", runs=runs)
    assert out.returncode == 2 and "the resolved configuration changed (ppo.n_epochs: 2 -> 3)" in out.stderr, out.stderr
    assert "ambiguous" not in out.stderr and "learning_rate" not in out.stderr
    # the printed command, from the project's directory, whose experiments.toml has no 'mine';
    # options given again that change nothing are accepted, the budget too (the run's own
    # --set ppo.total_timesteps=8192 still applies after it, as when the run started)
    out = exitcore("run", "mine", "--resume", row["id"], "--seed", str(row["seed"]), *SMOKE, runs=runs)
    assert out.returncode == 0, out.stderr
    assert "resumed at step" in out.stderr and registry_rows(runs)[0]["status"] == "done"
    # the rewritten run.json keeps the extends chain the run was resolved through
    info = json.loads((runs / row["run_dir"] / "run.json").read_text())
    assert info["lineage"] == ["v1", "v2_exit_guards", "v4_no_lookahead", "mine"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_while_training_checkpoints_and_marks_the_run_interrupted(tmp_path, signum):
    """SIGHUP (the terminal closed) as SIGTERM: it killed the run outright, 129 (trial Z)."""
    runs = tmp_path / "runs"
    proc = exitcore("run", "v4", *SMOKE, "--set", "ppo.total_timesteps=1000000", "--json", runs=runs, wait=False)
    run_dir = wait_for_training(runs, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    (row,) = registry_rows(runs)
    assert row["status"] == "interrupted" and f"exitcore run --resume {row['id']}" in err
    assert {k: json.loads(out)[k] for k in ("id", "status")} == {"id": row["id"], "status": "interrupted"}  # --json
    import torch

    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert 0 < ckpt["global_step"] < 1_000_000


def test_killed_run_is_marked_interrupted_on_the_next_start(tmp_path):
    runs = tmp_path / "runs"
    proc = exitcore("run", "v4", *SMOKE, "--set", "ppo.total_timesteps=1000000", runs=runs, wait=False)
    wait_for_training(runs, proc)
    proc.kill()
    proc.wait(timeout=30)
    assert registry_rows(runs)[0]["status"] == "running"  # nobody has looked yet
    out = exitcore("runs", runs=runs)
    assert out.returncode == 0
    (row,) = registry_rows(runs)
    assert row["status"] == "interrupted"
    # it ran until its training log was written, though no heartbeat came after its start: the
    # duration runs to the last file it wrote, not 0:00:00
    last_written = max(p.stat().st_mtime for p in (runs / row["run_dir"]).iterdir() if p.is_file())
    import datetime as dt

    assert dt.datetime.fromisoformat(row["ended_at"]).timestamp() == pytest.approx(last_written, abs=2e-3)
    assert row["ended_at"] > row["started_at"]


def test_two_concurrent_runs_share_one_registry(tmp_path):
    runs = tmp_path / "runs"
    procs = [exitcore("run", "v4", *SMOKE, "--seed", str(seed), runs=runs, wait=False) for seed in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    rows = registry_rows(runs)
    assert sorted(r["seed"] for r in rows) == [1, 2] and {r["status"] for r in rows} == {"done"}
    assert len({r["run_dir"] for r in rows}) == 2
    with sqlite3.connect(runs / "registry.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # trial counting saw both configurations on this data
    assert json.loads(rows[1]["metrics"]) and len({r["config_hash"] for r in rows}) == 2


def test_compare_flags_running_runs_and_different_data(tmp_path, finished_run):
    runs_a, _ = finished_run
    (row,) = registry_rows(runs_a)
    out = exitcore("compare", row["id"], "v4", "--json", runs=runs_a)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [r["run_id"] for r in data["runs"]] == [row["id"], row["id"]]
    assert data["warnings"] == [f"SAME RUN: {row['id']} is listed more than once (an experiment name stands for its "
                                "latest run); its columns are identical"]
    out = exitcore("compare", row["id"], "v4", "--csv", runs=runs_a)
    assert out.returncode == 0 and out.stdout.startswith("metric,")
    table = exitcore("compare", row["id"], "v4", runs=runs_a).stdout
    by_dir = exitcore("compare", str(runs_a / row["run_dir"]), "v4", "--json", runs=runs_a)  # a run directory works too
    assert by_dir.returncode == 0 and [r["run_id"] for r in json.loads(by_dir.stdout)["runs"]] == [row["id"]] * 2, by_dir.stderr
    shown = exitcore("show", str(runs_a / row["run_dir"]), runs=runs_a)
    assert shown.returncode == 0 and row["id"] in shown.stdout, shown.stderr
    mean_bp = data["runs"][0]["metrics"]["mean_return"] * 1e4
    assert re.search(rf"mean return per trade \(bp\) +{mean_bp:.2f} ", table)  # basis points, as in the report
    assert "H=HOLD E=EXIT" in table and "Tg=target Ti=time" in table  # the share letters explained
    # each Sharpe comes with its bootstrap interval and deflated Sharpe, as evaluated
    iv = json.loads((runs_a / row["run_dir"] / "results.json").read_text())["evaluators"]["significance"]["intervals"]["rl"]["sharpe"]
    assert re.search(rf"Sharpe interval \(bootstrap\) +\[{iv['low']:.2f}, {iv['high']:.2f}\] 95% ", table), table
    assert re.search(r"deflated Sharpe \(trials at run time\) +\d\.\d{3} \(N = 1\) ", table)

    runs = tmp_path / "runs"
    proc = exitcore("run", "v4", *SMOKE, "--set", "ppo.total_timesteps=1000000", runs=runs, wait=False)
    try:
        wait_for_training(runs, proc)
        running = registry_rows(runs)[0]["id"]
        out = exitcore("compare", running, running, runs=runs)
        assert out.returncode == 75 and "still running" in out.stderr  # 75: try again later, not bad input (2)
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_compare_v3_v4_shows_the_look_ahead_bug(tmp_path, full_scale):
    """The research log's story after short runs: v3's leaky observation gives implausible
    out-of-sample numbers and a failing audit; v4 passes. (Reduced: half the quick budget.)"""
    runs = tmp_path / "runs"
    size = () if full_scale else ("--timesteps", "131072", "--set", "eval.audit_decisions=16")
    for name in ("v3", "v4"):
        out = exitcore("run", name, "--budget", "quick", *size, runs=runs)
        assert out.returncode == 0, out.stderr
    out = exitcore("compare", "v3", "v4", "--json", runs=runs)
    assert out.returncode == 0, out.stderr
    v3, v4 = (r["metrics"] for r in json.loads(out.stdout)["runs"])
    assert v3["audit_verdict"] == "FAIL" and v4["audit_verdict"] == "PASS"
    assert v3["sharpe"] > 4 > v4["sharpe"]  # beyond the audit's SUSPECT threshold
    assert v3["win_rate"] > v4["win_rate"] + 0.1
    assert v3["max_drawdown"] < v4["max_drawdown"]
    table = exitcore("compare", "v3", "v4", runs=runs).stdout
    assert "look-ahead audit" in table and "FAIL" in table and "features[3].name" in table


# Ctrl-C, SIGTERM (a scheduler), the disk filling up as the ledgers are written (an OS error,
# not the experiment's fault), or an evaluator's bug (fixed before the resume: the training is kept)
_STOPS = {
    "evaluator bug": "            raise ValueError('cannot divide the trades by zero days')\n",
    "ctrl-c": "            raise KeyboardInterrupt\n",
    "sigterm": "            import signal\n            os.kill(os.getpid(), signal.SIGTERM)\n",
    "disk full": "            import exitcore.evaluation.evaluate as ev\n"
                 "            def full(*a, **k):\n"
                 "                raise OSError(28, 'No space left on device', 'ledger_test.csv')\n"
                 "            ev.write_ledgers = full\n",
    # exitcore's own bug (not a plugin's): its traceback is kept, and the run still resumes
    "exitcore bug": "            import exitcore.evaluation.evaluate as ev\n"
                    "            def broken(*a, **k):\n"
                    "                raise ZeroDivisionError('a bug in exitcore itself')\n"
                    "            ev.write_ledgers = broken\n",
}


@pytest.mark.parametrize("stop", list(_STOPS))
def test_interrupt_while_evaluating_is_resumable(tmp_path, stop):
    """Ctrl-C after training (here: an evaluator plugin raising KeyboardInterrupt once), a full
    disk when the ledgers are written, or an evaluator plugin's bug marks the run interrupted (a
    full disk and a bug used to mark it failed: its training could not be resumed, a
    plugin-author trial); --resume skips the finished training and evaluates."""
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    marker = tmp_path / "interrupted-once"
    (plugin_dir / "interrupting_eval.py").write_text(
        "import os\nfrom exitcore import hookimpl\n\n"
        "def build(params, ctx):\n"
        "    def evaluate(ledger, context):\n"
        f"        if not os.path.exists({str(marker)!r}):\n"
        f"            open({str(marker)!r}, 'w').close()\n"
        + _STOPS[stop] +
        "        return {'ok': True}\n"
        "    return evaluate\n\n"
        "@hookimpl\ndef register_evaluators(register):\n    register('interrupting', build)\n"
    )
    info = plugin_dir / "interrupting_eval-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: interrupting-eval\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\ninterrupting = interrupting_eval\n")
    env = {"PYTHONPATH": str(plugin_dir)}
    runs = tmp_path / "runs"
    args = ("run", "v4", *SMOKE, "--set", 'eval.evaluators=[{name="trade_metrics"}, {name="interrupting"}]')
    out = exitcore(*args, runs=runs, env=env)
    assert out.returncode == (1 if stop in ("disk full", "evaluator bug", "exitcore bug") else 130), out.stderr
    (row,) = registry_rows(runs)
    assert row["status"] == "interrupted" and "while evaluating" in row["error"]
    if stop == "exitcore bug":
        assert "Traceback (most recent call last)" in out.stderr and "in broken" in out.stderr
        assert out.stderr.rstrip().endswith(
            f"ZeroDivisionError: a bug in exitcore itself\nrun {row['id']} is marked interrupted: its training is complete "
            f"and checkpointed; once the cause is fixed, `exitcore run --resume {row['id']} --runs-dir {runs}` evaluates "
            f"it again, unless the fix changed exitcore itself: a resume continues the code the run started with, so "
            f"`exitcore run --from {row['id']} --runs-dir {runs}` then trains it again"), out.stderr
    else:
        assert f"continue it with: exitcore run --resume {row['id']}" in out.stderr
    # what a kill in the middle of an atomic write leaves behind is cleared on resume
    stale = runs / row["run_dir"] / ".ledger_test.csv.k2x9_a0b.tmp.csv"
    stale.write_text("half a ledger")
    if stop == "disk full":
        assert "stopped while evaluating: [Errno 28] No space left on device: 'ledger_test.csv'; its checkpoint is in" in out.stderr, out.stderr
    if stop == "evaluator bug":
        # "failed" said the run was written off, while it is interrupted and resumed (trial W)
        assert (f"run {row['id']} stopped while evaluating: --set eval.evaluators (evaluator 'interrupting' from "
                "interrupting (interrupting-eval 1.0)) failed: ValueError: cannot divide the trades by zero days (at ") in out.stderr
        assert ("interrupting_eval.py:8); its training is complete: fix the cause and resume it to evaluate it again; its "
                "checkpoint is in") in out.stderr, out.stderr
    out = exitcore("run", "--resume", row["id"], runs=runs, env=env)
    assert out.returncode == 0, out.stderr
    assert "resumed at step 2,048" in out.stderr and registry_rows(runs)[0]["status"] == "done"
    results = json.loads((runs / row["run_dir"] / "results.json").read_text())
    assert results["evaluators"]["interrupting"] == {"ok": True}
    assert not stale.exists()
    # run.json keeps the first start's command (and code version); the resume is listed after it
    info = json.loads((runs / row["run_dir"] / "run.json").read_text())
    assert "v4" in info["command"] and "--resume" not in info["command"]
    assert [("--resume" in r["command"]) for r in info["resumes"]] == [True] and info["resumes"][0]["at"]


def _plugin(tmp_path, module: str, source: str) -> dict[str, str]:
    """A plugin distribution ``module`` (1.0) in a folder; the env that makes it importable."""
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / f"{module}.py").write_text(source)
    info = plugin_dir / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[exitcore]\n{module} = {module}\n")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(plugin_dir), os.environ.get("PYTHONPATH", "")) if p)}


def test_an_entry_strategy_without_trades_is_named(tmp_path):
    env = _plugin(tmp_path, "quiet", (
        "import pandas as pd\nfrom exitcore import hookimpl\nfrom exitcore.data.bars import Trades\n\n"
        "COLUMNS = {'signal_bar': 'int64', 'direction': 'int64', 'stop_dist': 'float64', 'target_dist': 'float64'}\n\n"
        "@hookimpl\ndef register_entry_strategies(register):\n"
        "    register('quiet', lambda params, ctx: lambda bars: Trades(pd.DataFrame(\n"
        "        {c: pd.Series([], dtype=t) for c, t in COLUMNS.items()})))\n"))
    out = exitcore("run", "v4", *SMOKE, "--set", "entry.name=quiet", runs=tmp_path / "runs", env=env)
    assert out.returncode == 2, out.stderr
    assert "an entry strategy that trades more often than entry strategy 'quiet' from quiet (quiet 1.0)" in out.stderr


@pytest.mark.parametrize("sane_calls", [0, 12])
def test_a_policy_giving_nan_is_named_when_training_diverges(tmp_path, sane_calls):
    """"training diverged in update 1: non-finite policy outputs" did not say which policy. A
    policy NaN on the first observations is refused before the run is recorded (trial Y); one
    that goes NaN later (after `sane_calls` forward passes: past the checks of its build) stops
    the training, named."""
    env = _plugin(tmp_path, "nan_policy", (
        "import torch\nfrom exitcore import hookimpl\n\n"
        "class NanPolicy(torch.nn.Module):\n"
        "    def __init__(self, obs_dim, n_actions):\n"
        "        super().__init__()\n"
        "        self.linear = torch.nn.Linear(obs_dim, n_actions + 1)\n"
        "        self.calls = 0\n"
        "    def forward(self, obs):\n"
        "        self.calls += 1\n"
        f"        out = self.linear(obs) * (float('nan') if self.calls > {sane_calls} else 1.0)\n"
        "        return out[:, :-1], out[:, -1]\n\n"
        "@hookimpl\ndef register_policies(register):\n"
        "    register('nan_policy', lambda params, ppo, obs_dim, n_actions: NanPolicy(obs_dim, n_actions))\n"))
    out = exitcore("run", "v4", *SMOKE, "--set", "ppo.policy=nan_policy", runs=tmp_path / "runs", env=env)
    if sane_calls == 0:
        assert out.returncode == 2, out.stderr
        assert "policy 'nan_policy' from nan_policy (nan-policy 1.0) returned NaN or inf for the first " \
               "observations" in out.stderr and not (tmp_path / "runs" / "registry.sqlite").exists()
        return
    assert out.returncode == 1, out.stderr
    assert ("non-finite policy outputs (values or log-probs) in the rollout (policy 'nan_policy' from nan_policy "
            "(nan-policy 1.0): its forward returned nan or inf") in out.stderr, out.stderr
    # and where the last good state went (the trainer's note was dropped on the way to the terminal)
    assert "; state of the last complete update (0) written to " in out.stderr and "checkpoint.pt" in out.stderr


class _Book:
    """A registry and plugin host that only note what they are told."""

    def __init__(self):
        self.marks = []

    def mark_interrupted(self, run_id, why):
        self.marks.append(("interrupted", why))

    def mark_failed(self, run_id, why):
        self.marks.append(("failed", why))

    def run_finished(self, info, status, results):
        pass


@pytest.mark.parametrize("exc, resumable, status", [
    (OSError(28, "No space left on device"), True, "interrupted"),  # the machine's state: resumable
    (BrokenPipeError(32, "Broken pipe"), True, "interrupted"),
    (FileNotFoundError(2, "No such file", "calendar.csv"), True, "failed"),  # a plugin's missing file: again on resume
    (OSError(28, "No space left on device"), False, "failed"),  # a new run's config.toml: nothing to resume from
])
def test_which_os_errors_leave_a_run_resumable(tmp_path, exc, resumable, status):
    from exitcore.runner import RunFailed, RunInfo, RunInterrupted, _recorded

    book = _Book()
    info = RunInfo("r1", tmp_path, None, "hash")
    with pytest.raises(RunInterrupted if status == "interrupted" else RunFailed):
        with _recorded(book, book, info, "writing its configuration", resumable=resumable):
            raise exc
    assert [m[0] for m in book.marks] == [status]


def test_a_checkpoint_from_before_a_ppo_key_existed_still_resumes(tmp_path, monkeypatch):
    """The resume check compares the checkpoint's [ppo] table with the run's: only the keys the
    checkpoint has (one written before ppo.policy_params existed lacks it, and was refused);
    the walk-forward windows' checkpoints too."""
    from types import SimpleNamespace

    from exitcore.config import PPOConfig, unstructure
    from exitcore.errors import CheckpointError
    from exitcore.ppo import checkpoint as ckpt
    from exitcore.resume import check_checkpoint

    (tmp_path / "checkpoint.pt").write_bytes(b"stand-in: load_checkpoint is replaced below")
    run = SimpleNamespace(config=SimpleNamespace(ppo=PPOConfig()))
    older = {k: v for k, v in unstructure(PPOConfig()).items() if k != "policy_params"}
    monkeypatch.setattr(ckpt, "load_checkpoint", lambda path: {"ppo": older, "update": 0})
    check_checkpoint(tmp_path, run)  # accepted
    monkeypatch.setattr(ckpt, "load_checkpoint", lambda path: {"ppo": {**older, "seed": 7}, "update": 0})
    with pytest.raises(CheckpointError, match=r"ppo.seed = 7 \(this run: 0\)"):
        check_checkpoint(tmp_path, run)
    # a walk-forward window's checkpoint is checked alike (it was resumed from unchecked)
    window = tmp_path / "walk_forward" / "window_2" / "checkpoint.pt"
    window.parent.mkdir(parents=True)
    window.write_bytes(b"stand-in")
    monkeypatch.setattr(ckpt, "load_checkpoint",
                        lambda path: {"ppo": {**older, "seed": 7 if path == window else 0}, "update": 0})
    with pytest.raises(CheckpointError, match=rf"{window}: this checkpoint was not written by this run.*a window's "
                                              "checkpoint may also be deleted: walk-forward window 2 then trains again"):
        check_checkpoint(tmp_path, run)


def test_walk_forward_windows_call_iteration_end_and_honour_its_stop(tmp_path, capsys):
    """Walk-forward windows' trainings passed only a heartbeat as on_update: plugins heard none
    of their updates, and a plugin's early stop (docs/plugins.md: 'after every PPO update') did
    nothing there (a code review)."""
    from exitcore import hookimpl
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.runner import RunRequest, execute

    heard = []

    class Counting:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            heard.append((metrics.get("window"), update))
            return "window 2 has seen enough" if metrics.get("window") == 2 and update == 1 else None

    request = RunRequest(experiment="v4_no_lookahead", budget="smoke", runs_dir=str(tmp_path / "runs"),
                         overrides=("eval.walk_forward=2", "ppo.total_timesteps=1024"))
    outcome = execute(request, load_experiments(SHIPPED_FILE), PluginHost.create(plugins=[Counting()]))
    assert outcome.status == "done", outcome
    # 1,024 steps of 16 envs x 32 steps: 2 updates in the run's training and in window 1; window 2 stops after 1
    assert heard == [(None, 1), (None, 2), (1, 1), (1, 2), (2, 1)]
    assert "window 2: training ended early at step 512 of 1,024: window 2 has seen enough" in capsys.readouterr().err
    window_2 = Path(outcome.run_dir) / "walk_forward" / "window_2" / "train_log.jsonl"
    assert len(window_2.read_text().splitlines()) == 1
    # the walk-forward figures are recorded with the headline (show, runs) and end the summary
    (row,) = registry_rows(tmp_path / "runs")
    recorded = json.loads(row["metrics"])
    assert recorded["walk_forward_windows"] == 2 and isinstance(recorded["walk_forward_sharpe"], float)
    assert outcome.report.splitlines()[-1].startswith("walk-forward over 2 windows: RL Sharpe ")


def test_a_plugin_failing_in_a_walk_forward_window_is_not_called_an_evaluation_failure(tmp_path):
    """A plugin raising in a window's iteration_end failed the run 'while evaluating', although
    the run's evaluation had finished (results.json written): the walk-forward is its own stage."""
    from exitcore import hookimpl
    from exitcore.errors import PluginError
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.runner import RunFailed, RunRequest, execute

    class Broken:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            if metrics.get("window") == 1:
                raise PluginError("the monitor lost its connection")

    runs = tmp_path / "runs"
    with pytest.raises(RunFailed, match="failed while walking forward .*the monitor lost its connection"):
        execute(RunRequest(experiment="v4_no_lookahead", budget="smoke", runs_dir=str(runs),
                           overrides=("eval.walk_forward=2", "ppo.total_timesteps=1024")),
                load_experiments(SHIPPED_FILE), PluginHost.create(plugins=[Broken()]), quiet=True)
    (row,) = registry_rows(runs)
    assert row["status"] == "failed" and row["error"].startswith("while walking forward (training and testing its windows)")
    assert (runs / row["run_dir"] / "results.json").is_file()


def test_a_failure_after_the_walk_forward_windows_is_recorded(tmp_path, monkeypatch):
    """The walk-forward figures were gathered between the two recorded stages: a failure there
    left the run 'running' (then shown interrupted, with no error) instead of failed."""
    from exitcore.evaluation import rundir
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.runner import RunFailed, RunRequest, execute

    def broken(wf):
        raise ValueError("a bug in the walk-forward headline")

    monkeypatch.setattr(rundir, "walk_forward_headline", broken)
    runs = tmp_path / "runs"
    with pytest.raises((RunFailed, ValueError)):
        execute(RunRequest(experiment="v4_no_lookahead", budget="smoke", runs_dir=str(runs),
                           overrides=("eval.walk_forward=2", "ppo.total_timesteps=1024")),
                load_experiments(SHIPPED_FILE), PluginHost.create(), quiet=True)
    (row,) = registry_rows(runs)
    assert (row["status"], row["error"]) == ("failed", "while walking forward (training and testing its windows): "
                                                       "ValueError: a bug in the walk-forward headline")


def test_a_stop_a_plugin_asks_for_as_ctrl_c_arrives_holds_for_the_resume(tmp_path):
    """Ctrl-C during the update in which a plugin ended training returned 'interrupted' without
    the plugin's reason: its resume trained on past the stop (the run's and a window's)."""
    import signal

    from exitcore import hookimpl
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.runner import RunInterrupted, RunRequest, execute

    heard = []

    class EnoughAsCtrlCArrives:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            where = (metrics.get("window"), update)
            heard.append(where)
            if where in ((None, 1), (1, 1)) and heard.count(where) == 1:
                signal.raise_signal(signal.SIGINT)  # honoured once the update's bookkeeping is done
                return f"enough at {where}"
            return None

    runs, file = tmp_path / "runs", load_experiments(SHIPPED_FILE)
    host = PluginHost.create(plugins=[EnoughAsCtrlCArrives()])
    stopped = execute(RunRequest(experiment="v4_no_lookahead", budget="smoke", runs_dir=str(runs),
                                 overrides=("eval.walk_forward=2", "ppo.total_timesteps=1024")), file, host, quiet=True)
    assert stopped.status == "interrupted" and heard == [(None, 1)]
    run_json = stopped.run_dir / "run.json"
    assert json.loads(run_json.read_text())["stopped_early"] == "enough at (None, 1)"
    with pytest.raises(RunInterrupted):  # the run's training ends at once; window 1 stops as it did
        execute(RunRequest(resume=stopped.run_id, runs_dir=str(runs)), file, host, quiet=True)
    assert heard == [(None, 1), (1, 1)]
    assert json.loads(run_json.read_text())["walk_forward_stopped_early"] == {"1": "enough at (1, 1)"}
    steps = json.loads(run_json.read_text())["walk_forward_stopped_early_steps"]
    assert list(steps) == ["1"] and steps["1"] > 0  # part of the run's trial, as its own stop is
    (row,) = registry_rows(runs)
    assert json.loads(row["params"])["walk_forward_stopped_at"] == steps
    assert json.loads(row["params"])["stopped_at_step"] == json.loads(run_json.read_text())["stopped_early_step"]
    done = execute(RunRequest(resume=stopped.run_id, runs_dir=str(runs)), file, host, quiet=True)
    assert done.status == "done" and heard == [(None, 1), (1, 1), (2, 1), (2, 2)]
    assert [len((stopped.run_dir / d / "train_log.jsonl").read_text().splitlines())
            for d in (".", "walk_forward/window_1", "walk_forward/window_2")] == [1, 1, 2]


@pytest.mark.parametrize("when", ["update 2", "run_started"])
def test_a_runs_directory_moved_while_a_run_trains_stops_it_and_it_resumes_in_its_new_place(tmp_path, capsys, when):
    """Trial Z 2: a runs directory moved mid-training (to a bigger disk) failed the run, and its
    next checkpoint was written into a directory made afresh at the old path. Now the run stops
    at its next update, writes nothing at the old path, is recorded interrupted in the moved
    registry, and resumes there."""
    from exitcore import hookimpl
    from exitcore.errors import RunDirGone
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.registry import Registry
    from exitcore.runner import RunFailed, RunRequest, execute

    runs, moved, file = tmp_path / "runs", tmp_path / "moved", load_experiments(SHIPPED_FILE)

    class MoverAtUpdate2:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            if when == "update 2" and update == 2 and runs.exists():
                runs.rename(moved)

        @hookimpl
        def run_started(self, run):  # before training (review AJ: the check was armed only then)
            if when == "run_started":
                runs.rename(moved)

    request = dict(experiment="v4_no_lookahead", budget="smoke", runs_dir=str(runs),
                   overrides=("ppo.total_timesteps=4096", "ppo.checkpoint_every=1"))
    with pytest.raises(RunFailed, match="was moved or deleted while the run ran") as failed:
        execute(RunRequest(**request), file, PluginHost.create(plugins=[MoverAtUpdate2()]), quiet=True)
    assert isinstance(failed.value.__cause__, RunDirGone)
    assert not runs.exists()  # no stray directory, no checkpoint at the old path
    with Registry(moved, create=False) as registry:
        (record,) = registry.list()
    assert record.status == "interrupted" and "moved or deleted" in record.error
    assert f"--resume {record.id} --runs-dir NEW_PLACE" in str(failed.value)
    if when == "update 2":
        logged = (moved / record.run_dir / "train_log.jsonl").read_text().splitlines()
        assert len(logged) == 2  # the update that noticed was logged through its open file, in the moved place
    else:
        assert not (moved / record.run_dir / "train_log.jsonl").exists()  # stopped before the trainer began
    assert "Traceback" not in capsys.readouterr().err  # TensorBoard's writer thread too (it reopens files by path)
    done = execute(RunRequest(resume=record.id, runs_dir=str(moved)), file, PluginHost.create(), quiet=True)
    assert done.status == "done" and not runs.exists()


def test_a_relative_data_path_is_found_by_resume_and_audit_from_another_directory(tmp_path, monkeypatch):
    """Trial AB: an experiments file reading `data/bars.csv` froze the path as written, and
    run.json named it so too: `audit RUN` and `run --resume` from any other directory failed
    with "no such file ... if the file moved". run.json records where the bars were read,
    absolute, and both take it where config.toml's path is not found from here."""
    import signal

    from exitcore import hookimpl
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.runner import RunRequest, execute

    from click.testing import CliRunner

    from exitcore.cli import cli

    project, elsewhere, runs = tmp_path / "project", tmp_path / "elsewhere", tmp_path / "runs"
    (project / "data").mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    made = CliRunner().invoke(cli, ["data", "synth", "-o", "data/bars.csv", "--years", "0.2"])
    assert made.exit_code == 0, made.output
    (project / "experiments.toml").write_text('[experiments.mine]\nextends = "v4_no_lookahead"\n'
                                              'data = { source = "csv", params = { path = "data/bars.csv" } }\n')

    class CtrlCAtUpdate1:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            signal.raise_signal(signal.SIGINT)

    file = load_experiments(project / "experiments.toml")
    stopped = execute(RunRequest(experiment="mine", budget="smoke", runs_dir=str(runs)), file,
                      PluginHost.create(plugins=[CtrlCAtUpdate1()]), quiet=True)
    assert stopped.status == "interrupted"
    info = json.loads((stopped.run_dir / "run.json").read_text())
    assert info["data"]["source"] == f"csv: {project / 'data' / 'bars.csv'}"
    monkeypatch.chdir(elsewhere)
    done = execute(RunRequest(resume=stopped.run_id, runs_dir=str(runs)), file, PluginHost.create(), quiet=True)
    assert done.status == "done"
    audited = CliRunner().invoke(cli, ["audit", str(stopped.run_dir), "--decisions", "4"])
    assert audited.exit_code == 0, audited.output
    assert "where the run last read them; config.toml's path is not found from here" in audited.output


def test_a_resume_that_trains_again_from_step_0_drops_the_stop_it_lost(tmp_path):
    """A run a plugin stopped, interrupted and resumed without its checkpoint trains again from
    step 0 to the end: it kept the stop (run.json and its trial), although nothing stopped it
    (review AD)."""
    import signal

    from exitcore import hookimpl
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.runner import RunRequest, execute

    class EnoughAsCtrlCArrives:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            signal.raise_signal(signal.SIGINT)
            return "enough"

    runs, file = tmp_path / "runs", load_experiments(SHIPPED_FILE)
    stopped = execute(RunRequest(experiment="v4_no_lookahead", budget="smoke", runs_dir=str(runs)), file,
                      PluginHost.create(plugins=[EnoughAsCtrlCArrives()]), quiet=True)
    assert stopped.status == "interrupted"
    run_json = stopped.run_dir / "run.json"
    assert json.loads(run_json.read_text())["stopped_early"] == "enough"
    assert "stopped_at_step" in json.loads(registry_rows(runs)[0]["params"])
    (stopped.run_dir / "checkpoint.pt").unlink()
    done = execute(RunRequest(resume=stopped.run_id, runs_dir=str(runs)), file, PluginHost.create(), quiet=True)
    assert done.status == "done"
    info = json.loads(run_json.read_text())
    assert "stopped_early" not in info and "stopped_early_step" not in info
    assert "stopped_at_step" not in json.loads(registry_rows(runs)[0]["params"])


def test_a_plugin_ends_training_early_and_the_run_is_still_evaluated(tmp_path, capsys):
    """iteration_end returning a reason ends training after that update; the run is done and
    evaluated with the steps trained so far (raising instead fails the run)."""
    from exitcore import hookimpl
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.runner import RunRequest, execute

    class Enough:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            return f"enough after update {update}" if update == 2 else None

    request = RunRequest(experiment="v4_no_lookahead", budget="smoke", runs_dir=str(tmp_path / "runs"))
    # the same configuration trained to the end first: the stopped run is another trial, counted so
    # by its own evaluation (the stop is recorded before it counts the trials)
    assert execute(request, load_experiments(SHIPPED_FILE), PluginHost.create(), quiet=True).status == "done"
    capsys.readouterr()
    outcome = execute(request, load_experiments(SHIPPED_FILE), PluginHost.create(plugins=[Enough()]))
    assert outcome.status == "done" and outcome.results, outcome
    assert "ended early, before the 2,048 steps asked for: enough after update 2" in capsys.readouterr().err
    full, row = registry_rows(tmp_path / "runs")
    assert "stopped_at_step" not in json.loads(full["params"])
    assert json.loads((Path(outcome.run_dir) / "results.json").read_text())["n_trials"] == 2
    assert row["status"] == "done"
    log = [json.loads(line) for line in (Path(outcome.run_dir) / "train_log.jsonl").read_text().splitlines()]
    assert [r["update"] for r in log] == [1, 2] and log[-1]["global_step"] == 1024  # of 4 updates of 512
    assert (Path(outcome.run_dir) / "results.json").is_file()
    # the report says why, later: run.json keeps the reason
    from exitcore.evaluation.report import render_report

    info = json.loads((Path(outcome.run_dir) / "run.json").read_text())
    assert (info["stopped_early"], info["stopped_early_step"]) == ("enough after update 2", 1024)
    # another trial than the configuration trained to the end, counted before its evaluation
    assert json.loads(row["params"])["stopped_at_step"] == 1024
    from exitcore.recording import row_of  # `runs --record` records the same trial

    assert json.loads(row_of(Path(outcome.run_dir))["params"])["stopped_at_step"] == 1024
    # a run that recorded its stop before exitcore kept the step: its training log gives it
    info.pop("stopped_early_step")
    (Path(outcome.run_dir) / "run.json").write_text(json.dumps(info))
    assert json.loads(row_of(Path(outcome.run_dir))["params"])["stopped_at_step"] == 1024
    assert "1024 trained (2048 requested: stopped early by a plugin: enough after update 2)" in render_report(Path(outcome.run_dir))


def test_run_prints_the_datas_warnings_and_where_to_see_the_rest(capsys):
    """Only holes longer than a week were printed; the data's other warnings (duplicates
    dropped, partly filled resampled bars) were recorded in the run and nowhere else on screen."""
    from types import SimpleNamespace

    from exitcore.data.bars import Finding
    from exitcore.runner import SHOW_DATA_WARNINGS, _warn_data

    found = [Finding("warning", f"f.csv, line {i}", "duplicate timestamp dropped") for i in range(SHOW_DATA_WARNINGS + 2)]
    _warn_data(SimpleNamespace(findings=(Finding("error", "", "never printed"), *found)), "'my data.csv'")
    err = capsys.readouterr().err.splitlines()
    assert err[:SHOW_DATA_WARNINGS] == [str(f) for f in found[:SHOW_DATA_WARNINGS]]
    assert err[-1] == "warning: 2 more data warnings: `exitcore data inspect 'my data.csv'` lists them all"
    assert len(err) == SHOW_DATA_WARNINGS + 1


def test_a_cpu_resume_with_another_thread_count_is_warned_about(capsys):
    """A resume with OMP_NUM_THREADS=2 after a 1-thread start silently lost the bit-for-bit
    promise (weights 6e-8 off); run.json did not even record the count."""
    from exitcore.runner import _warn_other_threads

    _warn_other_threads({"threads": 1, "resumes": [{"threads": 2}]}, "cpu")
    assert capsys.readouterr().err == (
        "warning: this run first trained with 1 torch thread, and resumes with 2 (OMP_NUM_THREADS): the continuation "
        "will not be bit-identical to an uninterrupted run; resume with OMP_NUM_THREADS=1 for that\n")
    for meta, device in (({"threads": 2, "resumes": [{"threads": 2}]}, "cpu"),  # same count
                         ({"threads": 1, "resumes": [{"threads": 2}]}, "cuda"),  # the GPU's kernels decide there
                         ({"resumes": [{"threads": 2}]}, "cpu")):  # started before the count was recorded
        _warn_other_threads(meta, device)
        assert capsys.readouterr().err == ""


def test_a_run_is_reproduced_from_its_directory_as_the_same_trial(tmp_path, monkeypatch):
    """There was no way to re-run a run from what its directory holds: its config.toml was
    refused as an experiments file, and the experiments file that defined it may have changed
    (a reproducibility trial). `run --from RUN` starts a new run with RUN's frozen configuration."""
    from click.testing import CliRunner

    from exitcore.cli import cli
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.registry import Registry
    from exitcore.runner import RunRequest, execute

    runs = tmp_path / "runs"
    first = execute(RunRequest(experiment="v4_no_lookahead", budget="smoke", runs_dir=str(runs)),
                    load_experiments(SHIPPED_FILE), PluginHost.create(), quiet=True)
    # from its directory, in another runs directory, with no experiments file to read
    again = execute(RunRequest(from_run=str(first.run_dir), runs_dir=str(tmp_path / "elsewhere")),
                    lambda: pytest.fail("the experiments file was read"), PluginHost.create(), quiet=True)
    assert again.status == "done" and again.run_id != first.run_id
    for name in ("ledger_test.csv", "config.toml"):
        assert (Path(again.run_dir) / name).read_bytes() == (Path(first.run_dir) / name).read_bytes(), name
    # by id, in its own runs directory: the same trial (the deflated Sharpe's N stays 1)
    execute(RunRequest(from_run=first.run_id, runs_dir=str(runs)), load_experiments(SHIPPED_FILE), PluginHost.create(),
            quiet=True)
    with Registry(runs) as registry:
        rows = registry.list()
        assert len(rows) == 2 and len({r.config_hash for r in rows}) == 1
        assert registry.trial_count(rows[0].data_hash) == 1
    varied = CliRunner().invoke(cli, ["run", "--from", first.run_id, "--seed", "1", "--timesteps", "512", "-q",
                                      "--runs-dir", str(runs)])
    assert varied.exit_code == 0, varied.output
    with Registry(runs) as registry:
        assert registry.trial_count(rows[0].data_hash) == 2
    # a relative path is recorded as the absolute one it named (run.json's request)
    monkeypatch.chdir(tmp_path)
    relative = CliRunner().invoke(cli, ["run", "--from", str(Path(first.run_dir).relative_to(tmp_path)), "--timesteps",
                                        "512", "-q", "--runs-dir", "other"])
    assert relative.exit_code == 0, relative.output
    (made,) = [d for d in (tmp_path / "other").iterdir() if d.is_dir()]
    assert json.loads((made / "run.json").read_text())["request"]["from_run"] == str(Path(first.run_dir).resolve())
    # its report says whose configuration it ran, with that run's budget and options
    from exitcore.evaluation.report import render_report

    text = render_report(made)
    assert f"budget       smoke (the configuration of run {first.run_id}) (a shortened run" in text
    assert f"overrides    --timesteps 512 (on run {first.run_id}'s: " not in text  # the first run set nothing
    assert "overrides    --timesteps 512\n" in text
    # a run from a run from the first: the first's budget still shortened it
    chained = execute(RunRequest(from_run=str(again.run_dir), runs_dir=str(tmp_path / "third")),
                      load_experiments(SHIPPED_FILE), PluginHost.create(), quiet=True)
    assert f"budget       smoke (the configuration of run {again.run_id}) (a shortened run" in render_report(chained.run_dir)
    # bars that are not the ones the run ran on (its file changed) are said to be
    info = json.loads((Path(first.run_dir) / "run.json").read_text())
    info["data"]["hash"] = "0123456789abcdef"
    (Path(first.run_dir) / "run.json").write_text(json.dumps(info))
    changed = CliRunner().invoke(cli, ["run", "--from", first.run_id, "--timesteps", "512", "-q", "--runs-dir", str(runs)])
    assert changed.exit_code == 0 and (f"warning: these bars are not the ones run {first.run_id} ran on (hash "
                                       "0123456789abcdef then") in changed.output, changed.output
    refused = CliRunner().invoke(cli, ["run", "--from", "nosuchrun", "--runs-dir", str(runs)])
    assert refused.exit_code == 2 and "--from nosuchrun: unknown run 'nosuchrun'" in refused.output, refused.output
    a_file = CliRunner().invoke(cli, ["run", "--from", str(Path(first.run_dir) / "config.toml"), "--runs-dir", str(runs)])
    assert a_file.exit_code == 2 and "config.toml is not a run directory: it is a file" in a_file.output, a_file.output
    both = CliRunner().invoke(cli, ["run", "v4", "--from", first.run_id, "--runs-dir", str(runs)])
    assert both.exit_code == 2 and "give it without NAME" in both.output


def test_walk_forward_windows_the_data_cannot_test_are_refused_before_training(tmp_path):
    """Too many walk-forward windows failed the run after its training and evaluation: a lost
    run, recorded failed, counted as a trial (a walk-forward trial). The windows are planned
    with the episodes and refused as bad input, before anything is recorded."""
    from click.testing import CliRunner

    from exitcore.cli import cli

    for windows, why in ((500, "eval.walk_forward = 500: window 1 would test on bars 45256..45203 after the purge gap"),
                         (200, "eval.walk_forward = 200: walk-forward window 1 (bars 45256..45293) has no trades")):
        result = CliRunner().invoke(cli, ["run", "v4", "--budget", "smoke", "--set", f"eval.walk_forward={windows}", "-q",
                                          "--runs-dir", str(tmp_path / "runs")])
        assert result.exit_code == 2 and why in result.output, result.output
    assert not (tmp_path / "runs").exists()


def test_a_walk_forward_run_resumes_its_windows_from_their_checkpoints(tmp_path):
    """A resume retrained every walk-forward window from step 0, the finished ones too (a
    walk-forward trial: at v4's budget one full training per window thrown away). Each window
    now continues from its checkpoint; the results are the uninterrupted run's, bit for bit."""
    from exitcore import hookimpl
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.runner import RunInterrupted, RunRequest, execute

    heard = []

    class CtrlCInWindow2:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            heard.append((metrics.get("window"), update))
            if (metrics.get("window"), update) == (2, 1) and len(heard) < 6:
                raise KeyboardInterrupt  # as Ctrl-C during window 2's training

    overrides = ("eval.walk_forward=2", "ppo.total_timesteps=1024")
    file = load_experiments(SHIPPED_FILE)
    whole = execute(RunRequest(experiment="v4_no_lookahead", budget="smoke", overrides=overrides,
                               runs_dir=str(tmp_path / "whole")), file, PluginHost.create(), quiet=True)
    with pytest.raises(RunInterrupted) as stopped:
        execute(RunRequest(experiment="v4_no_lookahead", budget="smoke", overrides=overrides,
                           runs_dir=str(tmp_path / "runs")), file, PluginHost.create(plugins=[CtrlCInWindow2()]), quiet=True)
    assert heard == [(None, 1), (None, 2), (1, 1), (1, 2), (2, 1)]
    run_dir = Path(stopped.value.run_dir)
    window_1 = (run_dir / "walk_forward" / "window_1" / "checkpoint.pt").read_bytes()
    # a registry rebuilt from the run directories: evaluated but stopped in its windows is not done
    assert _recorded_copy(run_dir, tmp_path / "lost") == ("interrupted", {})
    heard.clear()
    resumed = execute(RunRequest(resume=stopped.value.run_id, runs_dir=str(tmp_path / "runs")), file,
                      PluginHost.create(plugins=[CtrlCInWindow2()]), quiet=True)
    assert resumed.status == "done"
    assert heard == [(2, 2)]  # the main training and window 1 were done: only window 2's last update
    assert (run_dir / "walk_forward" / "window_1" / "checkpoint.pt").read_bytes() == window_1
    for name in ("walk_forward.json", "ledger_walk_forward.csv", "ledger_test.csv"):
        assert (run_dir / name).read_bytes() == (Path(whole.run_dir) / name).read_bytes(), name
    # walk_forward.json names its run, as results.json does (report refuses another run's)
    results, wf = (json.loads((run_dir / name).read_text()) for name in ("results.json", "walk_forward.json"))
    assert {k: wf[k] for k in ("experiment", "config_hash", "seed", "data_hash")} == {
        k: results[k] for k in ("experiment", "config_hash", "seed", "data_hash")}
    # rebuilt from its directory, the finished run is done with the walk-forward figures run recorded
    (row,) = registry_rows(tmp_path / "runs")
    assert _recorded_copy(run_dir, tmp_path / "lost_again") == ("done", json.loads(row["metrics"]))
    assert json.loads(row["metrics"])["walk_forward_windows"] == 2


def _recorded_copy(run_dir: Path, runs: Path) -> tuple[str, dict]:
    """The status and metrics ``runs --record`` gives a copy of ``run_dir`` in a runs directory
    without a registry."""
    import shutil

    from click.testing import CliRunner

    from exitcore.cli import cli

    shutil.copytree(run_dir, runs / run_dir.name)
    out = CliRunner().invoke(cli, ["runs", "--record", "--runs-dir", str(runs)])
    assert out.exit_code == 0, out.output
    (row,) = registry_rows(runs)
    return row["status"], json.loads(row["metrics"])


def test_a_resume_keeps_the_training_outcomes_run_json_recorded(tmp_path):
    """run.json is written again when a run resumes: a plugin's early stop (of the run and of
    walk-forward windows) was dropped with it, so the report no longer said why training ended
    early and a resume trained on past it."""
    from exitcore.runner import _keep_provenance

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"threads": 1, "stopped_early": "enough", "walk_forward_stopped_early": {"2": "flat"}}))
    kept = _keep_provenance(path, {"threads": 2, "seed": 0})
    assert kept["stopped_early"] == "enough" and kept["walk_forward_stopped_early"] == {"2": "flat"}
    assert kept["threads"] == 1 and kept["resumes"][0]["threads"] == 2


def test_a_run_whose_data_file_moved_resumes_from_its_new_place(tmp_path, monkeypatch, capsys):
    """A resume whose data file had moved said only 'no such file or folder'; it now says how
    to give the new place, and resumes from there (the same bars: their hash is checked).

    The new place replaces only the path: the file is read with the options the run gave it
    (here a time zone, without which the bars differ), and the run keeps its configuration
    and config hash (it was rewritten with the new path while the registry kept the old hash,
    so the run's later repeats counted as another trial)."""
    from click.testing import CliRunner

    from exitcore import hookimpl
    from exitcore.cli import cli
    from exitcore.experiments import load_experiments
    from exitcore.plugins import PluginHost
    from exitcore.registry import Registry
    from exitcore.runner import RunRequest, execute

    class CtrlC:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            raise KeyboardInterrupt

    data = tmp_path / "eurusd_synth.csv"
    made = CliRunner().invoke(cli, ["data", "synth", "-o", str(data), "--years", "1"])
    assert made.exit_code == 0, made.output
    runs = tmp_path / "runs"
    stopped = execute(RunRequest(experiment="v4_no_lookahead", budget="smoke", data=f"{data}?timezone=Etc/GMT-2",
                                 runs_dir=str(runs)),
                      load_experiments(SHIPPED_FILE), PluginHost.create(plugins=[CtrlC()]), quiet=True)
    assert stopped.status == "interrupted"
    run_id = stopped.run_id
    frozen = (stopped.run_dir / "config.toml").read_text()
    moved = tmp_path / "elsewhere" / "eurusd_synth.csv"
    moved.parent.mkdir()
    data.rename(moved)
    lost = CliRunner().invoke(cli, ["run", "--resume", run_id, "-q", "--runs-dir", str(runs)])
    assert lost.exit_code == 2 and f"{data}: no such file or folder" in lost.output
    assert f"if the file moved, resume with `exitcore run --resume {run_id} --data NEW_PATH --runs-dir {runs}`" in lost.output
    other = tmp_path / "other.csv"
    CliRunner().invoke(cli, ["data", "synth", "-o", str(other), "--years", "1", "--seed", "1"])
    refused = CliRunner().invoke(cli, ["run", "--resume", run_id, "--data", str(other), "-q", "--runs-dir", str(runs)])
    assert refused.exit_code == 2 and "the data changed" in refused.output, refused.output
    # the same prices with another volume column: a feature reading volume would train on other data
    revolumed = tmp_path / "revolumed.csv"
    lines = moved.read_text().splitlines()
    time_, *prices, volume = lines[1].split(",")
    revolumed.write_text("\n".join([lines[0], ",".join([time_, *prices, str(int(volume) + 1)]), *lines[2:]]) + "\n")
    other_volume = CliRunner().invoke(cli, ["run", "--resume", run_id, "--data", str(revolumed), "-q", "--runs-dir",
                                            str(runs)])
    assert other_volume.exit_code == 2, other_volume.output
    assert "but the values of its other columns changed since the run started ('volume' differs)" in other_volume.output
    # exitcore's own bug while evaluating the resume: the note after its traceback gives this
    # command's --data again (it gave the run's first path, or none: a review)
    import exitcore.evaluation.evaluate as evaluate

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("a bug in exitcore itself")

    with monkeypatch.context() as patched:
        patched.setattr(evaluate, "write_ledgers", broken)
        bug = CliRunner().invoke(cli, ["run", "--resume", run_id, "--data", str(moved), "-q", "--runs-dir", str(runs)])
    assert isinstance(bug.exception, ZeroDivisionError), bug.output
    assert bug.exception.__notes__[-1].endswith(
        f"`exitcore run --resume {run_id} --data {moved} --runs-dir {runs}` evaluates it again, unless the fix changed "
        f"exitcore itself: a resume continues the code the run started with, so `exitcore run --from {run_id} "
        f"--data {moved} --runs-dir {runs}` then trains it again")
    resumed = CliRunner().invoke(cli, ["run", "--resume", run_id, "--data", str(moved), "-q", "--runs-dir", str(runs)])
    assert resumed.exit_code == 0, resumed.output
    assert (stopped.run_dir / "config.toml").read_text() == frozen
    results = json.loads((stopped.run_dir / "results.json").read_text())
    with Registry(runs) as registry:
        assert results["config_hash"] == registry.get(run_id).config_hash
    info = json.loads((stopped.run_dir / "run.json").read_text())
    assert info["data"]["source"].endswith(str(moved))
    assert info["request"]["data"] == f"{data}?timezone=Etc/GMT-2"  # what it asked for, not where it read them last
    # its config.toml keeps the first path, gone: the audit reads the bars where run.json says the
    # resume read them (it asked for --data again, trial Z), their hash checked as ever
    found = CliRunner().invoke(cli, ["audit", run_id, "--decisions", "2", "--runs-dir", str(runs)])
    assert found.exit_code == 0 and "PASS" in found.output and "(where the run last read them; config.toml's path " \
        "is not found from here)" in found.output, found.output
    # moved once more: the finished run is audited with --data naming where its bars are now
    again = tmp_path / "third" / "eurusd_synth.csv"
    again.parent.mkdir()
    moved.rename(again)
    audited = CliRunner().invoke(cli, ["audit", run_id, "--data", str(again), "--decisions", "2", "--runs-dir", str(runs)])
    assert audited.exit_code == 0 and "PASS" in audited.output, audited.output
    # without --data, audit and run --from say where the path was set and how to give the new one
    lost = CliRunner().invoke(cli, ["audit", run_id, "--decisions", "2", "--runs-dir", str(runs)])
    assert lost.exit_code == 2 and (f"if the file moved, give its new place: `exitcore audit {stopped.run_dir} --data "
                                    "NEW_PATH`") in lost.output, lost.output
    lost = CliRunner().invoke(cli, ["run", "--from", run_id, "-q", "--runs-dir", str(runs)])
    assert lost.exit_code == 2 and f"({stopped.run_dir / 'config.toml'}: data.params.path)" in lost.output, lost.output
    assert (f"if the file moved, give its new place: `exitcore run --from {run_id} --data NEW_PATH --runs-dir {runs}` "
            "(read as that run read it; the same bars read from another path count as another trial)") in lost.output
    # following it reads the file as the run did (its time zone kept: a fresh read took UTC, other bars, silently)
    again_from = CliRunner().invoke(cli, ["run", "--from", run_id, "--data", str(again), "-q", "--runs-dir", str(runs)])
    assert again_from.exit_code == 0 and "warning: these bars" not in again_from.output, again_from.output
    (copy,) = [d for d in runs.iterdir() if d.is_dir() and d.name not in (run_id, stopped.run_dir.name)
               and (d / "run.json").is_file()]
    assert json.loads((copy / "run.json").read_text())["data"]["hash"] == info["data"]["hash"]
    assert 'timezone = "Etc/GMT-2"' in (copy / "config.toml").read_text()
    # other bars are said to be other bars, with how they were read
    other_from = CliRunner().invoke(cli, ["run", "--from", run_id, "--data", str(other), "-q", "--runs-dir", str(runs)])
    assert other_from.exit_code == 0 and (f"warning: these bars are not the ones run {run_id} ran on (hash "
                                          f"{info['data']['hash']} then, ") in other_from.output, other_from.output
    assert "; --data read as it read its own: csv with " in other_from.output and "timezone=Etc/GMT-2" in other_from.output
    # the same prices with another volume column: said too (stopped at its first update: only the warning matters)
    capsys.readouterr()
    execute(RunRequest(from_run=run_id, data=str(revolumed), runs_dir=str(runs)), load_experiments(SHIPPED_FILE),
            PluginHost.create(plugins=[CtrlC()]), quiet=True)
    assert (f"warning: these bars have the timestamps and prices run {run_id} ran on (hash {info['data']['hash']}) but "
            "other values in their other columns ('volume' differs)") in capsys.readouterr().err


@pytest.mark.parametrize("value, said", [
    ("float('nan')", "reward term 'blowup' from blowup (blowup 1.0) returned nan there (the rollout replayed from the "
                     "last good state)"),
    # finite in float64, where the terms are added up; infinite as the float32 reward the buffer keeps
    ("1e300", "replayed from the last good state, every reward term is finite there ('pnl' "),
])
def test_a_non_finite_reward_names_the_reward_term_behind_it(tmp_path, value, said):
    """"non-finite rewards (first at rollout step 12, env 3; reward terms: 'pnl', 'cost', ...)"
    listed every term: the step keeps only their weighted sum, so which one went bad was left to
    guess (a plugin-author trial). The rollout is replayed from the last good state to say."""
    env = _plugin(tmp_path, "blowup", (
        "import torch\nfrom exitcore import hookimpl\n\n"
        "def build(params, ctx):\n"
        f"    bad, zero = (torch.tensor(x, dtype=torch.float64) for x in ({value}, 0.0))\n"
        # bad only from its 41st step on: past the pre-run sweep's 32 at most, which would refuse
        # it before the run (tests/test_check_build.py); in the second update's rollout (32 steps each)
        "    calls = [0]\n"
        "    def term(before, action, after):\n"
        "        calls[0] += 1\n"
        "        return torch.where((before.k >= 4) & (calls[0] > 40), bad, zero)\n"
        "    return term\n\n"
        "@hookimpl\ndef register_reward_terms(register):\n    register('blowup', build)\n"))
    rewards = 'rewards=[{name="pnl"}, {name="cost"}, {name="blowup"}]'
    out = exitcore("run", "v4", *SMOKE, "--set", rewards, runs=tmp_path / "runs", env=env)
    assert out.returncode == 1, out.stderr
    assert "training diverged in update 2: non-finite rewards (first at rollout step " in out.stderr, out.stderr
    assert f"; reward terms: 'pnl', 'cost', 'blowup'); {said}" in out.stderr, out.stderr
    if value == "1e300":
        assert "'cost' 0 x 1, 'blowup' 1e+300 x 1), but their weighted sum 1e+300 is not in float32, the reward's " \
               "type (beyond 3.4e+38)" in out.stderr, out.stderr
    assert "; state of the last complete update (1) written to " in out.stderr
    # the registry keeps the whole message (it was cut at 300 characters, mid-term, before the
    # cause), so `show` and `runs --json` say why after stderr is gone (trial P)
    (row,) = registry_rows(tmp_path / "runs")
    assert row["status"] == "failed" and said in row["error"] and "state of the last complete update" in row["error"]


def test_a_resume_given_data_prints_its_next_resume_with_the_data(tmp_path, monkeypatch):
    """Its config.toml keeps the old place of its bars, so the printed `continue it with` command
    without --data failed with 'no such file' (review V)."""
    from click.testing import CliRunner

    import exitcore.runner as runner
    from exitcore.cli import cli

    run_dir = tmp_path / "runs" / "20261128-000000-v4-abcd"
    run_dir.mkdir(parents=True)

    def interrupted(request, *args, **kwargs):
        raise runner.RunInterrupted(run_dir.name, run_dir)

    monkeypatch.setattr(runner, "execute", interrupted)
    for given, said in ((["--data", "/new place/bars.csv"], " --data '/new place/bars.csv'"), ([], "")):
        out = CliRunner().invoke(cli, ["run", "--resume", run_dir.name, *given, "--runs-dir", str(tmp_path / "runs")])
        assert out.exit_code == 130, out.output
        assert f"continue it with: exitcore run --resume {run_dir.name}{said} --runs-dir {tmp_path / 'runs'}\n" in out.output


def test_run_json_prints_the_run_record_however_the_run_ends(tmp_path):
    """A sweep script had to scrape `run <ID> done -> DIR` (stdout) or `run <ID> interrupted`
    (stderr) to learn which run it started (trial P): `run --json` prints the run's registry
    record, `show --json`'s, on stdout alone, for a finished run and for a failed one; refused
    input prints none."""
    runs = tmp_path / "runs"
    out = exitcore("run", "v4", *SMOKE, "--json", runs=runs)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)  # stdout is the JSON alone: the summary went to stderr
    (row,) = registry_rows(runs)
    assert (record["id"], record["status"], record["run_path"]) == (row["id"], "done", str(runs / row["run_dir"]))
    assert record["metrics"]["n_trades"] > 0 and f"run {row['id']} done -> " in out.stderr
    shown = exitcore("show", row["id"], "--json", runs=runs)
    assert json.loads(shown.stdout) == record
    # rewards finite in float32 whose squares are not: the first steps pass, the value loss diverges
    failed = exitcore("run", "v4", *SMOKE, "--json", "--set", "env.reward_scale=1e30", runs=runs)
    assert failed.returncode == 1 and "failed while training" in failed.stderr
    record = json.loads(failed.stdout)
    # the last good state it wrote is to inspect, not to resume (trial W: a resume was refused)
    assert (f"once the cause is fixed, `exitcore run --from {record['id']} --runs-dir {runs}` runs its configuration "
            "again (its checkpoint is kept to inspect: a failed run is not resumed)\n") in failed.stderr
    assert record["status"] == "failed" and record["id"] == registry_rows(runs)[1]["id"]
    assert "training diverged in update 1: non-finite loss_value" in record["error"]
    refused = exitcore("run", "v4", *SMOKE, "--json", "--set", "ppo.n_envs=0", runs=runs)
    assert refused.returncode == 2 and refused.stdout == "" and len(registry_rows(runs)) == 2
    if os.path.exists("/dev/full"):  # the JSON lost to a full disk: not status 0, as show --json's
        with open("/dev/full", "w") as full:
            lost = subprocess.run([sys.executable, "-m", "exitcore", "run", "v4", *SMOKE, "--json", "--runs-dir",
                                   str(runs)], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=600)
        assert lost.returncode == 1 and "error: cannot write to standard output" in lost.stderr, lost.stderr
        assert registry_rows(runs)[2]["status"] == "done"
        with open("/dev/full", "w") as full:  # stderr full: the summary is lost, not the run's status 0
            kept = subprocess.run([sys.executable, "-m", "exitcore", "run", "v4", *SMOKE, "--json", "-q", "--runs-dir",
                                   str(runs)], cwd=ROOT, stdout=subprocess.PIPE, stderr=full, text=True, timeout=600)
        assert kept.returncode == 0 and json.loads(kept.stdout)["status"] == "done"


def test_runs_of_one_trial_whose_plugin_code_differed_are_told_apart(tmp_path, finished_run):
    """Editing a reward term's code and running again gave other numbers under the same config
    hash: compare said 'configuration: identical' and the registry one trial (trial R). run.json
    records each plugin's source hash, and compare says DIFFERENT CODE."""
    import shutil

    runs, _ = finished_run
    (row,) = registry_rows(runs)
    info = json.loads((runs / row["run_dir"] / "run.json").read_text())
    rewards = next(p for p in info["plugins"] if "reward:pnl" in p["components"])
    assert re.fullmatch(r"[0-9a-f]{16}", rewards["source_hash"])
    # the run's trial holds its plugins' code: in run.json and in its registry row alike
    from exitcore.plugins import code_hash
    from exitcore.registry import Registry

    from exitcore.data.bars import columns_digest

    # ... and the digest of its bars' volume column (the default synthetic bars have one)
    digest = columns_digest(info["data"]["column_hashes"])
    assert digest and json.loads(row["params"])["columns_hash"] == digest
    with Registry(runs, read_only=True) as reg:
        assert reg.get(row["id"], exact=True).trial == (info["config_hash"], info["seed"], f"{info['code_hash']}+{digest}")
    from types import SimpleNamespace

    assert re.fullmatch(r"[0-9a-f]{16}", info["code_hash"])
    infos = [SimpleNamespace(name=p["name"], source=p["source_hash"]) for p in info["plugins"]]
    edited = [SimpleNamespace(name=i.name, source="edited" if i.name == rewards["name"] else i.source) for i in infos]
    assert code_hash(infos, [rewards["name"]]) != code_hash(edited, [rewards["name"]])
    assert code_hash(infos, ["entries"]) == code_hash(edited, ["entries"])  # a plugin the run does not use
    before, after = tmp_path / "before" / row["id"], tmp_path / "after" / row["id"]
    shutil.copytree(runs / row["run_dir"], before)
    shutil.copytree(runs / row["run_dir"], after)
    from exitcore.recording import row_of  # `runs --record` records the same trial

    assert json.loads(row_of(before, own_name=False)["params"])["code_hash"] == info["code_hash"]
    rewards["source_hash"] = "f" * 16
    code = info["code_hash"]
    (after / "run.json").write_text(json.dumps({**info, "code_hash": "e" * 16}))  # its code hash follows its source
    out = exitcore("compare", str(before), str(after), "--json", runs=runs)
    assert out.returncode == 0, out.stderr
    (note,) = [w for w in json.loads(out.stdout)["warnings"] if w.startswith("DIFFERENT CODE")]
    assert "each code is a trial of its own in the deflated Sharpe's N" in note
    assert f"{row['id']}: {rewards['name']} {rewards['distribution']} {rewards['version']}, source {'f' * 16}" in note
    assert note.count(row["id"]) == 2 and "features" not in note  # only the plugin whose code differed
    out = exitcore("compare", str(before), str(before), "--json", runs=runs)
    assert not [w for w in json.loads(out.stdout)["warnings"] if w.startswith("DIFFERENT CODE")]
    # another version of the same source is the same code; a source change under the same code hash
    # (hand-edited, or recorded before the code hash) is said to count as one trial
    rewards["version"] = "9.9"
    rewards["source_hash"] = next(p for p in json.loads((before / "run.json").read_text())["plugins"]
                                  if p["name"] == rewards["name"])["source_hash"]
    (after / "run.json").write_text(json.dumps({**info, "code_hash": code}))
    out = exitcore("compare", str(before), str(after), "--json", runs=runs)
    assert not [w for w in json.loads(out.stdout)["warnings"] if w.startswith("DIFFERENT CODE")]
    rewards["source_hash"] = "f" * 16
    (after / "run.json").write_text(json.dumps({**info, "code_hash": code}))
    out = exitcore("compare", str(before), str(after), "--json", runs=runs)
    (note,) = [w for w in json.loads(out.stdout)["warnings"] if w.startswith("DIFFERENT CODE")]
    assert note.endswith("counts as one trial with the others here)")
