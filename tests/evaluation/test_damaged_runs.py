"""Damaged or mismatched run directories: report, compare and audit name the file and what is
wrong, never a traceback, and never show another run's numbers as this run's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from evalkit import one_torch_thread  # noqa: F401 - autouse fixture

from exitcore.cli import cli
from exitcore.registry import Registry


@pytest.fixture
def runs(finished_run, tmp_path):
    """A runs directory holding a copy of the finished run, recorded as done in its registry."""
    runs = tmp_path / "runs"
    source = finished_run["results"].paths[0].parent
    info = finished_run["info"]
    with Registry(runs) as reg:
        run_id = reg.create_run(info["experiment"], info["config_hash"], info["data"]["hash"], seed=info["seed"])
        reg.mark_running(run_id)
        reg.mark_done(run_id, {"sharpe": 0.1})
    shutil.copytree(source, runs / run_id)
    return runs, run_id


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _refused(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, (SystemExit, type(None)))
    for word in words:
        assert word in result.output, result.output


@pytest.mark.parametrize("file, edit, command, words", [
    ("results.json", lambda d: d.update(headline=5), "report", ["results.json", "'headline'", "a number"]),
    ("results.json", lambda d: d.pop("spans"), "compare", ["results.json", "'spans'"]),
    ("results.json", lambda d: d.update(spans={"test": 3}), "report", ["results.json", "spans['test']"]),
    ("results.json", lambda d: d.update(ledgers={"test": 5}), "compare", ["results.json", "ledgers['test']"]),
    ("run.json", lambda d: d.update(splits=7), "compare", ["run.json", "'splits'", "an array"]),
    ("run.json", lambda d: d.update(splits=[{"start": 1}]), "compare", ["run.json", "splits[0]"]),
    ("run.json", lambda d: d.update(data=[1]), "compare", ["run.json", "'data'", "an object"]),
])
def test_json_files_of_the_wrong_shape_are_named(runs, file, edit, command, words):
    runs_dir, run_id = runs
    _edit_json(runs_dir / run_id / file, edit)
    args = [run_id] if command == "report" else [run_id, run_id]
    _refused(_cli(command, *args, "--runs-dir", runs_dir), *words)


def test_report_of_a_damaged_run_json_still_renders_and_says_what_is_missing(runs):
    runs_dir, run_id = runs
    _edit_json(runs_dir / run_id / "run.json", lambda d: d.update(data=[1]))
    out = _cli("report", run_id, "--runs-dir", runs_dir)
    assert out.exit_code == 0, out.output
    assert "!! incomplete run directory:" in out.output and "'data' should be an object" in out.output
    assert "RL vs baselines" in out.output


def test_a_ledger_of_binary_garbage_is_named(runs):
    runs_dir, run_id = runs
    (runs_dir / run_id / "ledger_test.csv").write_bytes(bytes(range(256)) * 20)
    _refused(_cli("compare", run_id, run_id, "--runs-dir", runs_dir), "ledger_test.csv", "damaged")


def test_a_truncated_ledger_is_refused_by_compare(runs):
    runs_dir, run_id = runs
    path = runs_dir / run_id / "ledger_test.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 3]))  # cut on a row boundary: still a valid CSV
    _refused(_cli("compare", run_id, run_id, "--runs-dir", runs_dir), "ledger_test.csv", "results.json", "truncated")


def test_another_runs_results_are_refused(runs):
    runs_dir, run_id = runs
    _edit_json(runs_dir / run_id / "results.json", lambda d: d.update(config_hash="0123456789abcdef"))
    for command in (["report", run_id], ["compare", run_id, run_id]):
        _refused(_cli(*command, "--runs-dir", runs_dir), "does not belong to this run", "0123456789abcdef", "run.json")


def test_results_of_the_same_configuration_on_other_bars_are_refused(runs):
    """results.json recorded no data hash, so one copied from a run of the same configuration
    and seed on other bars was reported under this run's id without a word (a reproducibility
    trial): now its data_hash must be run.json's and the registry's."""
    runs_dir, run_id = runs
    recorded = json.loads((runs_dir / run_id / "run.json").read_text())["data"]["hash"]
    assert json.loads((runs_dir / run_id / "results.json").read_text())["data_hash"] == recorded
    _edit_json(runs_dir / run_id / "results.json", lambda d: d.update(data_hash="3f3f6b3dcf948d61"))
    _refused(_cli("report", run_id, "--runs-dir", runs_dir), "does not belong to this run", "data_hash",
             "3f3f6b3dcf948d61", recorded)
    _edit_json(runs_dir / run_id / "results.json", lambda d: d.pop("data_hash"))  # as before 2026-11-28: not checked
    assert _cli("report", run_id, "--runs-dir", runs_dir).exit_code == 0


def test_results_disagreeing_with_the_registry_are_refused(runs):
    runs_dir, run_id = runs
    for name in ("results.json", "run.json"):  # both files from another run of another seed
        _edit_json(runs_dir / run_id / name, lambda d: d.update(seed=7))
    _refused(_cli("report", run_id, "--runs-dir", runs_dir), "does not belong", "registry's row")


def test_a_report_does_not_warn_about_other_runs_damaged_rows(runs):
    import sqlite3

    runs_dir, run_id = runs
    with Registry(runs_dir) as reg:
        other = reg.create_run("v3", "c", "d")
    with sqlite3.connect(runs_dir / "registry.sqlite") as conn:
        conn.execute("UPDATE runs SET metrics = '{bad' WHERE id = ?", (other,))
    out = CliRunner().invoke(cli, ["report", run_id, "--runs-dir", str(runs_dir)])
    assert out.exit_code == 0 and other not in out.output, out.output


def test_a_resumed_run_whose_hash_changed_is_not_refused(runs):
    """A resume may record another hash for the same configuration (an older run's relative data
    path made absolute) in run.json and results.json, while the registry keeps the first: report
    and compare refused such runs as copied from another."""
    runs_dir, run_id = runs
    for name in ("results.json", "run.json"):
        _edit_json(runs_dir / run_id / name, lambda d: d.update(config_hash="0123456789abcdef"))
    out = _cli("report", run_id, "--runs-dir", runs_dir)
    assert out.exit_code == 0 and "does not belong" not in out.output, out.output


def test_an_audit_of_a_run_without_run_json_is_refused(runs):
    """Trial Z: with run.json deleted the audit skipped the data-hash check and passed a run on
    changed bars (and could not check the plugins' code either); it is refused, naming the file."""
    runs_dir, run_id = runs
    (runs_dir / run_id / "run.json").unlink()
    out = _cli("audit", run_id, "--runs-dir", runs_dir, "--decisions", "1")
    assert out.exit_code == 2, out.output
    assert (f"{runs_dir / run_id / 'run.json'}: no such file: the audit checks that the bars and the plugin code "
            "are the run's by what it records") in out.output


def test_report_names_missing_and_damaged_files(runs):
    runs_dir, run_id = runs
    run_dir = runs_dir / run_id
    (run_dir / "config.toml").write_text("[experiment\nname = ")
    (run_dir / "run.json").unlink()
    checkpoint = run_dir / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    (run_dir / "ledger_test.csv").unlink()
    out = _cli("report", run_id, "--runs-dir", runs_dir)
    assert out.exit_code == 0, out.output
    head = out.output.split("\nRun\n")[0]
    assert "config.toml: cannot be read" in head and "PPO settings, costs and components are not shown" in head
    assert "run.json: no such file" in head and "ledger_test.csv (the test ledger) is missing" in head
    assert "checkpoint.pt is damaged" in head
    assert "RL vs baselines" in out.output  # what can be shown still is


def test_a_config_toml_edited_after_the_run_is_refused(runs):
    """resolve_run is what `audit RUN` and `run --resume` read the frozen configuration with."""
    from evalkit import host as make_host

    from exitcore.evaluation.rundir import RunDirError, resolve_run

    runs_dir, run_id = runs
    run_dir = runs_dir / run_id
    host = make_host()
    untouched = resolve_run(run_dir, host)  # as recorded: accepted, with or without overrides on top
    assert untouched.config_hash() == json.loads((run_dir / "run.json").read_text())["config_hash"]
    # a component's failure (an evaluator's on resume) names its place in this file, not an experiments.toml
    config_file = run_dir / "config.toml"
    assert untouched.entry.path == f"{config_file}: experiment.entry"
    assert [rc.path for rc in untouched.evaluators][:2] == [f"{config_file}: experiment.eval.evaluators[{i}]" for i in (0, 1)]
    assert untouched.rewards and all(rc.path.startswith(f"{config_file}: experiment.rewards[") for rc in untouched.rewards)
    assert resolve_run(run_dir, host, overrides=["ppo.n_envs=4"]).config.ppo.n_envs == 4
    text = (run_dir / "config.toml").read_text()
    assert "max_bars = " in text
    (run_dir / "config.toml").write_text(text.replace("max_bars = ", "max_bars = 1", 1))
    with pytest.raises(RunDirError, match=rf"config.toml was edited after the run: its configuration hashes to \w+, "
                                          rf".*run.json records {untouched.config_hash()}"):
        resolve_run(run_dir, host)
    _refused(_cli("audit", run_id, "--runs-dir", runs_dir, "--decisions", "1"), "config.toml was edited",
             untouched.config_hash())


def test_a_key_deleted_from_config_toml_is_an_edit_and_a_key_an_older_version_lacked_is_not(runs):
    """Any key missing from the file used to count as "frozen by an older exitcore", so an edit
    that also deleted a line passed; a missing key is now accepted only where the hash without
    it is the one the run recorded (what the older exitcore hashed)."""
    from evalkit import host as make_host

    from exitcore.evaluation.rundir import RunDirError, read_config, resolve_run
    from exitcore.experiments import hash_config, restricted_to

    runs_dir, run_id = runs
    run_dir = runs_dir / run_id
    host = make_host()
    lines = (run_dir / "config.toml").read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("micro_batch_size = ")]
    (run_dir / "config.toml").write_text("".join(kept))
    assert resolve_run(run_dir, host)  # its default is the value the run had: no change, accepted
    kept = [line for line in kept if not line.startswith("n_envs = ")]  # the run had 16 envs, the default is 64
    assert len(kept) == len(lines) - 2
    (run_dir / "config.toml").write_text("".join(kept))
    with pytest.raises(RunDirError, match="config.toml was edited after the run"):
        resolve_run(run_dir, host)  # run.json's hash includes the deleted key: an edit
    info = json.loads((run_dir / "run.json").read_text())
    older = hash_config(restricted_to(_resolved_anyway(run_dir, host), read_config(run_dir)))
    (run_dir / "run.json").write_text(json.dumps({**info, "config_hash": older}))
    assert resolve_run(run_dir, host)  # as if an older exitcore had recorded the run without that key


def test_a_run_frozen_before_env_data_holes_existed_keeps_closing_at_holes(runs):
    """Runs recorded before ``env.data_holes`` closed every trade at a hole in the data: their
    config.toml lacks the key, and they resolve (for audit and resume) to "close", which hashes
    as they were recorded; deleting the key from a newer run's file is still an edit."""
    from evalkit import host as make_host

    from exitcore.evaluation.rundir import RunDirError, read_config, resolve_run
    from exitcore.experiments import hash_config, restricted_to

    runs_dir, run_id = runs
    run_dir = runs_dir / run_id
    host = make_host()
    assert resolve_run(run_dir, host).config.env.data_holes == "hold"  # a run of this version
    text = (run_dir / "config.toml").read_text()
    assert 'data_holes = "hold"' in text
    (run_dir / "config.toml").write_text(text.replace('data_holes = "hold"\n', ""))
    with pytest.raises(RunDirError, match="config.toml was edited after the run"):
        resolve_run(run_dir, host)
    # as an older exitcore recorded it: the hash of the configuration without the key
    older = hash_config(restricted_to(_resolved_anyway(run_dir, host), read_config(run_dir)))
    _edit_json(run_dir / "run.json", lambda d: d.update(config_hash=older))
    old = resolve_run(run_dir, host)
    assert old.config.env.data_holes == "close" and old.config_hash() == older
    # compare reads it the same way: beside a "close" run, no env.data_holes difference (it was null)
    from exitcore import compare as cmp
    from exitcore.registry import Registry

    _edit_json(run_dir / "results.json", lambda d: d.update(config_hash=older))  # all of it as recorded then
    with Registry(runs_dir) as reg:
        view = cmp._view(run_id, reg.get(run_id), run_dir)
    assert view.config["env"]["data_holes"] == "close"


def test_an_edited_operational_setting_is_an_edit_though_the_hash_leaves_it_out(runs):
    """ppo.checkpoint_every, compile and micro_batch_size are hashed at their defaults (no new
    trial), so an edit of one in config.toml passed the hash check: a resume then blamed the
    run's own checkpoint, or, before the first one, trained on the edited setting silently.
    run.json records them; a run recorded before that hashed them as they were, and is checked so."""
    from evalkit import host as make_host

    from exitcore.evaluation.rundir import RunDirError, resolve_run
    from exitcore.experiments import hash_config, operational_settings

    runs_dir, run_id = runs
    run_dir = runs_dir / run_id
    host = make_host()
    info = json.loads((run_dir / "run.json").read_text())
    assert "operational" not in info  # as recorded before 2026-11-29: its hash saw the values
    text = (run_dir / "config.toml").read_text()
    original = resolve_run(run_dir, host)
    assert info["config_hash"] == original.config_hash() == hash_config(original.to_dict(), operational=True)
    edited = text.replace("checkpoint_every = 10\n", "checkpoint_every = 1000\n")
    assert edited != text
    (run_dir / "config.toml").write_text(edited)
    older = hash_config({**original.to_dict(), "ppo": {**original.to_dict()["ppo"], "checkpoint_every": 1000}},
                        operational=True)
    assert older != original.config_hash()
    # the edited file's hash by the rule run.json's hash was made with, not today's (which leaves
    # checkpoint_every out, and would show the recorded hash's own value beside it)
    with pytest.raises(RunDirError, match=f"config.toml was edited after the run: its configuration hashes to {older}, "
                                          f".*run.json records {info['config_hash']}"):
        resolve_run(run_dir, host)
    # a run recorded that way with checkpoint_every 1000: its hash saw it, and still resolves
    _edit_json(run_dir / "run.json", lambda d: d.update(config_hash=older))
    assert resolve_run(run_dir, host).config.ppo.checkpoint_every == 1000
    # a run recorded now: run.json names the settings, and an edit of one is named
    _edit_json(run_dir / "run.json", lambda d: d.update(config_hash=original.config_hash(),
                                                         operational=operational_settings(original.to_dict())))
    with pytest.raises(RunDirError, match=r"config.toml was edited after the run: ppo.checkpoint_every is 1000, "
                                          r"run.json records 10 \(the setting the run was trained with\)"):
        resolve_run(run_dir, host)
    (run_dir / "config.toml").write_text(text)
    assert resolve_run(run_dir, host).config_hash() == original.config_hash()
    (run_dir / "config.toml").write_text(text.replace('precision = "fp32"', 'precision = "bf16"'))
    with pytest.raises(RunDirError, match="config.toml was edited after the run: its configuration hashes to"):
        resolve_run(run_dir, host)  # bf16 trains another policy: in the hash


def test_a_run_recorded_with_a_split_date_hashed_as_typed_still_resolves(runs):
    """Split dates are hashed in one spelling since 2026-11-30; a run recorded before with
    ``2016/01/05`` carries the hash of the date as typed, and is no edited configuration (audit
    and resume read it). Another date in its config.toml still is one."""
    from evalkit import host as make_host

    from exitcore.evaluation.rundir import RunDirError, resolve_run
    from exitcore.experiments import hash_config

    runs_dir, run_id = runs
    run_dir = runs_dir / run_id
    host = make_host()
    text = (run_dir / "config.toml").read_text()
    assert 'train_end = ""' in text
    (run_dir / "config.toml").write_text(text.replace('train_end = ""', 'train_end = "2016/01/05"', 1))
    # as this run.json (no "operational" settings) was recorded: every setting as it was, the date as typed
    typed = hash_config(_resolved_anyway(run_dir, host), operational=True, typed_dates=True)
    _edit_json(run_dir / "run.json", lambda d: d.update(config_hash=typed))
    old = resolve_run(run_dir, host)
    assert old.config.split.train_end == "2016/01/05" and old.config_hash() != typed  # one spelling now
    (run_dir / "config.toml").write_text(text.replace('train_end = ""', 'train_end = "2016/01/06"', 1))
    with pytest.raises(RunDirError, match="config.toml was edited after the run"):
        resolve_run(run_dir, host)


def _resolved_anyway(run_dir, host):
    """The frozen file resolved without the edit check (what a newer exitcore fills in)."""
    from exitcore.evaluation.rundir import read_config
    from exitcore.experiments import ExperimentsFile, resolve

    table = dict(read_config(run_dir))
    name = table.pop("name")
    table.pop("lineage", None)
    file = ExperimentsFile(path=run_dir / "config.toml", defaults={}, experiments={name: table}, budgets={})
    return resolve(file, name, host).to_dict()


def test_a_run_directory_without_its_config_cannot_be_resumed_and_says_what_to_do(runs):
    from evalkit import host as make_host

    from exitcore.evaluation.rundir import RunDirError, resolve_run

    runs_dir, run_id = runs
    (runs_dir / run_id / "config.toml").unlink()
    with pytest.raises(RunDirError, match=r"is incomplete: its config.toml .* is missing, so the run cannot be resumed "
                                          r"or audited; start a new run \(`exitcore run v4_no_lookahead`\)"):
        resolve_run(runs_dir / run_id, make_host())
    # moved, not damaged: the run is still resumable where it is put back
    with pytest.raises(RunDirError, match=r"gone not found: if it was moved, move it back .*; if it was deleted, "
                                          r"start a new run"):
        resolve_run(runs_dir / "gone", make_host())


def test_a_path_that_is_not_a_run_directory_is_named(runs, tmp_path):
    runs_dir, _ = runs
    (runs_dir / "notarun").mkdir()
    for ref, why in ((runs_dir / "notarun", " is not a run directory: it holds no run.json or config.toml"),
                     (runs_dir / "gone", ": no such run directory")):
        for command in (["report", ref], ["compare", ref, ref], ["show", ref]):
            out = _cli(*command)
            _refused(out, f"{ref}{why}")
            assert "no run registry in runs" not in out.output


def test_an_empty_runs_dir_option_is_refused(runs):
    _, run_id = runs
    for command in (["runs"], ["show", run_id], ["report", run_id], ["compare", run_id, run_id]):
        _refused(_cli(*command, "--runs-dir", ""), "--runs-dir is empty")


def test_a_policy_row_that_is_not_an_object_is_left_out_of_the_report(runs):
    runs_dir, run_id = runs
    _edit_json(runs_dir / run_id / "results.json",
               lambda d: d["evaluators"]["baselines"]["policies"].update(time_4bars=5))
    out = _cli("report", run_id, "--runs-dir", runs_dir)
    assert out.exit_code == 0 and "Traceback" not in out.output, out.output
    assert "\nrl " in out.output and "time_4bars " not in out.output.split("RL vs baselines")[1].split("In-sample")[0]


def test_a_done_run_that_lost_its_results_is_damaged_not_unfinished(runs):
    """A run directory without results.json exits 4 ("stopped before its evaluation", with how
    to record and resume it) when read alone; a run its registry records as done lost the
    file: that is damage (2), and recording or resuming it would be refused (a review)."""
    from click.testing import CliRunner

    from exitcore.cli import cli

    runs_dir, run_id = runs
    (runs_dir / run_id / "results.json").unlink()
    for ref in (run_id, str(runs_dir / run_id)):
        res = CliRunner().invoke(cli, ["report", ref, "--runs-dir", str(runs_dir)])
        assert res.exit_code == 2, res.output
        assert ("results.json: no such file, although the run's registry records it as done: the run directory is "
                "damaged") in res.output and "runs --record" not in res.output
    (runs_dir / "registry.sqlite").unlink()  # read alone: stopped before its evaluation, as far as anyone can tell
    res = CliRunner().invoke(cli, ["report", str(runs_dir / run_id)])
    assert res.exit_code == 4 and "no results: the run was not evaluated" in res.output


def test_the_commands_a_message_gives_for_a_run_directory_are_quoted(runs, tmp_path):
    """A runs directory with a space in its path: the printed `runs --record --runs-dir ...` and
    `run --resume ...` broke into two arguments (review Z); they are quoted as a shell reads them."""
    import shlex

    runs_dir, recorded_as = runs
    run_id = json.loads((runs_dir / recorded_as / "run.json").read_text())["run_id"]  # named as its runner named it
    spaced = tmp_path / "my runs"
    shutil.copytree(runs_dir / recorded_as, spaced / run_id)
    quoted = shlex.quote(str(spaced.resolve()))
    res = _cli("report", spaced / run_id)  # an unrecorded copy: the note says how to record it
    assert res.exit_code == 0 and f"`exitcore runs --record --runs-dir {quoted}` records it there" in res.output
    (spaced / run_id / "results.json").unlink()
    res = _cli("report", spaced / run_id)
    assert res.exit_code == 4, res.output
    assert (f"`exitcore runs --record --runs-dir {quoted}` records it, and `exitcore run --resume {run_id} "
            f"--runs-dir {quoted}` continues it") in " ".join(res.output.split())


def test_the_path_a_run_read_is_recorded_absolute_for_every_source_label(tmp_path, monkeypatch):
    """Review AJ 6: `histdata: PATH (clock ...)` and `metatrader: ...` labels, and globs, were left
    relative in run.json and not found from another directory."""
    from exitcore.evaluation.rundir import absolute_source, data_path_missing, last_read_path

    (tmp_path / "my data (2019)").mkdir()
    for name in ("a.csv", "my data (2019)/b.csv", "DAT_1.csv", "DAT_2.csv"):
        (tmp_path / name).write_text("x")
    monkeypatch.chdir(tmp_path)
    cases = {
        "csv: a.csv": f"csv: {tmp_path / 'a.csv'}",
        "histdata: DAT_*.csv (clock UTC-5)": f"histdata: {tmp_path / 'DAT_*.csv'} (clock UTC-5)",
        "metatrader: my data (2019)/b.csv (clock UTC+2)": f"metatrader: {tmp_path / 'my data (2019)' / 'b.csv'} (clock UTC+2)",
        "csv: gone.csv": "csv: gone.csv",  # not here: kept as it is
        "synthetic: years=3, seed=0": "synthetic: years=3, seed=0",
        f"csv: {tmp_path / 'a.csv'}": f"csv: {tmp_path / 'a.csv'}",
    }
    for label, absolute in cases.items():
        assert absolute_source(label) == absolute, label
    monkeypatch.chdir("/")
    assert last_read_path({"data": {"source": cases["histdata: DAT_*.csv (clock UTC-5)"]}}) == str(tmp_path / "DAT_*.csv")
    assert last_read_path({"data": {"source": "histdata: DAT_*.csv (clock UTC-5)"}}) is None  # relative, from here
    assert not data_path_missing(type("D", (), {"params": {"path": str(tmp_path / "DAT_*.csv")}})())
