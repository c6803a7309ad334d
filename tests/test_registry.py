"""The run registry: records, statuses, recovery of dead runs, concurrency, errors, CLI."""

from __future__ import annotations

import datetime as dt
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from exitcore.cli import cli
from exitcore.errors import ExitcoreError
from exitcore.process_identity import process_start_token
from exitcore.registry import (
    REGISTRY_FILE,
    SCHEMA_VERSION,
    STATUSES,
    Registry,
    RegistryError,
    resolve_runs_dir,
)

ID = re.compile(r"^\d{8}-\d{6}-[A-Za-z0-9_.-]+-[0-9a-f]{4}$")


@pytest.fixture
def reg(tmp_path):
    with Registry(tmp_path / "runs") as r:
        yield r


def _sql(registry: Registry, statement: str, *args) -> None:
    with sqlite3.connect(registry.path) as conn:
        conn.execute(statement, args)


# --------------------------------------------------------------------------- records


def test_create_and_read_back(reg):
    run_id = reg.create_run(
        "v4_no_lookahead", "cfg1", "data1", data_source="synthetic", seed=3, params={"budget": "quick"}
    )
    assert ID.match(run_id) and "-v4_no_lookahead-" in run_id
    rec = reg.get(run_id)
    assert (rec.experiment, rec.config_hash, rec.data_hash, rec.data_source, rec.seed) == (
        "v4_no_lookahead",
        "cfg1",
        "data1",
        "synthetic",
        3,
    )
    assert rec.status == "pending" and rec.started_at is None and rec.params == {"budget": "quick"}
    assert rec.pid == os.getpid()
    assert reg.path_of(rec) == reg.runs_dir / run_id
    assert (reg.runs_dir / REGISTRY_FILE).is_file()
    with sqlite3.connect(reg.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_experiment_names_become_safe_id_parts(reg):
    run_id = reg.create_run("my exp/with spaces", "c", "d")
    assert ID.match(run_id) and "my-exp-with-spaces" in run_id


def test_lifecycle_and_metrics(reg):
    run_id = reg.create_run("v1", "c", "d")
    reg.mark_running(run_id)
    rec = reg.get(run_id)
    assert rec.status == "running" and rec.started_at and rec.heartbeat_at
    reg.heartbeat(run_id)
    reg.mark_done(run_id, {"sharpe": 0.5, "profit_factor": math.inf, "std_return": math.nan, "split": "test"})
    rec = reg.get(run_id)
    assert rec.status == "done" and rec.ended_at and rec.duration_s >= 0
    assert rec.metrics["profit_factor"] == math.inf and math.isnan(rec.metrics["std_return"])
    reg.set_metrics(run_id, {"sharpe": 0.7})
    assert reg.get(run_id).metrics == {"sharpe": 0.7}


def test_status_transitions_are_checked(reg):
    run_id = reg.create_run("v1", "c", "d")
    with pytest.raises(RegistryError, match="is pending; it cannot become done"):
        reg.mark_done(run_id)
    reg.mark_running(run_id)
    reg.mark_interrupted(run_id, "SIGINT")
    first_start = reg.get(run_id).started_at
    reg.mark_running(run_id)  # resume
    rec = reg.get(run_id)
    assert rec.status == "running" and rec.started_at == first_start and rec.ended_at is None
    reg.mark_failed(run_id, "ValueError: boom")
    assert reg.get(run_id).error == "ValueError: boom"
    with pytest.raises(RegistryError, match="is failed; it cannot become running"):
        reg.mark_running(run_id)
    with pytest.raises(RegistryError, match="not running; no heartbeat"):
        reg.heartbeat(run_id)


def test_list_filters_and_latest_done(reg):
    a = reg.create_run("v3", "c3", "d")
    b = reg.create_run("v4", "c4", "d")
    c = reg.create_run("v4", "c4", "d", seed=1)
    for run_id in (a, b, c):
        reg.mark_running(run_id)
    reg.mark_done(b)
    time.sleep(0.002)
    reg.mark_done(c)
    assert [r.id for r in reg.list()] == [a, b, c]
    assert [r.id for r in reg.list(experiment="v4")] == [b, c]
    assert [r.id for r in reg.list(status="running")] == [a]
    assert [r.id for r in reg.list(experiment="v4", status="done")] == [b, c]
    assert reg.latest_done("v4").id == c
    other = reg.create_run("v4", "c4", "elsewhere")
    assert [r.id for r in reg.list(data_hash="elsewhere")] == [other]
    assert reg.latest_done("v3") is None
    with pytest.raises(RegistryError, match="unknown status 'finished'"):
        reg.list(status="finished")


def test_require_done_detects_a_run_still_running(reg):
    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    with pytest.raises(RegistryError, match=f"run {run_id} is still running .*pid {os.getpid()}") as running:
        reg.require_done(run_id)
    reg.mark_failed(run_id, "CUDA out of memory")
    with pytest.raises(RegistryError, match="is failed: CUDA out of memory; it has no final results") as failed:
        reg.require_done(run_id)
    # a script tells "try again later" (75) and "no results" (4) from a typo (2)
    assert (running.value.exit_code, failed.value.exit_code) == (75, 4)
    from exitcore.resume import resumed_twice

    assert resumed_twice(reg.get(run_id)).exit_code == 75  # a second resume: wait for the first
    other = reg.create_run("v4", "c", "d")
    reg.mark_running(other)
    reg.mark_done(other)
    assert reg.require_done(other).id == other


def test_trial_count_counts_distinct_config_and_seed_in_every_status(reg):
    done = reg.create_run("v4", "cfgA", "data1", seed=0)
    reg.mark_running(done)
    reg.mark_done(done)
    failed = reg.create_run("v2", "cfgB", "data1", seed=0)
    reg.mark_failed(failed, "crash")
    reg.create_run("v2", "cfgB", "data1", seed=0)  # a rerun of the same trial
    reg.create_run("v2", "cfgB", "data1", seed=1)  # another seed: another trial
    reg.create_run("v4", "cfgA", "data2", seed=0)  # another dataset
    assert reg.trial_count("data1") == 3
    assert reg.trial_count("data2") == 1
    assert reg.trial_count("unknown") == 0


def test_a_trial_is_the_configuration_seed_and_plugin_code(reg):
    """An edited reward term run again under the same configuration and seed was one trial: the
    deflated Sharpe's N missed it (trial R). The plugin code hash (params' code_hash) is part of
    the trial; a row recorded without one (before exitcore kept it) is a trial of its own."""
    from exitcore.evaluation.significance import recorded_trial_sharpes

    for code, sharpe in (("codeA", 1.0), ("codeA", 1.0), ("codeB", 2.0), (None, 3.0)):
        run_id = reg.create_run("v5", "cfg", "data", seed=0, params={} if code is None else {"code_hash": code})
        reg.mark_running(run_id)
        reg.mark_done(run_id, {"sharpe": sharpe, "split": "test"})
    assert [r.trial for r in reg.list()] == [("cfg", 0, "codeA")] * 2 + [("cfg", 0, "codeB"), ("cfg", 0, "")]
    assert reg.trial_count("data") == 3
    others = recorded_trial_sharpes(reg.list(data_hash="data"), exclude=("cfg", 0, "codeA"))
    assert sorted(round(s * 252 ** 0.5, 6) for s in others) == [2.0, 3.0]
    # a row whose params are damaged, or whose code hash is no string, is a trial of its own: merged
    # with the rows without a code hash (its params read as {}), it lowered N (review AA)
    damaged, odd = reg.list()[2].id, reg.list()[1].id
    reg._conn.execute("UPDATE runs SET params = 'not json' WHERE id = ?", (damaged,))
    reg._conn.execute("""UPDATE runs SET params = '{"code_hash": 5}' WHERE id = ?""", (odd,))
    assert [r.trial[2] for r in reg.list()] == ["codeA", f"damaged:{odd}", f"damaged:{damaged}", ""]
    assert reg.trial_count("data") == 4


def test_a_run_a_plugin_stopped_early_is_another_trial(reg):
    """A stopping rule (iteration_end ending training at some step) is something tried: a run
    of one configuration, seed and code stopped early trains another policy than the run trained
    to the end, and two stopping rules two more. They counted as one trial, understating N."""
    runs = [reg.create_run("v5", "cfg", "data", seed=0, params={"code_hash": "codeA"}) for _ in range(4)]
    assert reg.trial_count("data") == 1
    reg.set_stopped_at_step(runs[1], 1024)
    reg.set_stopped_at_step(runs[2], 1024)  # the same rule stopping at the same step: the same trial
    reg.set_stopped_at_step(runs[3], 4096)
    assert [r.trial for r in reg.list()] == [("cfg", 0, "codeA"), ("cfg", 0, "codeA@1024"), ("cfg", 0, "codeA@1024"),
                                              ("cfg", 0, "codeA@4096")]
    assert reg.trial_count("data") == 3
    assert reg.get(runs[1]).params == {"code_hash": "codeA", "stopped_at_step": 1024}
    # a resume that trains again from step 0 clears the stop; walk-forward windows' stops and the
    # bars' other columns are part of the trial too
    reg.set_stopped_at_step(runs[3], None)
    assert reg.get(runs[3]).trial == ("cfg", 0, "codeA") and reg.trial_count("data") == 2
    reg.set_stopped_at_step(runs[3], 512, window=2)
    reg.set_stopped_at_step(runs[3], 256, window=1)
    assert reg.get(runs[3]).trial == ("cfg", 0, "codeA@w1:256@w2:512") and reg.trial_count("data") == 3
    reg.set_stopped_at_step(runs[3], None, window=1)
    reg.set_stopped_at_step(runs[3], None, window=2)
    assert "walk_forward_stopped_at" not in reg.get(runs[3]).params and reg.trial_count("data") == 2
    volume = reg.create_run("v5", "cfg", "data", seed=0, params={"code_hash": "codeA", "columns_hash": "9" * 16})
    assert reg.get(volume).trial == ("cfg", 0, f"codeA+{'9' * 16}") and reg.trial_count("data") == 3
    # damaged params stay a trial of their own (the stop is not written over them)
    reg._conn.execute("UPDATE runs SET params = 'not json' WHERE id = ?", (runs[0],))
    reg.set_stopped_at_step(runs[0], 2048)
    assert reg.get(runs[0]).trial[2] == f"damaged:{runs[0]}"


# --------------------------------------------------------------------------- ids


def test_prefix_lookup_and_errors(reg):
    a = reg.create_run("v4_no_lookahead", "c", "d")
    b = reg.create_run("v3", "c", "d")
    assert reg.get(a[:-2]).id == a
    assert reg.get(b).id == b
    with pytest.raises(RegistryError, match="ambiguous: 2 runs start with it"):
        reg.get(a[:8])
    with pytest.raises(RegistryError, match=f"unknown run 'v4_no_lookahed' in .*did you mean {a}"):
        reg.get("v4_no_lookahed")
    with pytest.raises(RegistryError, match=f"did you mean .*{a}"):
        reg.get(a[:-1] + "z")
    with pytest.raises(RegistryError, match="unknown run"):
        reg.get(a[:-2], exact=True)
    with pytest.raises(RegistryError, match="unknown run 'nope'") as exc:
        reg.mark_running("nope")
    # the hint's command lists this registry's runs, not the default one's
    assert str(exc.value).endswith(f"; `exitcore runs --runs-dir {reg.runs_dir}` lists them")
    # LIKE wildcards in a reference are taken literally
    with pytest.raises(RegistryError, match="unknown run"):
        reg.get("%")


def test_concurrent_creation_in_one_second_gives_unique_ids(reg):
    ids = {reg.create_run("same", "c", "d") for _ in range(200)}
    assert len(ids) == 200


# --------------------------------------------------------------------------- recovery


def test_a_killed_process_leaves_an_interrupted_run(tmp_path):
    runs = tmp_path / "runs"
    script = textwrap.dedent(
        f"""
        import sys, time
        from exitcore.registry import Registry
        reg = Registry({str(runs)!r})
        run_id = reg.create_run("v4", "c", "d")
        reg.mark_running(run_id)
        print(run_id, flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the child did not start its run"
        with Registry(runs) as reg:
            assert reg.get(run_id).status == "running"  # alive: left alone
        proc.kill()  # SIGKILL: no chance to mark anything
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    with Registry(runs) as reg:
        rec = reg.get(run_id)
    assert rec.status == "interrupted"
    assert f"process {proc.pid}" in rec.error and "is gone" in rec.error
    assert rec.ended_at == rec.heartbeat_at


@pytest.mark.parametrize("recorded", ["host", "token"])
def test_a_run_in_another_pid_namespace_is_judged_by_its_heartbeat(reg, recorded):
    """A reader in another PID namespace (a container with the host's name) saw no process with
    the run's pid and marked a live run interrupted; the run then failed at its next heartbeat.
    The namespace is recorded with the host (`token`: after '@' in the token, as one version did)."""
    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    token = process_start_token(os.getpid())
    # what the owner recorded in a namespace where its pid is one no process has here
    if recorded == "host":
        _sql(reg, "UPDATE runs SET pid = 999999999, hostname = ? WHERE id = ?",
             f"{socket.gethostname()} (pid namespace 4026531999)", run_id)
    else:
        _sql(reg, "UPDATE runs SET pid = 999999999, hostname = ?, proc_start = ? WHERE id = ?",
             socket.gethostname(), f"{token}@4026531999", run_id)
    assert reg.recover_stale() == []  # recent heartbeat: alive
    _sql(reg, "UPDATE runs SET heartbeat_at = '2020-01-01T00:00:00+00:00' WHERE id = ?", run_id)
    assert reg.recover_stale() == [run_id]  # silent for longer than stale_after: gone


def test_an_older_exitcore_does_not_take_a_live_run_for_dead(reg):
    """Older versions judge a run on their host by comparing its token with the process's whole:
    a token with the namespace appended made every live run of this version look dead to them,
    and their `run --resume` took it over (the run ended failed, its training lost). What this
    version records must read as alive, or as another host's (judged by heartbeat), by that rule."""
    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    row = reg.get(run_id)
    if row.hostname == socket.gethostname():  # the older rule: same host -> compare the tokens
        assert row.proc_start == process_start_token(row.pid)
    else:
        assert row.hostname.startswith(f"{socket.gethostname()} (pid namespace ")
    assert reg.recover_stale() == [] and Registry(reg.runs_dir).get(run_id).status == "running"


def test_a_run_taken_over_by_another_process_stops_its_first_owner(reg):
    """An older exitcore marked a live run gone and resumed it; the first owner's heartbeats went
    on (the row said running), and when the resumer stopped, the owner was told 'not running',
    marked the run failed and wrote its checkpoint over the resumer's. It is told who owns it."""
    from exitcore.errors import NotOwner

    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    reg.heartbeat(run_id)
    _sql(reg, "UPDATE runs SET pid = 999999999, proc_start = 'x:1' WHERE id = ?", run_id)  # the resumer's
    with pytest.raises(NotOwner, match=rf"run {run_id} is now running under process 999999999 on .*: another "
                                       "exitcore took it over"):
        reg.heartbeat(run_id)
    _sql(reg, "UPDATE runs SET status = 'interrupted' WHERE id = ?", run_id)  # the resumer was stopped
    with pytest.raises(NotOwner, match="is now interrupted under process 999999999"):
        reg.heartbeat(run_id)


def test_a_live_run_marked_interrupted_takes_itself_back_at_its_heartbeat(reg):
    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    gone = f"process {os.getpid()} on {socket.gethostname()} is gone (last seen 2026-01-01T00:00:00+00:00)"
    _sql(reg, "UPDATE runs SET status = 'interrupted', ended_at = '2026-01-01T00:00:00+00:00', error = ? WHERE id = ?",
         gone, run_id)
    reg.heartbeat(run_id)
    rec = reg.get(run_id)
    assert (rec.status, rec.ended_at, rec.error) == ("running", None, "")
    reg.mark_interrupted(run_id, "interrupted (Ctrl-C)")  # stopped by its own process: it stays so
    with pytest.raises(RegistryError, match="is not running"):
        reg.heartbeat(run_id)
    other = reg.create_run("v4", "c", "d")
    reg.mark_running(other)
    _sql(reg, "UPDATE runs SET status = 'interrupted', pid = 999999999 WHERE id = ?", other)
    with pytest.raises(RegistryError, match="another exitcore took it over"):  # not this process's run: no taking
        reg.heartbeat(other)


@pytest.mark.parametrize("files", [(REGISTRY_FILE,), (REGISTRY_FILE, REGISTRY_FILE + "-wal", REGISTRY_FILE + "-shm")],
                         ids=["file", "file-wal-shm"])
def test_a_registry_deleted_under_a_running_run_gets_its_row_back_at_the_heartbeat(reg, capsys, files):
    # trial Z 6: the run's connection went on writing the unlinked file, so `runs` never saw it again
    done = reg.create_run("v4", "c", "d")
    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    for name in files:
        (reg.runs_dir / name).unlink()
    reg.heartbeat(run_id)
    assert "was deleted while run" in capsys.readouterr().err
    with Registry(reg.runs_dir, create=False, read_only=True) as fresh:
        assert fresh.get(run_id).status == "running"
        assert not fresh.has(done)  # only this process's own run is known to it
        assert fresh._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reg.mark_done(run_id)
    with Registry(reg.runs_dir, create=False, read_only=True) as fresh:
        assert fresh.get(run_id).status == "done"
    assert "deleted" not in capsys.readouterr().err  # said once


_TWO_RUNS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from exitcore.registry import Registry
    runs, name = Path(sys.argv[1]), sys.argv[2]
    reg = Registry(runs)
    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    (runs / f"ready-{name}").write_text(run_id)
    for step in ("go", "end"):
        while not (runs / f"{step}-{name}").exists():
            time.sleep(0.02)
        reg.heartbeat(run_id)
        (runs / f"beat-{name}").write_text(step)
    reg.mark_done(run_id)
    print(name, "done")
""")


def test_two_runs_whose_registry_was_deleted_both_record_themselves_in_the_new_one(tmp_path):
    """Review AJ: after `rm registry.sqlite` (its -wal and -shm stay, open in both processes) the
    first run to beat created the new file over the old -wal: the second read the new file's
    pages as the old one's, found no row, failed, and its checkpoint lost the first's row."""
    runs = tmp_path / "runs"
    Registry(runs).close()
    script = tmp_path / "two_runs.py"
    script.write_text(_TWO_RUNS)
    procs = {n: subprocess.Popen([sys.executable, str(script), str(runs), n], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for n in "AB"}

    def wait_for(path: Path) -> None:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs.values()), \
                {n: p.communicate() for n, p in procs.items() if p.poll() is not None}
            time.sleep(0.02)

    for n in "AB":
        wait_for(runs / f"ready-{n}")
    (runs / REGISTRY_FILE).unlink()  # a plain rm: -wal and -shm stay
    for step in ("go", "end"):
        for n in "BA":
            (runs / f"{step}-{n}").write_text("1")
            wait_for(runs / f"beat-{n}")
            (runs / f"beat-{n}").unlink()
    outs = {n: p.communicate(timeout=60) for n, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), outs
    with Registry(runs, create=False, read_only=True) as registry:
        assert registry._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert sorted(r.status for r in registry.list()) == ["done", "done"]


def test_a_registry_replaced_under_a_running_run_gets_its_row_and_a_moved_runs_dir_is_followed(tmp_path, capsys):
    with Registry(tmp_path / "runs") as reg:
        run_id = reg.create_run("v4", "c", "d")
        reg.mark_running(run_id)
        with Registry(tmp_path / "other") as other:  # a rebuilt registry put in its place
            kept = other.create_run("v4", "c", "d")
        os.replace(tmp_path / "other" / REGISTRY_FILE, reg.path)
        reg.heartbeat(run_id)
        assert "was replaced while run" in capsys.readouterr().err
        with Registry(reg.runs_dir, create=False, read_only=True) as fresh:
            assert fresh.get(run_id).status == "running" and fresh.has(kept)
        # the whole runs directory moved: the connection follows the file, nothing is created at the old path
        (tmp_path / "runs").rename(tmp_path / "moved")
        reg.heartbeat(run_id)
        reg.mark_done(run_id)
        assert not (tmp_path / "runs").exists()
    with Registry(tmp_path / "moved", create=False, read_only=True) as moved:
        assert moved.get(run_id).status == "done"


def test_a_reused_pid_does_not_keep_a_dead_run_running(reg):
    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    # the pid is alive (it is ours), but the recorded process started at another time
    _sql(reg, "UPDATE runs SET proc_start = 'other-boot:12345' WHERE id = ?", run_id)
    assert reg.recover_stale() == [run_id]
    assert reg.get(run_id).status == "interrupted"


def test_own_running_run_survives_recovery(reg):
    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    assert reg.get(run_id).proc_start == process_start_token(os.getpid())
    assert reg.recover_stale() == []
    assert Registry(reg.runs_dir).get(run_id).status == "running"


def test_runs_on_other_hosts_go_stale_by_heartbeat(tmp_path):
    reg = Registry(tmp_path, stale_after=60)
    fresh = reg.create_run("v4", "c", "d")
    old = reg.create_run("v4", "c", "d")
    for run_id in (fresh, old):
        reg.mark_running(run_id)
    _sql(reg, "UPDATE runs SET hostname = 'elsewhere'")
    _sql(reg, "UPDATE runs SET heartbeat_at = '2020-01-01T00:00:00.000+00:00' WHERE id = ?", old)
    assert reg.recover_stale() == [old]
    assert reg.get(fresh).status == "running" and reg.get(old).status == "interrupted"


def test_pending_run_of_a_dead_creator_is_interrupted(reg):
    run_id = reg.create_run("v4", "c", "d")
    _sql(reg, "UPDATE runs SET pid = 2147483646 WHERE id = ?", run_id)  # no such process
    assert reg.recover_stale() == [run_id]


# --------------------------------------------------------------------------- concurrency


def _worker(runs_dir: str, name: str, n: int, barrier) -> None:
    barrier.wait(30)  # start together: the writes contend for the lock
    reg = Registry(runs_dir)
    for i in range(n):
        run_id = reg.create_run(name, f"cfg{i}", "data", seed=i)
        reg.mark_running(run_id)
        reg.heartbeat(run_id)
        reg.set_metrics(run_id, {"i": i})
        reg.mark_done(run_id, {"i": i, "worker": name})
        reg.list(experiment=name)
    reg.close()


def test_concurrent_processes_neither_corrupt_nor_lose_rows(tmp_path):
    runs = str(tmp_path / "runs")
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    n = 40
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_worker, args=(runs, f"w{k}", n, barrier)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with Registry(runs) as reg:
        records = reg.list()
        assert len(records) == 3 * n and len({r.id for r in records}) == 3 * n
        assert all(r.status == "done" and r.metrics["worker"] == r.experiment for r in records)
        assert reg.trial_count("data") == n  # the three workers used the same (config, seed) pairs
    with sqlite3.connect(Path(runs) / REGISTRY_FILE) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _child_uses_parent_registry(reg: Registry, out) -> None:
    run_id = reg.create_run("forked", "c", "d")
    out.put(run_id)


def test_a_registry_carried_into_a_forked_child_reconnects(reg):
    if not sys.platform.startswith("linux"):
        pytest.skip("fork")
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    reg.list()  # the parent's connection is open
    p = ctx.Process(target=_child_uses_parent_registry, args=(reg, queue))
    p.start()
    run_id = queue.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert reg.get(run_id).experiment == "forked"


# --------------------------------------------------------------------------- errors


def test_runs_dir_under_a_regular_file_is_a_clear_error(tmp_path):
    # works as root too: no permission bit is involved, the path simply cannot be a directory
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryError, match=f"runs directory {blocker}/runs is not writable: Not a directory"):
        Registry(blocker / "runs")
    with pytest.raises(RegistryError, match="not writable: it exists and is not a directory"):
        Registry(blocker)
    assert issubclass(RegistryError, ExitcoreError)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_runs_dir_is_a_clear_error(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o500)
    try:
        with pytest.raises(RegistryError, match="is not writable: Permission denied"):
            Registry(runs)
    finally:
        runs.chmod(0o700)


def test_missing_registry_without_create(tmp_path):
    with pytest.raises(RegistryError, match="no run registry in"):
        Registry(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_newer_schema_is_refused(tmp_path):
    Registry(tmp_path).close()
    with sqlite3.connect(tmp_path / REGISTRY_FILE) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RegistryError, match=f"schema version {SCHEMA_VERSION + 1}, newer than .*upgrade exitcore"):
        Registry(tmp_path)


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    with sqlite3.connect(tmp_path / "a" / REGISTRY_FILE) as conn:
        conn.execute("CREATE TABLE other (x)")
    with pytest.raises(RegistryError, match="not an exitcore run registry"):
        Registry(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / REGISTRY_FILE).write_text("hello, I am not a database" * 100)
    with pytest.raises(RegistryError, match="file is not a database") as exc:
        Registry(tmp_path / "b")
    # what rebuilds it (trial Z: the advice was none, though `runs --record` brought every row back)
    assert "the file is damaged; restore it from a backup, or move it away and rebuild it: `exitcore runs --record`" in str(exc.value)


def test_runs_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("EXITCORE_RUNS_DIR", raising=False)
    assert resolve_runs_dir() == Path("runs")
    monkeypatch.setenv("EXITCORE_RUNS_DIR", str(tmp_path))
    assert resolve_runs_dir() == tmp_path
    assert resolve_runs_dir("explicit") == Path("explicit")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def populated(tmp_path):
    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        done = reg.create_run("v4_no_lookahead", "cfg", "data", seed=2)
        reg.mark_running(done)
        headline = {"split": "test", "label": "TEST (out-of-sample)", "in_sample": False}
        reg.mark_done(done, {**headline, "sharpe": 0.8123, "profit_factor": math.inf, "audit_verdict": "PASS",
                             "mean_return": -0.0001609, "win_rate": 0.316, "scratch_rate": 0.48,
                             "total_pnl_ccy": -24291.14, "avg_bars": 12.345, "quick_exit_rate": 0.0725,
                             "exit_reasons": {"agent": 0.25, "stop": 0.5, "target": 0.125, "time": 0.125, "gap": 0.0}})
        train = reg.create_run("v3", "cfg3", "data")
        reg.mark_running(train)
        reg.mark_done(train, {"split": "train", "label": "TRAIN (in-sample)", "in_sample": True, "sharpe": 11.2,
                              "audit_verdict": "FAIL"})
        failed = reg.create_run("v3", "cfg3", "data", seed=1)
        reg.mark_failed(failed, "boom")
        for run_id in (done, train, failed):  # as a run makes it (`runs` notes one that is gone)
            reg.path_of(reg.get(run_id)).mkdir()
    return runs, done, train, failed


def test_a_registry_whose_creation_was_killed_is_started_again(tmp_path):
    """SIGKILL while the first run created the registry left 0 bytes and a rollback journal;
    every later command was refused with 'the runs it recorded are lost' (none ever were)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "registry.sqlite").write_bytes(b"")
    (runs / "registry.sqlite-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(504))
    assert not Registry.exists(runs)
    listed = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert listed.exit_code == 0 and listed.stdout == f"no runs recorded in {runs}\n"
    with Registry(runs) as reg:
        run_id = reg.create_run("v4", "c", "d")
    assert not (runs / "registry.sqlite-journal").exists()
    with Registry(runs, read_only=True) as reg:
        assert [r.id for r in reg.list()] == [run_id]
    # without the journal an empty file is still refused: runs may have been recorded in it
    (runs / "registry.sqlite").write_bytes(b"")
    with pytest.raises(RegistryError, match=r"is empty \(0 bytes\)"):
        Registry(runs, read_only=True)


def test_runs_marks_a_listed_run_whose_directory_is_gone(tmp_path):
    """Trial AB 9: a deleted run's directory left `runs` listing it as done, with its Sharpe,
    while report, compare and audit refused it."""
    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        kept, gone, starting = (reg.create_run("v4_no_lookahead", "cfg", "d") for _ in range(3))
        for run_id in (kept, gone):
            reg.mark_running(run_id)
            reg.mark_done(run_id)
        reg.path_of(reg.get(kept)).mkdir()  # a pending run may not have made its directory yet
    out = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert out.exit_code == 0, out.output
    rows = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert "done (dir missing)" in rows[gone] and "dir missing" not in rows[kept] + rows[starting]
    assert out.stderr == (f"note: 1 listed run has no directory in {runs} any more (e.g. {gone}: moved or deleted): it "
                          "cannot be reported, compared, audited or resumed, and still counts as a trial for the deflated "
                          "Sharpe ratio (a registry row is never removed); move a moved one back\n")
    listed = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "--json"])
    assert {r["id"]: r.get("run_dir_missing", False) for r in json.loads(listed.stdout)} == {
        kept: False, gone: True, starting: False}


def test_run_directories_the_registry_does_not_record_are_noted(tmp_path):
    """A deleted or replaced registry silently reset the deflated Sharpe ratio's trial count
    (N = 1 beside four run directories) and `runs` said only 'no runs recorded'."""
    runs = tmp_path / "runs"
    runs.mkdir()
    stray = runs / "20261101-000000-v4_no_lookahead-ab12"
    stray.mkdir()
    (stray / "run.json").write_text(json.dumps({"run_id": stray.name, "experiment": "v4_no_lookahead",
                                                "config_hash": "c", "seed": 0, "data": {"hash": "d"}}))
    (runs / "not-a-run").mkdir()  # no run.json: not a run directory
    before = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert before.stdout == f"no runs recorded in {runs}\n"
    assert before.stderr == (f"note: 1 run directory in {runs} is not in its registry (e.g. {stray.name}: copied in, "
                             "or the registry was replaced): not listed, not found by experiment name, and not "
                             "counted as trials by the deflated Sharpe ratio; `exitcore runs --record --runs-dir "
                             f"{runs}` records it\n")
    # one that --record refuses is named with why (trial Z 12: the note suggested --record for it too)
    damaged = runs / "20261101-000001-v4_no_lookahead-cd34"
    damaged.mkdir()
    (damaged / "run.json").write_text("{}")
    both = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert both.stderr.startswith(f"note: 2 run directories in {runs} are not in its registry (e.g. {stray.name}: ")
    assert both.stderr.endswith(f"`exitcore runs --record --runs-dir {runs}` records 1 of them, but not {damaged.name}: "
                                "run.json lacks run_id, experiment, config_hash, seed, data.hash: it was not written by "
                                "exitcore, or is damaged\n")
    shutil.rmtree(damaged)
    with Registry(runs) as reg:
        run_id = reg.create_run("v4_no_lookahead", "cfg", "d")
        (reg.path_of(reg.get(run_id))).mkdir()
        (reg.path_of(reg.get(run_id)) / "run.json").write_text("{}")
        assert reg.unrecorded_dirs() == [stray]
    after = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert run_id in after.stdout and f"1 run directory in {runs} is not in its registry" in after.stderr
    json_out = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "--json"])
    # stdout stays data only; the note goes to stderr, where a JSON-driven sweep still sees it
    # (its N is undercounted), as every other warning does (docs/json.md)
    assert [r["id"] for r in json.loads(json_out.stdout)] == [run_id]
    assert f"1 run directory in {runs} is not in its registry" in json_out.stderr


def test_cli_runs_tells_runs_on_different_data_apart(tmp_path):
    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        for source, data_hash in (("dukascopy: /data/eurusd_m15", "aaea34fb929e48f7"),
                                  ("histdata: /data/*XAUUSD*.zip (clock America/New_York)", "aaf5410e0a6955f7")):
            reg.create_run("v4_no_lookahead", "cfg", data_hash, data_source=source)
    lines = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)]).output.splitlines()
    assert "dukascopy aaea34fb " in lines[1] and "histdata aaf5410e " in lines[2]


def test_cli_runs_lists_and_filters(populated):
    runs, done, train, failed = populated
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split()[:3] == ["id", "experiment", "status"]
    assert [line.split()[0] for line in lines[1:]] == [done, train, failed]
    assert "0.81 " in lines[1] and "TEST (out-of-sample)" in lines[1]  # two decimals, as every table
    assert "TRAIN (in-sample)" in lines[2]
    # the audit verdict stands beside the Sharpe it qualifies; a failed run has neither
    assert lines[0].split()[6:9] == ["data", "sharpe", "audit"]
    assert lines[1].split()[7:9] == ["-", "data"]  # no source recorded; the start of the hash
    assert [line.split()[-5:-3] for line in lines[1:3]] == [["0.81", "PASS"], ["11.20", "FAIL"]]
    assert lines[3].split()[-2:] == ["-", "-"]
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "-e", "v3", "--status", "failed"])
    assert [line.split()[0] for line in res.output.splitlines()[1:]] == [failed]
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "--status", "bogus"])
    assert res.exit_code == 2
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "-e", "v4"])  # a prefix, as run/show take
    assert [line.split()[0] for line in res.output.splitlines()[1:]] == [done]
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "-e", "v9"])
    assert res.exit_code == 2 and "no runs of an experiment 'v9' are recorded (did you mean v3?); experiments with runs: v3, v4_no_lookahead" in res.output
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "-e", "v"])
    assert res.exit_code == 2 and "ambiguous" in res.output


def test_cli_runs_of_an_experiment_without_runs_lists_none(populated, tmp_path):
    """A shipped (or the user's own) experiment with no runs yet is an empty list, not an
    error: a script looping over experiments gets ``[]`` for each; a typo is still refused."""
    runs, *_ = populated
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "-e", "v1", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == []
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "-e", "v2"])
    assert res.exit_code == 0 and res.output == f"no runs in {runs} with experiment v2_exit_guards\n"
    mine = tmp_path / "mine.toml"
    mine.write_text('[experiments.my_idea]\nextends = "v4_no_lookahead"\n')
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "--experiments", str(mine), "-e", "my_", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == []
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "-e", "my_idea", "--json"])  # not in this file
    assert res.exit_code == 2 and res.stdout == "" and "no runs of an experiment 'my_idea' are recorded" in res.output


def test_cli_runs_json_is_strict(populated):
    runs, done, *_ = populated
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs), "--json", "-e", "v4_no_lookahead"])
    data = json.loads(res.output, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert [d["id"] for d in data] == [done]
    assert data[0]["metrics"]["profit_factor"] == "Infinity"


def test_cli_runs_uses_the_environment_and_handles_an_empty_dir(populated, tmp_path, monkeypatch):
    runs, done, *_ = populated
    monkeypatch.setenv("EXITCORE_RUNS_DIR", str(runs))
    assert done in CliRunner().invoke(cli, ["runs"]).output
    empty = tmp_path / "empty"
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(empty)])  # a typo is not an empty registry
    assert res.exit_code == 2 and res.output.strip() == f"error: no run registry in {empty}: the directory does not exist (check --runs-dir or $EXITCORE_RUNS_DIR)"
    assert not empty.exists()  # listing creates nothing
    empty.mkdir()
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(empty)])
    assert res.exit_code == 0 and res.output.strip() == f"no runs recorded in {empty}"
    assert list(empty.iterdir()) == []


def test_cli_show(populated):
    runs, done, train, failed = populated
    (runs / done).rmdir()  # deleted: show says (missing)
    res = CliRunner().invoke(cli, ["show", done[:-3], "--runs-dir", str(runs)])
    assert res.exit_code == 0, res.output
    assert f"run             {done}" in res.output
    assert "metrics (measured on TEST (out-of-sample)):" in res.output
    assert re.search(r"profit_factor\s+inf", res.output)
    # in the report's units, not raw fractions (-0.0001609)
    assert re.search(r"mean_return\s+-1\.61 bp of the entry price per trade", res.output)
    assert re.search(r"scratch_rate\s+48\.0 % \(trades closed at PnL 0: breakeven stops or exits\)", res.output)
    assert re.search(r"win_rate\s+31\.6 % \(trades with PnL > 0\)", res.output) and re.search(r"sharpe\s+0\.81 \(daily", res.output)
    assert f"run dir         {runs / done} (missing)" in res.output
    assert re.search(r"total_pnl_ccy\s+-24,291\.14 \(account currency\)\n", res.output)  # no config.toml to name it
    # how trades ended, largest share first, and how long they were held
    assert re.search(r"exit_reasons\s+stop 50\.0 %, agent 25\.0 %, target 12\.5 %, time 12\.5 % \(of trades\)\n", res.output)
    assert re.search(r"avg_bars\s+12\.3 bars held per trade\n", res.output)
    assert re.search(r"quick_exit_rate\s+7\.2 % \(trades held <= 3 bars\)\n", res.output)
    (runs / done).mkdir()
    (runs / done / "config.toml").write_text('[experiment]\nname = "v4_no_lookahead"\n\n[experiment.costs]\naccount_currency = "EUR"\n')
    named = CliRunner().invoke(cli, ["show", done, "--runs-dir", str(runs)]).output
    assert re.search(r"total_pnl_ccy\s+-24,291\.14 EUR\n", named)
    assert "!!" not in res.output  # its audit passed
    res = CliRunner().invoke(cli, ["show", train, "--runs-dir", str(runs)])
    assert "measured on TRAIN (in-sample)" in res.output
    # its audit failed: the Sharpe of 11.2 is not shown bare
    # the hint's command finds the run: with the --runs-dir it was shown from (not the default)
    assert (f"!! look-ahead audit FAIL (a leak was found): do not trust these metrics; `exitcore report {train} "
            f"--runs-dir {runs}` has the details") in res.output
    # a plugin evaluator's FAIL is that evaluator's, not a leak found by the look-ahead audit
    with Registry(runs) as reg:
        plugin_fail = reg.create_run("v4_no_lookahead", "cfgp", "datap", seed=0)
        reg.mark_running(plugin_fail)
        reg.mark_done(plugin_fail, {"sharpe": 1.0, "audit_verdict": "FAIL", "audit_verdict_from": ["exit_stats"]})
    res = CliRunner().invoke(cli, ["show", plugin_fail, "--runs-dir", str(runs)])
    assert "!! audit verdict FAIL from evaluator 'exit_stats': do not trust these metrics" in res.output
    assert "look-ahead" not in res.output and "audit_verdict_from" not in res.output
    res = CliRunner().invoke(cli, ["show", failed, "--runs-dir", str(runs), "--json"])
    data = json.loads(res.output)
    assert data["status"] == "failed" and data["error"] == "boom" and data["run_path"] == str(runs / failed)


def test_cli_user_errors_exit_2_with_one_line(populated, tmp_path):
    runs, done, *_ = populated
    res = CliRunner().invoke(cli, ["show", "v4_no_lookahed", "--runs-dir", str(runs)])
    assert res.exit_code == 2
    assert res.output.startswith("error: unknown run 'v4_no_lookahed'") and done in res.output
    blocker = tmp_path / "f"
    blocker.write_text("")
    res = CliRunner().invoke(cli, ["show", "x", "--runs-dir", str(blocker / "runs")])
    assert res.exit_code == 2 and "error: no run registry in" in res.output


def test_cli_status_choices_match_the_registry():
    from exitcore.cli.runs import STATUS_CHOICES

    assert STATUS_CHOICES == STATUSES


@pytest.mark.parametrize("command", ["runs", "show"])
def test_cli_help(command):
    res = CliRunner().invoke(cli, [command, "--help"])
    assert res.exit_code == 0 and "--runs-dir" in res.output


def test_top_level_help_stays_light():
    code = (
        "import sys\nfrom exitcore.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'pandas', 'numpy', 'sqlite3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "runs" in out and "show" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"


def test_evaluation_progress_keeps_the_heartbeat(tmp_path):
    """A long evaluation beats too, so another host does not take the run for dead."""
    from exitcore.runner import _with_heartbeat

    with Registry(tmp_path / "runs") as reg:
        run_id = reg.create_run("v4_no_lookahead", "cfg", "data")
        reg.mark_running(run_id)
        said = []
        say = _with_heartbeat(said.append, reg, run_id, every_s=0.0)
        first = reg.get(run_id).heartbeat_at
        assert first is not None
        time.sleep(0.01)
        say("evaluating baselines")
        assert said == ["evaluating baselines"] and reg.get(run_id).heartbeat_at > first


def test_a_run_whose_data_moved_still_resumes(tmp_path, monkeypatch):
    """Where the data is read is no change: a run frozen with a relative path (before --data
    paths were made absolute) resumed from the same directory, or a run whose data file moved,
    resumed with --data NEW_PATH (refused until a reproducibility trial: the bars' hash, checked
    once they are loaded, is what refuses other bars); any other difference is still refused."""
    from types import SimpleNamespace

    from exitcore.errors import ExitcoreError
    from exitcore.resume import CONFIG_FILE, check_config_unchanged

    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CONFIG_FILE).write_text('[experiment]\nname = "v4"\n[experiment.data.params]\npath = "data/s.csv"\n'
                                       '[experiment.env]\nmax_bars = 96\n')
    previous = SimpleNamespace(id="r1", data_hash="h", config_hash="old")

    def resolved(path, max_bars=96):
        return SimpleNamespace(config_hash=lambda: "new", to_dict=lambda: {"name": "v4", "data": {"params": {"path": path}},
                                                                           "env": {"max_bars": max_bars}})

    check_config_unchanged(previous, resolved(str(tmp_path / "data" / "s.csv")), run_dir)  # no error
    check_config_unchanged(previous, resolved("/elsewhere/s.csv"), run_dir)  # moved: no error
    with pytest.raises(ExitcoreError, match=r"env.max_bars: 96 -> 48"):
        check_config_unchanged(previous, resolved("/elsewhere/s.csv", max_bars=48), run_dir)


def test_a_running_runs_duration_runs_to_now(tmp_path):
    # the heartbeat lags by up to 30 s: a run that just started, or was started long ago and
    # whose heartbeat is old, must not show the heartbeat's age as its duration
    with Registry(tmp_path / "runs") as reg:
        run_id = reg.create_run("v4", "cfg", "data")
        reg.mark_running(run_id)
        long_ago = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).isoformat()
        with reg._write() as conn:
            conn.execute("UPDATE runs SET started_at = ?, heartbeat_at = ? WHERE id = ?", (long_ago, long_ago, run_id))
        assert 595 <= reg.get(run_id).duration_s <= 900
        reg.mark_interrupted(run_id)
        assert reg.get(run_id).duration_s < 900


def test_compare_says_a_recorded_prefix_is_ambiguous(tmp_path):
    from exitcore import compare as cmp

    with Registry(tmp_path / "runs") as reg:
        for name in ("v3_leaky", "v3_fixed"):
            run_id = reg.create_run(name, "cfg", "data")
            reg.mark_running(run_id)
            reg.mark_done(run_id, {})
        with pytest.raises(RegistryError, match="experiment 'v3' is ambiguous: it could be v3_fixed, v3_leaky$"):
            cmp.collect(["v3"], reg, None)


def test_a_prefix_is_unique_only_among_recorded_and_defined_experiments(tmp_path):
    """`compare v4` and `runs -e v4` took a recorded `v4_real` where the shipped file's
    `v4_no_lookahead` had no runs (trial X): `v4` is ambiguous there, as `experiments show v4`
    is where both are defined."""
    from types import SimpleNamespace

    from exitcore import compare as cmp

    with Registry(tmp_path / "runs") as reg:
        run_id = reg.create_run("v4_real", "cfg", "data")
        reg.mark_running(run_id)
        reg.mark_done(run_id, {})
        shipped = SimpleNamespace(names=["v1", "v2_exit_guards", "v3", "v4_no_lookahead"])
        with pytest.raises(RegistryError, match=r"^experiment 'v4' is ambiguous: it could be v4_no_lookahead \(no runs "
                                                r"recorded\), v4_real$"):
            cmp.collect(["v4"], reg, shipped)
        assert reg.recorded_experiment("v4_r", shipped.names) == "v4_real"
        assert reg.recorded_experiment("v4", []) == "v4_real"  # no experiments file at hand: the recorded ones
    result = CliRunner().invoke(cli, ["runs", "-e", "v4", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "experiment 'v4' is ambiguous: it could be v4_no_lookahead" in result.output


def test_compare_finds_an_experiment_by_its_recorded_name(populated, monkeypatch):
    """`compare v4 ...` where the experiments file at hand does not define the experiment (it
    was run from another file): the registry's recorded names (and unique prefixes) answer."""
    from exitcore import compare as cmp
    from exitcore.errors import ExitcoreError

    runs, done, train, failed = populated

    class OtherFile:
        names: list[str] = []

        def resolve_name(self, ref):
            raise ExitcoreError(f"unknown experiment {ref!r}")

    from types import SimpleNamespace

    monkeypatch.setattr(cmp, "_view", lambda ref, record, run_dir, runs_dir=None: SimpleNamespace(id=record.id, data_hash=record.data_hash))
    with Registry(runs, create=False) as reg:
        assert [v.id for v in cmp.collect(["v4", "v4_no_lookahead"], reg, OtherFile())] == [done, done]
        assert [v.id for v in cmp.collect(["v4"], reg, None)] == [done]
        with pytest.raises(ExitcoreError, match="'v9' is neither a run nor an experiment with runs") as exc:
            cmp.collect(["v9"], reg, OtherFile())
        # what was typed looks like an experiment name: the recorded ones, the closest suggested
        assert "(did you mean v3?); experiments with runs: v3, v4_no_lookahead" in str(exc.value)
        assert "unknown run" not in str(exc.value)

        # a prefix of an experiment the file defines, without runs: named as such, not "did you mean v3?"
        class ShippedFile:
            names = ["v2_exit_guards"]

            def resolve_name(self, ref):
                if "v2_exit_guards".startswith(ref):
                    return "v2_exit_guards"
                raise ExitcoreError(f"unknown experiment {ref!r}")

        for typed in ("v2", "v2_exit_guards"):
            with pytest.raises(ExitcoreError) as exc:
                cmp.collect([typed], reg, ShippedFile())
            # the command it gives records the run where compare looks (review Z: it dropped --runs-dir)
            assert str(exc.value) == (f"{typed!r} is neither a run nor an experiment with runs in {runs} (experiment "
                                      f"v2_exit_guards has no runs recorded there; `exitcore run v2_exit_guards "
                                      f"--budget quick --runs-dir {runs}` makes one in minutes (without --budget: its "
                                      "full training))")


def test_compare_by_name_takes_the_run_on_the_first_runs_data(tmp_path, monkeypatch):
    """`compare v3 v4` put v3 on one data set beside v4's latest run on another, though v4 had a
    run on v3's data: names after the first prefer a run on the first run's data."""
    from types import SimpleNamespace

    from exitcore import compare as cmp

    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        def finished(experiment, data):
            run_id = reg.create_run(experiment, "cfg-" + experiment, data)
            reg.mark_running(run_id)
            reg.mark_done(run_id, {})
            return run_id

        v3_a = finished("v3", "hash-a")
        v4_a = finished("v4_no_lookahead", "hash-a")
        v4_b = finished("v4_no_lookahead", "hash-b")  # the latest v4, on other bars
    monkeypatch.setattr(cmp, "_view", lambda ref, record, run_dir, runs_dir=None: SimpleNamespace(id=record.id, data_hash=record.data_hash))
    with Registry(runs, create=False) as reg:
        assert [v.id for v in cmp.collect(["v3", "v4_no_lookahead"], reg, None)] == [v3_a, v4_a]
        # the first name is its latest run; without a v3 run on hash-b, v3's latest on any data
        assert [v.id for v in cmp.collect(["v4_no_lookahead", "v3"], reg, None)] == [v4_b, v3_a]
        assert [v.id for v in cmp.collect([v4_b, "v4_no_lookahead"], reg, None)] == [v4_b, v4_b]


def test_an_unfinished_run_is_refused_by_id_or_path_naming_its_status(tmp_path):
    """audit and report of an interrupted run say so (with the resume command that finds it),
    by id or by the run directory's path; not 'not an experiment' or 'no trained policy'."""
    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        run_id = reg.create_run("v4_no_lookahead", "cfg", "data")
        reg.mark_running(run_id)
        reg.mark_interrupted(run_id, "interrupted while training")
        run_dir = reg.path_of(reg.get(run_id))
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text('[experiment]\nname = "v4_no_lookahead"\n')
    expected = (f"run {run_id} is interrupted: interrupted while training; it has no final results; "
                f"continue it with `exitcore run --resume {run_id} --runs-dir {runs}`")
    for args in (["audit", run_id, "--runs-dir", str(runs)], ["audit", str(run_dir)], ["report", str(run_dir)]):
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 4 and expected in res.output, (args, res.output)
        assert "not an experiment" not in res.output


def test_compare_names_a_purge_gap_difference_as_the_cause_of_different_splits(tmp_path):
    """A longer honest feature lookback lengthens the purge gap: the warning says so and how to
    line the runs up (it only said the boundaries differ)."""
    from exitcore.compare import RunView, warnings

    def view(run_id, purge, test_start):
        splits = (("train", "2015-01-01", "2016-10-24"), ("test", test_start, "2019-12-31"))
        return RunView(run_id, run_id, tmp_path, "x", "h", splits, {}, {}, purge)

    out = warnings([view("a", 112, "2016-10-25 04:00"), view("b", 126, "2016-10-25 07:30")])
    (message,) = [w for w in out if w.startswith("DIFFERENT SPLITS")]
    assert "Only their purge gaps differ (a: 112 bars, b: 126 bars: max_bars + the longest feature lookback" in message
    assert "--set split.purge_bars=126 to test on the same period" in message
    same_gap = warnings([view("a", 112, "2016-10-25 04:00"), view("b", 112, "2017-01-02 00:00")])
    assert "purge gaps" not in " ".join(same_gap) and any(w.startswith("DIFFERENT SPLITS") for w in same_gap)
    # the training periods differ too: a purge_bars would not line them up, so no such advice
    moved = view("b", 140, "2017-03-01 00:00")
    import attrs

    moved = attrs.evolve(moved, splits=(("train", "2015-01-01", "2017-02-20"), moved.splits[1]))
    assert "purge gaps" not in " ".join(warnings([view("a", 112, "2016-10-25 04:00"), moved]))


def test_compare_warns_when_the_runs_manage_different_trades(tmp_path):
    """Runs of different entry strategies (927 against 2,363 trades) were compared without a
    word: their numbers measure the entries too. The warning names each run's count and entry."""
    from exitcore.compare import RunView, as_table, warnings

    splits = (("train", "2015-01-01", "2016-10-24"), ("test", "2016-10-25", "2019-12-31"))

    def view(run_id, entry, n_trades):
        return RunView(run_id, run_id, tmp_path, "x", "h", splits, {"entry": entry}, {"n_trades": n_trades}, 112)

    donchian = {"name": "donchian", "params": {"period": 20}}
    out = warnings([view("a", donchian, 927), view("b", {"name": "ma_cross"}, 2363)])
    assert out == ["DIFFERENT TRADES: these runs manage different trade sets (a: 927 trades from donchian(period=20), "
                   "b: 2363 trades from ma_cross); their numbers compare the entries as well as the exits"]
    assert warnings([view("a", donchian, 927), view("b", donchian, 927)]) == []
    # the same strategy with other parameters, or the same one giving other counts, differs too
    assert warnings([view("a", donchian, 927), view("b", {"name": "donchian", "params": {"period": 30}}, 927)])
    assert warnings([view("a", donchian, 927), view("b", donchian, 900)]) == [
        "DIFFERENT TRADES: these runs manage different trade sets (a: 927 trades, b: 900 trades, all from "
        "donchian(period=20)); their numbers compare the entries as well as the exits"]  # one strategy: said once
    # the table opens with it (--json's warnings and --csv's stderr are this same list)
    assert f"!! {out[0]}" in as_table([view("a", donchian, 927), view("b", {"name": "ma_cross"}, 2363)])


def test_compare_says_when_a_run_s_sharpe_was_evaluated_by_another_definition(tmp_path):
    """A run evaluated before the Sharpe's day boundary changed read -5.14 in its report and
    -5.20 in compare (recomputed from its ledger), beside the interval around -5.14, without a
    word (an upgrade trial)."""
    from exitcore.compare import RunView, _evaluated_sharpe, warnings

    assert _evaluated_sharpe({"headline": {"sharpe": -5.14}}, {"sharpe": -5.2}) == -5.14
    assert _evaluated_sharpe({"headline": {"sharpe": -5.2}}, {"sharpe": -5.2 + 1e-15}) is None
    assert _evaluated_sharpe({}, {"sharpe": -5.2}) is None
    nan = float("nan")
    assert math.isnan(_evaluated_sharpe({"headline": {"sharpe": nan}}, {"sharpe": -5.2}))  # one side undefined
    assert _evaluated_sharpe({"headline": {"sharpe": 1.23}}, {"sharpe": nan}) == 1.23
    assert _evaluated_sharpe({"headline": {"sharpe": nan}}, {"sharpe": nan}) is None
    splits = (("train", "2015-01-01", "2016-10-24"), ("test", "2016-10-25", "2019-12-31"))
    (tmp_path / "a").mkdir()
    old = RunView("a", "a", tmp_path / "a", "x", "h", splits, {}, {"n_trades": 9, "sharpe": -5.2}, 112, evaluated_sharpe=-5.14)
    new = RunView("b", "b", tmp_path, "x", "h", splits, {}, {"n_trades": 9, "sharpe": -5.2}, 112)
    assert warnings([old, new, old]) == [
        "SAME RUN: a is listed more than once (an experiment name stands for its latest run); its columns are identical",
        "RECOMPUTED: a's Sharpe is -5.20 here, recomputed from its ledger, and -5.14 in its results.json (its report, "
        "`runs`, `show`): an earlier exitcore's definition, or a ledger changed since; its interval and deflated "
        "Sharpe are results.json's"]
    assert warnings([new, new])[1:] == []
    undefined = attrs.evolve(new, metrics={"n_trades": 9, "sharpe": nan}, evaluated_sharpe=0.8)
    assert "RECOMPUTED: b's Sharpe is undefined here, recomputed from its ledger, and 0.80 in" in warnings([undefined])[0]


def test_compare_tells_copies_of_one_run_in_two_places_apart(tmp_path):
    """Run directories read alone: two copies of one run (one resumed and evaluated on another
    machine) were 'listed more than once ... its columns are identical' with -5.69 beside 3.94."""
    from exitcore.compare import RunView, warnings

    splits = (("train", "2015-01-01", "2016-10-24"), ("test", "2016-10-25", "2019-12-31"))
    (tmp_path / "m1").mkdir()
    (tmp_path / "m2").mkdir()
    one = RunView("a", "r", tmp_path / "m1", "x", "h", splits, {}, {"n_trades": 9, "sharpe": -5.69}, 112)
    two = attrs.evolve(one, run_dir=tmp_path / "m2", metrics={"n_trades": 9, "sharpe": 3.94})
    (out,) = warnings([one, two])
    assert out == (f"SAME RUN: r is read from 2 directories ({tmp_path / 'm1'}, {tmp_path / 'm2'}), copies of one run; "
                   "their results differ: one was changed, or resumed and evaluated elsewhere")
    same = attrs.evolve(two, metrics=one.metrics)
    assert warnings([one, same])[0].endswith("copies of one run; their columns are identical")


def test_compare_says_how_the_data_of_runs_on_different_bars_differ(tmp_path):
    """DIFFERENT DATA named only hashes (aeffe202... against d5363a3a...): the warning gives each
    run's source, timeframe, bar count and span from its run.json."""
    from exitcore.compare import RunView, _data_words, warnings

    splits = (("train", "2015-01-01", "2016-10-24"), ("test", "2016-10-25", "2019-12-31"))
    m15 = {"source": "histdata: /d/*EURUSD* (clock UTC)", "timeframe": "15min", "n_bars": 49753,
           "start": "2018-01-01 22:00:00+00:00", "end": "2019-12-31 16:45:00+00:00", "hash": "d5363a3aaf465bdb"}
    m1 = {**m15, "timeframe": "1min", "n_bars": 745077, "hash": "aeffe202e20f7064"}
    assert _data_words(m15) == "histdata: /d/*EURUSD* (clock UTC), 15min, 49,753 bars 2018-01-01 -> 2019-12-31"
    assert _data_words({}) == "" and _data_words({"source": "synthetic"}) == "synthetic"

    def view(run_id, data):
        return RunView(run_id, run_id, tmp_path, "x", data["hash"], splits, {}, {"n_trades": 9}, 112,
                       data_words=_data_words(data))

    (out,) = warnings([view("a", m15), view("b", m1)])
    assert out == ("DIFFERENT DATA: these runs were trained and evaluated on different bars (a: d5363a3aaf465bdb "
                   "(histdata: /d/*EURUSD* (clock UTC), 15min, 49,753 bars 2018-01-01 -> 2019-12-31); b: aeffe202e20f7064 "
                   "(histdata: /d/*EURUSD* (clock UTC), 1min, 745,077 bars 2018-01-01 -> 2019-12-31)); their numbers "
                   "are not comparable")


def test_compare_says_when_runs_on_the_same_prices_read_other_volume_or_spread(tmp_path):
    """The data hash covers timestamps and OHLC: two runs on the same prices with another
    volume column compared as the same data, although a feature reading volume saw other data."""
    from exitcore.compare import RunView, warnings

    splits = (("train", "2015-01-01", "2016-10-24"), ("test", "2016-10-25", "2019-12-31"))

    def view(run_id, columns):
        return RunView(run_id, run_id, tmp_path, "x", "d5363a3aaf465bdb", splits, {}, {"n_trades": 9}, 112,
                       column_hashes=columns)

    a = view("a", {"volume": "1" * 16, "spread": "2" * 16})
    b = view("b", {"volume": "3" * 16, "spread": "2" * 16})
    c = view("c", {"volume": "1" * 16})
    (out,) = warnings([a, b, c])
    assert out == ("DIFFERENT DATA: these runs' bars have the same timestamps and prices (hash d5363a3aaf465bdb) but "
                   "other values in their other columns (b against a: 'volume' differs; c against a: 'spread' is gone); "
                   "a feature reading those columns saw other data, so their numbers may not be comparable (each is a "
                   "trial of its own)")
    assert warnings([a, view("d", dict(a.column_hashes))]) == []
    # recorded before run.json kept column hashes: whether its volume agreed is unknown, and said
    assert warnings([a, view("old", None)]) == [
        "OTHER COLUMNS UNKNOWN: old recorded no hashes of its bars' columns besides the prices (run before exitcore "
        "kept them), so whether its 'spread', 'volume' agreed with those of a is unknown; a feature reading them may "
        "have seen other data"]
    assert warnings([view("e", {}), view("old", None)]) == []  # e has no other column to disagree with
    # beside a difference the recorded runs show, which is still said (review AE), and with runs without columns
    out = warnings([view("e", {}), a, b, view("old", None), view("older", None)])
    assert [w.split(":")[0] for w in out] == ["DIFFERENT DATA", "OTHER COLUMNS UNKNOWN"]
    assert "(a against e: 'volume' is new, 'spread' is new; b against e: 'volume' is new, 'spread' is new)" in out[0]
    assert out[1].startswith("OTHER COLUMNS UNKNOWN: old and older recorded no hashes of their bars' columns")
    assert "whether their 'spread', 'volume' agreed with those of a, b is unknown" in out[1]
    # compare reads them from run.json's data
    from exitcore.compare import _column_hashes

    assert _column_hashes({"data": {"hash": "x", "column_hashes": {"volume": "1" * 16}}}) == {"volume": "1" * 16}
    assert _column_hashes({"data": {"hash": "x"}}) is None and _column_hashes({}) is None


def test_compare_reads_the_evaluator_code_of_a_runs_last_resume():
    """After a resume that fixed an evaluator (allowed: evaluators only read the ledgers) run.json's
    top-level plugins still named the first start's evaluator code, so compare's DIFFERENT CODE
    spoke of code that did not evaluate the run; the last resume's is the one that did."""
    from exitcore.compare import _plugin_code

    config = {"rewards": [{"name": "pnl"}], "eval": {"evaluators": [{"name": "exit_stats"}]}}

    def plugin(name, component, source):
        return {"name": name, "distribution": f"exitcore-{name}", "version": "0.1.0", "source_hash": source,
                "components": [component]}

    start = [plugin("rewards", "reward:pnl", "a" * 16), plugin("evaluators", "evaluator:exit_stats", "b" * 16)]
    resumed = [start[0], plugin("evaluators", "evaluator:exit_stats", "c" * 16)]
    assert _plugin_code({"plugins": start}, config) == {
        "rewards": f"exitcore-rewards 0.1.0, source {'a' * 16}", "evaluators": f"exitcore-evaluators 0.1.0, source {'b' * 16}"}
    meta = {"plugins": start, "resumes": [{"at": "t1", "plugins": start}, {"at": "t2", "plugins": resumed}]}
    assert _plugin_code(meta, config)["evaluators"] == f"exitcore-evaluators 0.1.0, source {'c' * 16}"
    assert _plugin_code(meta, config)["rewards"] == f"exitcore-rewards 0.1.0, source {'a' * 16}"
    # a resume recorded without plugins (or damaged) leaves the start's
    assert _plugin_code({"plugins": start, "resumes": [{"at": "t1"}, "junk"]}, config)["evaluators"].endswith("b" * 16)


# --------------------------------------------------------------------------- damaged and read-only registries


@pytest.mark.parametrize("column, value", [("metrics", "{bad"), ("params", "{bad"), ("params", "[1]"),
                                           ("started_at", "garbage")])
def test_a_damaged_row_is_listed_as_damaged_and_the_others_are_unaffected(tmp_path, column, value):
    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        bad = reg.create_run("v4", "cfg", "data", params={"budget": "smoke"})
        reg.mark_running(bad)
        reg.mark_done(bad, {"sharpe": 1.5})
        good = reg.create_run("v3", "cfg", "data")
    with sqlite3.connect(runs / REGISTRY_FILE) as conn:
        conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, bad))
    with Registry(runs, read_only=True) as reg:
        record = reg.get(bad)
        assert column in record.damaged and reg.get(good).damaged == {}
        assert record.duration_s is None or column != "started_at"
    for args in (["runs"], ["runs", "--json"], ["show", bad], ["show", good]):
        res = CliRunner().invoke(cli, [*args, "--runs-dir", str(runs)])
        assert res.exit_code == 0 and "Traceback" not in res.output, (args, res.output)
        assert good in res.output or args[0] == "show"
        if bad in args or args == ["runs"]:  # one line naming the run and the column
            assert f"warning: run {bad}: the registry's {column} column is damaged" in res.output
    listed = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)]).output
    if column == "metrics":
        assert re.search(rf"{bad} .* damaged ", listed)


def test_read_only_commands_do_not_initialise_an_empty_registry_file(tmp_path):
    runs = tmp_path / "runs"
    (runs / "20260101-000000-v4-abcd").mkdir(parents=True)
    (runs / REGISTRY_FILE).write_bytes(b"")
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert res.exit_code == 2 and "is empty (0 bytes)" in res.output, res.output
    assert "move it away and rebuild it from the run directories: `exitcore runs --record`" in res.output
    assert (runs / REGISTRY_FILE).stat().st_size == 0  # left as found
    with pytest.raises(RegistryError, match="is empty"):
        Registry(runs, read_only=True)


def test_a_directory_in_place_of_the_registry_is_named(tmp_path):
    runs = tmp_path / "runs"
    (runs / REGISTRY_FILE).mkdir(parents=True)
    res = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert res.exit_code == 2 and f"{runs / REGISTRY_FILE} is a directory" in res.output, res.output


def _read_only(path: Path, *command: str) -> subprocess.CompletedProcess:
    """``command`` run with ``path`` read-only: by permissions, or (root ignores them) in a read-only bind mount."""
    if os.geteuid() != 0:
        return subprocess.run(["sh", "-c", f"chmod -R a-w {path}; \"$@\"; s=$?; chmod -R u+w {path}; exit $s", "sh",
                               *command], capture_output=True, text=True, timeout=120)
    script = f'mount --bind "{path}" "{path}" && mount -o remount,ro,bind "{path}" "{path}" && exec "$@"'
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", *command], capture_output=True, text=True, timeout=120)


def test_a_read_only_runs_directory_can_be_listed_but_not_written(tmp_path):
    import shutil

    if os.geteuid() == 0 and (shutil.which("unshare") is None
                              or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0):
        pytest.skip("root without user namespaces cannot make a read-only directory")
    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        done = reg.create_run("v4", "cfg", "data")
        reg.mark_running(done)
        reg.mark_done(done, {"sharpe": 0.5})
        dead = reg.create_run("v4", "cfg", "data")
        reg.mark_running(dead)
    with sqlite3.connect(runs / REGISTRY_FILE) as conn:  # its process is gone, not yet noticed
        conn.execute("UPDATE runs SET pid = 999999999, proc_start = 'x' WHERE id = ?", (dead,))
    before = (runs / REGISTRY_FILE).read_bytes()
    py = [sys.executable, "-m", "exitcore"]
    listed = _read_only(runs, *py, "runs", "--runs-dir", str(runs))
    assert listed.returncode == 0 and done in listed.stdout, listed.stderr
    assert re.search(rf"{dead} +v4 +interrupted", listed.stdout)  # shown as what it is, though not marked
    shown = _read_only(runs, *py, "show", done, "--runs-dir", str(runs))
    assert shown.returncode == 0 and "status" in shown.stdout, shown.stderr
    # a command that writes still refuses, as before
    writer = _read_only(runs, sys.executable, "-c", f"from exitcore.registry import Registry; Registry({str(runs)!r})")
    assert writer.returncode != 0 and "is not writable" in writer.stderr
    assert (runs / REGISTRY_FILE).read_bytes() == before  # nothing was altered
    # the status filter is the status shown (it filtered on the stored "running")
    only = _read_only(runs, *py, "runs", "--status", "interrupted", "--runs-dir", str(runs))
    assert only.returncode == 0 and dead in only.stdout and done not in only.stdout, only.stdout + only.stderr
    # changes still in the write-ahead log: read unlocked from the file alone, a run went missing
    (runs / (REGISTRY_FILE + "-shm")).unlink(missing_ok=True)
    (runs / (REGISTRY_FILE + "-wal")).write_bytes(b"\0" * 4096)
    stale = _read_only(runs, *py, "runs", "--runs-dir", str(runs))
    assert stale.returncode == 2 and "holds changes not yet written into it" in stale.stderr, stale.stdout + stale.stderr


def test_the_trial_count_source_names_the_registry_by_its_absolute_path(tmp_path, monkeypatch):
    """results.json is read from anywhere: `--runs-dir runs-t2` was recorded as given."""
    from types import SimpleNamespace

    from exitcore.runner import _trials_source

    monkeypatch.chdir(tmp_path)
    source = _trials_source(SimpleNamespace(path="runs-t2/registry.sqlite"), "abc")
    assert source.startswith(f"run registry {tmp_path / 'runs-t2' / 'registry.sqlite'}: ")


def test_compare_of_a_run_whose_directory_is_gone_says_so(populated):
    """compare said "results.json: no results: the run was not evaluated (did it finish?)" for a
    finished run whose directory had been deleted; report and audit name the directory."""
    runs, done, train, failed = populated
    (runs / done).rmdir()
    res = CliRunner().invoke(cli, ["compare", done, train, "--runs-dir", str(runs)])
    assert res.exit_code == 2
    assert f"error: run {done}: its directory {runs / done} does not exist" in res.output, res.output


def test_run_refuses_a_damaged_registry_before_loading_anything(tmp_path):
    """`file is not a database` came only after the data was loaded and the episodes built."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "registry.sqlite").write_text("garbage")
    res = CliRunner().invoke(cli, ["run", "v4", "--budget", "smoke", "--runs-dir", str(runs)])
    assert res.exit_code == 2
    assert f"error: run registry {runs / 'registry.sqlite'}: file is not a database" in res.output
    assert "loading data" not in res.output and "exitcore run v4" not in res.output
    assert sorted(p.name for p in runs.iterdir()) == ["registry.sqlite"]  # nothing created beside it


def test_a_run_taken_over_is_left_to_its_new_owner(tmp_path):
    """The first owner's runner records nothing when told the run is another process's: it
    marked the run failed (which the new owner could then not resume) and told plugins so."""
    from types import SimpleNamespace

    from exitcore.errors import NotOwner
    from exitcore.runner import RunFailed, _recorded

    calls: list[str] = []
    spy = SimpleNamespace(mark_failed=lambda *a: calls.append("failed"), mark_interrupted=lambda *a: calls.append("interrupted"),
                          run_finished=lambda *a: calls.append("finished"))
    info = SimpleNamespace(run_id="r1", run_dir=tmp_path)
    with pytest.raises(RunFailed, match="stopped while training: run r1 is now running under process 7"):
        with _recorded(spy, spy, info, "training"):
            raise NotOwner("run r1 is now running under process 7 on elsewhere")
    assert calls == []

    # Ctrl-C (or a failure) after the takeover: marking the run finds another owner
    def taken(*_args):
        raise NotOwner("run r1 is now running under process 7 on elsewhere")

    spy.mark_interrupted = spy.mark_failed = taken
    for stop in (KeyboardInterrupt(), ValueError("a bug")):
        with pytest.raises(RunFailed, match="stopped while evaluating: run r1 is now running under process 7"):
            with _recorded(spy, spy, info, "evaluating"):
                raise stop
    assert calls == []  # plugins are not told the run ended: it goes on, under its new owner


def test_only_the_owner_marks_its_run_done_failed_or_interrupted(reg):
    """A process whose run was taken over marked the new owner's run done (or interrupted on
    Ctrl-C) before its next heartbeat noticed (a review)."""
    from exitcore.errors import NotOwner

    for mark in (reg.mark_done, reg.mark_failed, reg.mark_interrupted):
        run_id = reg.create_run("v4", "c", "d")
        reg.mark_running(run_id)
        _sql(reg, "UPDATE runs SET pid = 424242, proc_start = 'x:1' WHERE id = ?", run_id)  # the resumer's
        with pytest.raises(NotOwner, match=f"run {run_id} is now running under process 424242"):
            mark(run_id)
        assert reg.get(run_id).status == "running"


def test_two_recorders_of_the_same_directories_both_succeed(tmp_path):
    """Two `runs --record` that listed the same unrecorded directories: the second said 'already
    records a run ... in another directory' naming that very directory, and exited 2."""
    from exitcore.recording import record_run_dirs

    runs = tmp_path / "runs"
    run_dir = runs / "20261101-000000-v4_no_lookahead-ab12"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name, "experiment": "v4_no_lookahead",
                                                  "config_hash": "c", "seed": 0, "data": {"hash": "d"}}))
    with Registry(runs) as first, Registry(runs) as second:
        (a,) = record_run_dirs(first, [run_dir])
        (b,) = record_run_dirs(second, [run_dir])  # listed before the first recorded it
    assert (a.run_id, a.status) == (b.run_id, b.status) == (run_dir.name, "interrupted") and b.why_not is None


def test_a_run_directory_with_damaged_results_is_recorded_interrupted_and_counts_as_a_trial(tmp_path):
    """Trial Z 12: `runs --record` refused a run whose results.json was damaged, so that trial
    dropped out of the deflated Sharpe ratio's N; it is recorded interrupted (a resume evaluates
    it again), saying why."""
    from exitcore.recording import record_run_dirs

    runs = tmp_path / "runs"
    run_dir = runs / "20261101-000000-v4_no_lookahead-ab12"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_dir.name, "experiment": "v4_no_lookahead",
                                                  "config_hash": "c", "seed": 0, "data": {"hash": "d"}}))
    (run_dir / "results.json").write_text('{"headline": {"sharpe": 1.2')  # cut short
    with Registry(runs) as registry:
        (outcome,) = record_run_dirs(registry, [run_dir])
        assert (outcome.run_id, outcome.status, outcome.why_not) == (run_dir.name, "interrupted", None)
        record = registry.get(run_dir.name)
        assert record.error.startswith("recorded from its run directory: its results.json is damaged (results.json: "
                                       "cannot be read as JSON")
        assert record.error.endswith("); resume it to evaluate it again")
        assert registry.trial_count("d") == 1


def test_a_runs_directory_of_copied_run_directories_without_a_registry_says_how_to_record_them(tmp_path):
    """`run --resume RUN` in a folder that a run directory was copied into said only 'no run has
    been recorded there' (a reproducibility trial): the command that records it is named."""
    runs = tmp_path / "runs"
    (runs / "20261128-012812-v4_no_lookahead-f46e").mkdir(parents=True)
    assert Registry.missing(runs) == f"no run registry in {runs}: no run has been recorded there"
    (runs / "20261128-012812-v4_no_lookahead-f46e" / "run.json").write_text("{}")
    message = Registry.missing(runs)
    assert message.startswith(f"no run registry in {runs}: no run has been recorded there; 1 run directory in {runs} "
                              "is not in its registry (e.g. 20261128-012812-v4_no_lookahead-f46e")
    assert f"runs --record --runs-dir {runs}` cannot record it as it is (20261128-012812-v4_no_lookahead-f46e: " \
           "run.json lacks run_id" in message
    with pytest.raises(RegistryError, match="runs --record"):
        Registry(runs, create=False)


def test_runs_of_one_trial_trained_with_another_setup_are_told_apart(tmp_path):
    """A run at 2 threads and its 1-thread twin differ in their weights' last bits, but report
    showed neither thread count nor torch version and compare said 'configuration: identical'
    (a reproducibility trial). The report shows the setup; compare warns where one trial was
    trained with two."""
    from exitcore.compare import RunView, warnings
    from exitcore.evaluation.rundir import training_setup

    one = {"versions": {"python": "3.11.7", "torch": "2.13.0+cpu"}, "threads": 1, "device": "cpu"}
    assert training_setup(one) == "torch 2.13.0+cpu, 1 thread, cpu"
    resumed = {**one, "resumes": [{"threads": 1, "versions": one["versions"]},
                                  {"threads": 2, "versions": {"torch": "2.14.0+cpu"}}]}
    assert training_setup(resumed) == "torch 2.13.0+cpu, 1 thread, cpu (resumed with torch 2.14.0+cpu, 2 threads)"
    assert training_setup({}) == ""
    # `--device cuda` and `--device cuda:0` are one trial (the hash drops the index) on one GPU:
    # not another setup (a review)
    assert training_setup({**one, "device": "cuda"}) == training_setup({**one, "device": "cuda:0"})
    assert training_setup({**one, "device": "cuda"}) != training_setup({**one, "device": "cuda:1"})

    splits = (("train", "2015-01-01", "2016-10-24"), ("test", "2016-10-25", "2019-12-31"))

    def view(run_id, setup, trial=("cfg", 0), data="h"):
        return RunView(run_id, run_id, tmp_path / run_id, "x", data, splits, {}, {"n_trades": 9}, 112,
                       trial=trial, setup=setup)

    a, b = view("a", training_setup(one)), view("b", training_setup({**one, "threads": 2}))
    assert warnings([a, b]) == [
        "DIFFERENT SETUP: runs of the same configuration, seed and bars trained with another torch, numpy or pandas "
        "version, thread count, device, compilation or micro-batch size (a: torch 2.13.0+cpu, 1 thread, cpu; b: torch "
        "2.13.0+cpu, 2 threads, cpu); the same setup repeats a run to the last bit, another one does not, so their "
        "differences are not the configuration's"]
    assert warnings([a, view("b", training_setup(one))]) == []  # the same setup
    # numpy and pandas (recorded since trial AD): another version is another setup; not recorded is not different
    libs = {**one, "versions": {**one["versions"], "numpy": "2.1.0", "pandas": "2.2.3"}}
    assert training_setup(libs) == "torch 2.13.0+cpu, numpy 2.1.0, pandas 2.2.3, 1 thread, cpu"
    newer = view("b", training_setup({**libs, "versions": {**libs["versions"], "numpy": "2.2.0"}}))
    assert [w.split(":")[0] for w in warnings([view("a", training_setup(libs)), newer])] == ["DIFFERENT SETUP"]
    assert warnings([a, view("b", training_setup(libs))]) == []
    # another seed: other numbers anyway (no DIFFERENT SETUP; the seeds are noted)
    assert [w.split(":")[0] for w in warnings([a, view("b", b.setup, trial=("cfg", 1))])] == ["SEEDS OF ONE CONFIGURATION"]
    # compiled or split otherwise: one trial (the config hash takes them at their defaults), other float rounding;
    # as run.json records what they worked out to ("auto" on a short CPU run compiles nothing: as "off")
    compiled = training_setup({**one, "compiled_env": True, "rows_per_pass": 512})
    assert compiled == "torch 2.13.0+cpu, 1 thread, cpu, compiled env step, 512-row passes"
    assert training_setup({**one, "compiled_env": False}) == a.setup
    assert "b: " + compiled in warnings([a, view("b", compiled)])[0]
    # a run recorded before run.json held them: worked out from its config.toml and device, so it
    # compares with a newer run of the same setup (it warned DIFFERENT SETUP beside bit-identical runs)
    from exitcore.evaluation.rundir import with_worked_out_setup

    config = {"ppo": {"hidden": [512, 256], "batch_size": 4096, "n_envs": 64, "n_steps": 2048, "total_timesteps": 262144}}
    assert training_setup(with_worked_out_setup(one, config)) == "torch 2.13.0+cpu, 1 thread, cpu, 2,048-row passes"
    recorded = {**one, "compiled_env": False}
    assert with_worked_out_setup(recorded, config) is recorded  # what the run recorded stands
    assert with_worked_out_setup(one, {"ppo": {"n_envs": "many"}}) is one  # unreadable: as recorded


def test_compare_warns_of_costs_training_lengths_seeds_and_registries_and_shows_the_period(tmp_path):
    """A comparison trial: runs under other costs, a budget-shortened run beside a full one,
    seeds of one configuration (whose intervals do not cover the seed) and runs deflated by
    different registries were compared without a word; the period behind each Sharpe was not
    shown, nor a deflated Sharpe that compares across runs made one after another."""
    from exitcore.compare import RunView, as_csv, as_table, warnings

    splits = (("train", "2015-01-01", "2016-10-24"), ("test", "2016-10-25", "2019-12-31"))

    def view(run_id, *, spread=1.0, steps=262144, seed=0, trials=2, where="runs", trained=None, stopped=None,
             notional=100_000.0):
        config = {"costs": {"spread_pips": spread, "slippage_pips": 0.2, "commission_pips": 0.0, "notional": notional,
                            "account_currency": "USD"},
                  "ppo": {"total_timesteps": steps, "seed": seed}}
        metrics = {"n_trades": 9, "span_start": "2016-10-25 00:00:00+00:00", "span_end": "2019-12-31 23:45:00+00:00",
                   "n_days": 830, "active_days": 700, "dsr_recorded": 0.4, "dsr_trials": 1, "dsr_today": 0.25,
                   "dsr_today_trials": trials}
        return RunView(run_id, run_id, tmp_path / where / run_id, "x", "h", splits, config, metrics, 112,
                       trial=("cfg", seed), trained_steps=trained, stopped_early=stopped, registry=tmp_path / where)

    a = view("a")
    assert warnings([a, view("b", seed=0)]) == []
    said = warnings([a, view("b", spread=0.2)])
    assert said == ["DIFFERENT COSTS: these runs pay different trading costs (a: spread 1.0, slippage 0.2, commission 0.0 "
                    "pips; b: spread 0.2, slippage 0.2, commission 0.0 pips); every PnL figure, the baselines' too, depends "
                    "on them: their numbers are not comparable"]
    # another notional scales the account-currency total alone: not DIFFERENT COSTS
    said = warnings([a, view("b", notional=10_000.0)])
    assert said == ["DIFFERENT NOTIONAL: these runs size each trade differently (a: notional 100,000 USD; b: notional "
                    "10,000 USD): their total PnL in the account currency differs by that alone; the returns, Sharpe "
                    "ratios and other PnL fractions compare"]
    def training(each):
        return [f"DIFFERENT TRAINING LENGTH: these runs trained for different numbers of steps ({each}); a run shortened "
                "by a budget or --timesteps, or stopped early, is not its experiment's full training (`exitcore report "
                "RUN` names its budget)"]

    said = warnings([a, view("b", steps=16384)])  # no training logs: the asked steps
    assert said == training("a: 262,144 steps asked (no training log); b: 16,384 steps asked (no training log)")
    # what they trained, not what was asked: 10,000 and 16,384 asked both train one update of 16,384
    assert warnings([view("a", steps=10_000, trained=16384), view("b", steps=16384, trained=16384)]) == []
    said = warnings([view("a", trained=262144), view("b", trained=49152, stopped="entropy collapsed")])
    assert said == training("a: 262,144 steps; b: 49,152 of 262,144 steps (stopped early: entropy collapsed)")
    said = warnings([a, view("b", seed=1)])
    assert said == ["SEEDS OF ONE CONFIGURATION: a (seed 0), b (seed 1) differ only in their training seed: the spread of "
                    "their numbers is the training's randomness, which the bootstrap intervals do not cover (each resamples "
                    "the days of one trained policy); compare versions over several seeds each"]
    # two of three share a seed: they do not "differ only in their training seed" (a trial)
    said = warnings([a, view("b", seed=0), view("c", seed=1)])
    assert said == ["SEEDS OF ONE CONFIGURATION: a (seed 0), b (seed 0), c (seed 1) are runs of one configuration with "
                    "different training seeds: the spread of their numbers across seeds is the training's randomness, "
                    "which the bootstrap intervals do not cover (each resamples the days of one trained policy); compare "
                    "versions over several seeds each"]
    # one trial run twice, deflated at run time for the trials recorded then: 2 and 7, six orders of magnitude apart
    again = view("b")
    again.metrics.update(dsr_trials=7, dsr_recorded=4e-9)
    assert warnings([a, again]) == [
        "SAME TRIAL: a (N = 1), b (N = 7) are runs of one configuration and seed on the same bars, one trial, whose "
        "deflated Sharpes at run time were deflated for the trials recorded when each ran: compare their deflated "
        "Sharpe with today's trials"]
    places = f"{tmp_path / 'elsewhere'}, {tmp_path / 'runs'}"
    for trials in (5, 2):  # two registries: whatever their counts, neither counts the other's trials
        said = warnings([a, view("b", trials=trials, where="elsewhere")])
        assert said == [f"DIFFERENT REGISTRIES: runs on the same bars are counted in different runs directories "
                        f"({places}): each one's deflated Sharpe counts only its own directory's trials, so their "
                        "deflated Sharpes do not compare; keep a study's runs in one runs directory"]
    # one registry, other counts (a run deflated at run time for more trials than it records today)
    assert warnings([a, view("b", trials=5)]) == []
    table = as_table([a, view("b")])
    assert re.search(r"\nperiod from +2016-10-25 00:00 +2016-10-25 00:00\n", table)
    assert re.search(r"\nperiod to +2019-12-31 23:45 ", table)
    assert re.search(r"\ndays \(weekdays; with an exit\) +830 \(700\) ", table)
    assert re.search(r"\ndeflated Sharpe \(today's trials\) +0.250 \(N = 2\) ", table)
    csv = as_csv([a, view("b")]).replace("\r\n", "\n")
    assert "\nn_days,830,830\nactive_days,700,700\n" in csv and "\ndsr_today,0.25,0.25\ndsr_today_trials,2,2\n" in csv


def test_walk_forward_results_are_compared_and_marked_in_runs(tmp_path):
    """Walk-forward results appeared nowhere but in report: compare, show and runs gave the
    single split's figures only (a walk-forward trial)."""
    from exitcore.cli.runs import _measured_on
    from exitcore.compare import RunView, as_csv, as_table
    from exitcore.evaluation.rundir import walk_forward_headline

    wf = {"windows": [{}, {}, {}], "aggregate": {"metrics": {"rl": {"sharpe": -2.96}, "best_baseline": {"sharpe": -1.7274}},
                                                "intervals": {"rl": {"sharpe": {"low": -5.19, "high": -1.26},
                                                                     "confidence": 0.9}},
                                                "dsr": {"dsr": 0.002, "n_trials": 1}}}
    walk = walk_forward_headline(wf)
    assert walk == {"walk_forward_windows": 3, "walk_forward_sharpe": -2.96, "walk_forward_sharpe_interval": [-5.19, -1.26],
                    "walk_forward_sharpe_interval_confidence": 0.9, "walk_forward_best_baseline_sharpe": -1.7274,
                    "walk_forward_dsr": 0.002, "walk_forward_dsr_trials": 1}
    assert set(walk_forward_headline(None).values()) == {None}
    splits = (("train", "2015-01-01", "2016-10-24"), ("test", "2016-10-25", "2019-12-31"))

    def view(run_id, metrics):
        return RunView(run_id, run_id, tmp_path / run_id, "x", "h", splits, {}, {"n_trades": 9, **metrics}, 112)

    plain = view("b", walk_forward_headline(None))
    table = as_table([view("a", walk), plain])
    assert re.search(r"\nwalk-forward Sharpe \(RL, all windows\) +-2.96 +-\n", table)
    assert re.search(r"\nwalk-forward Sharpe interval +\[-5.19, -1.26\] 90% +-\n", table)
    assert re.search(r"\nwalk-forward best baseline Sharpe +-1.73 +-\n", table)
    assert re.search(r"\nwalk-forward deflated Sharpe +0.002 \(N = 1\) +-\n", table)
    csv = as_csv([view("a", walk), plain])
    assert "walk_forward_dsr_trials,1," in csv and "\nwalk_forward_sharpe_interval_confidence,0.9," in csv
    assert "walk-forward" not in as_table([plain, plain])  # no run has any: no rows
    # a run whose walk_forward.json is unusable: its rows are empty, or there are none to be empty
    from exitcore.compare import warnings

    lost = attrs.evolve(view("c", walk_forward_headline(None)), walk_forward_problem="walk_forward.json: no such file")
    assert "WALK-FORWARD: c: walk_forward.json: no such file; its walk-forward rows are empty" in warnings([view("a", walk), lost])
    assert "WALK-FORWARD: c: walk_forward.json: no such file; no walk-forward figures are shown" in warnings([plain, lost])
    assert _measured_on({"label": "TEST (out-of-sample)", **walk}) == "TEST (out-of-sample) + walk-forward (3 windows)"
    assert _measured_on({"label": "TEST (out-of-sample)"}) == "TEST (out-of-sample)"


def test_compare_never_deflates_a_run_for_fewer_trials_than_it_was_deflated_for(tmp_path, monkeypatch):
    """A registry that now records fewer trials on the run's data than the run was deflated for
    (runs deleted, a rebuilt registry) must not raise its deflated Sharpe: the trials were made.
    compare shows the recorded value with the recorded N, and names the registry that counted."""
    import exitcore.evaluation.report as report
    from exitcore.compare import _dsr_today
    from exitcore.evaluation.report import TrialsToday

    results = {"evaluators": {"significance": {"dsr": {"dsr": 0.4, "n_trials": 5}}}}
    for count in (3, 5):
        monkeypatch.setattr(report, "current_trials", lambda run_dir, runs_dir=None, split=None, n=count: TrialsToday(n, (), tmp_path))
        assert _dsr_today(tmp_path / "r", results, "test") == ({"dsr_today": 0.4, "dsr_today_trials": 5}, tmp_path)
    monkeypatch.setattr(report, "current_trials", lambda run_dir, runs_dir=None, split=None: None)  # no registry records it
    assert _dsr_today(tmp_path / "r", results, "test") == ({"dsr_today": None, "dsr_today_trials": None}, None)


def test_compare_of_an_experiment_without_a_finished_run_exits_by_what_its_runs_are_doing(tmp_path):
    """`compare v3 v4` where v4's only run is still training exited 2, as a typo does: a script
    could not tell "try again later" (75) from bad input; failed or interrupted runs only: 4."""
    from exitcore.compare import collect
    from exitcore.registry import RunNotDone, RunStillRunning

    with Registry(tmp_path / "runs") as reg:
        run_id = reg.create_run("v4_no_lookahead", "cfg", "data")
        reg.mark_running(run_id)
        with pytest.raises(RunStillRunning, match="experiment v4_no_lookahead has no finished run .runs are running.") as exc:
            collect(["v4_no_lookahead", "v4_no_lookahead"], reg, None)
        assert exc.value.exit_code == 75
        assert str(exc.value).endswith(f"(runs are running); wait for run {run_id} to finish")
        reg.mark_interrupted(run_id, "test")
        with pytest.raises(RunNotDone, match=r"\(runs are interrupted\)") as exc:
            collect(["v4_no_lookahead", "v4_no_lookahead"], reg, None)
        assert exc.value.exit_code == 4 and not isinstance(exc.value, RunStillRunning)
        # an interrupted run never finishes on its own: "wait for it" pointed the wrong way (trial W)
        where = f" --runs-dir {reg.runs_dir}"
        assert str(exc.value).endswith(f"(runs are interrupted); `exitcore run --resume {run_id}{where}` continues the "
                                       f"latest, or `exitcore run v4_no_lookahead{where}` starts one")
        # a newer failed run beside it: the interrupted one can still be resumed (review AG)
        newer = reg.create_run("v4_no_lookahead", "cfg", "data")
        reg.mark_running(newer)
        reg.mark_failed(newer, "test")
        with pytest.raises(RunNotDone) as exc:
            collect(["v4_no_lookahead", "v4_no_lookahead"], reg, None)
        assert str(exc.value).endswith(f"(runs are failed, interrupted); `exitcore run --resume {run_id}{where}` "
                                       f"continues the latest interrupted one, or `exitcore run v4_no_lookahead{where}` "
                                       "starts one")
        reg.mark_failed(run_id, "test")
        with pytest.raises(RunNotDone) as exc:
            collect(["v4_no_lookahead", "v4_no_lookahead"], reg, None)
        assert str(exc.value).endswith(f"(runs are failed); `exitcore run v4_no_lookahead{where}` starts one")



def test_runs_are_listed_by_when_they_were_created_not_when_they_were_recorded(reg):
    """`runs --record` adds old runs after the registry's own: `runs` ("oldest first") listed a
    run started at 20:48 after runs from 20:57 and 21:00 (trial W)."""
    first = reg.create_run("v4_no_lookahead", "cfg", "data")
    second = reg.create_run("v4_no_lookahead", "cfg", "data")
    assert [r.id for r in reg.list()] == [first, second]
    _sql(reg, "UPDATE runs SET created_at = ? WHERE id = ?", "2020-01-01T00:00:00.000+00:00", second)
    assert [r.id for r in reg.list()] == [second, first]
    assert [r.id for r in reg.list(experiment="v4_no_lookahead")] == [second, first]


def test_runs_shows_what_each_run_s_command_changed(tmp_path):
    """A `--set` variant is listed under its experiment's name: `runs` could not tell it from the
    base run, and `compare v4` takes the latest of either (trial X)."""
    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        reg.create_run("v4_no_lookahead", "a", "data", params={"budget": "smoke", "overrides": []})
        reg.create_run("v4_no_lookahead", "b", "data", params={"budget": "smoke", "overrides": ["env.tighten_factor=0.7"],
                                                              "timesteps": 4096, "from_run": "/r/20261129-1-v4-ab12"})
        reg.create_run("v4_no_lookahead", "c", "data")
    lines = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)]).output.splitlines()
    assert lines[0].rstrip().endswith("measured on  options")
    assert lines[1].endswith("  --budget smoke")
    assert lines[2].endswith("  --budget smoke --set env.tighten_factor=0.7 --timesteps 4096 --from 20261129-1-v4-ab12")
    assert lines[3].endswith("  -")


def _lock_held(runs_dir):
    """Another process's view: a connection holding the registry's write lock (a sqlite3 shell
    with ``BEGIN EXCLUSIVE`` open)."""
    conn = sqlite3.connect(runs_dir / REGISTRY_FILE, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def test_a_registry_locked_past_its_timeout_is_the_machine_s_trouble_and_readers_still_read(tmp_path):
    """Trial Z: a sqlite3 shell holding the lock for over 30 s failed a training run for good
    (a RegistryError, recorded `failed`), and `exitcore runs` gave up with status 2. A lock or a
    full disk is RegistryTrouble (status 1, a run stopped by it is resumable), and a command
    that only reads still reads."""
    from exitcore.registry import RegistryTrouble

    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        run_id = reg.create_run("v4", "h", "d", seed=1)
        reg.mark_running(run_id)
    running = Registry(runs, timeout=0.2)  # the run's own, opened before the lock was taken
    holder = _lock_held(runs)
    try:
        with running as reg, pytest.raises(RegistryTrouble) as exc:
            reg.heartbeat(run_id)
        assert exc.value.exit_code == 1
        assert "database is locked (another process has held its lock for over 0.2 s" in str(exc.value)
        with Registry(runs, timeout=0.2, read_only=True) as reader:
            assert [r.id for r in reader.list()] == [run_id]
    finally:
        holder.rollback()
        holder.close()


def test_a_heartbeat_the_locked_registry_refuses_does_not_stop_the_run(tmp_path, capsys):
    from exitcore.registry import RegistryTrouble
    from exitcore.runner import _heartbeat

    class Locked:
        calls = 0

        def heartbeat(self, run_id):
            self.calls += 1
            raise RegistryTrouble("run registry R: database is locked (...)")

    registry = Locked()
    beat = _heartbeat(registry, "r1", every_s=0.0)
    beat()
    beat()  # goes on, warned once
    assert registry.calls == 2
    assert capsys.readouterr().err.count("warning: run registry R: database is locked") == 1
    with pytest.raises(RegistryTrouble):
        beat(now=True)  # before a file is written: ownership must be checked


def test_a_stage_stopped_by_registry_trouble_leaves_the_run_resumable(tmp_path):
    """The stage's failure marks the run interrupted (resumable) where the registry takes the
    mark; where it cannot either, the message says the next command will."""
    from exitcore.registry import RegistryTrouble
    from exitcore.runner import RunInterrupted, _recorded

    class Host:
        def run_finished(self, *args):
            pass

    class Info:
        run_id, run_dir = "r1", tmp_path / "r1"

    class Marking:
        def __init__(self, fails):
            self.fails, self.marked = fails, []

        def mark_interrupted(self, run_id, why):
            if self.fails:
                raise RegistryTrouble("still locked")
            self.marked.append((run_id, why))

    for fails in (False, True):
        registry = Marking(fails)
        with pytest.raises(RunInterrupted) as exc, _recorded(registry, Host(), Info(), "training"):
            raise RegistryTrouble("run registry R: database is locked")
        assert registry.marked == ([] if fails else [("r1", "stopped while training: RegistryTrouble: run registry R: database is locked")])
        assert ("the next exitcore command finds this process gone" in exc.value.cause) is fails


def test_a_resume_on_changed_bars_says_how_they_differ_and_what_to_do(tmp_path):
    """Trial Z: "the data changed (hash A when the run started, B now)" said neither what changed
    nor what to do; run.json records the bars' count and span."""
    from types import SimpleNamespace

    import pandas as pd

    from exitcore.resume import check_data_unchanged

    (tmp_path / "run.json").write_text(json.dumps({"run_id": "r1", "experiment": "v4", "config_hash": "c", "data": {
        "hash": "a" * 16, "n_bars": 51911, "start": "2018-01-02 00:00:00+00:00", "end": "2020-02-14 14:45:00+00:00"}}))
    previous = SimpleNamespace(id="r1", data_hash="a" * 16)
    bars = type("Bars", (), {"__len__": lambda self: 51912, "start": pd.Timestamp("2018-01-02", tz="UTC"),
                             "end": pd.Timestamp("2020-02-14 15:00", tz="UTC")})()  # one bar appended
    with pytest.raises(ExitcoreError) as exc:
        check_data_unchanged(previous, "b" * 16, tmp_path, None, bars)
    assert str(exc.value) == (
        f"cannot resume run r1: the data changed (hash {'a' * 16} when the run started, {'b' * 16} now: 51,911 bars "
        "2018-01-02 00:00 -> 2020-02-14 14:45 then, 51,912 bars 2018-01-02 00:00 -> 2020-02-14 15:00 now); a resume "
        "continues on the bars it started on: restore the run's file (a re-downloaded file may hold more bars or "
        "revised prices), or start a new run on these bars (`run --from r1`, another trial)")


def test_a_run_whose_process_cannot_be_checked_says_how_it_is_judged(reg):
    """Trial Z: a run killed in another PID namespace showed "already running (pid 1)" for ten
    minutes, with no word that it is judged by its heartbeat, nor until when."""
    from exitcore.registry import RunStillRunning
    from exitcore.resume import resumed_twice

    run_id = reg.create_run("v4", "c", "d")
    reg.mark_running(run_id)
    _sql(reg, "UPDATE runs SET hostname = 'elsewhere', pid = 1, heartbeat_at = '2026-11-30T00:00:00.000+00:00' "
              "WHERE id = ?", run_id)
    said = ("; its process cannot be checked from here (another host or PID namespace): it counts as running until "
            "10 min after its last heartbeat, at 2026-11-30 00:10 UTC, then as interrupted")
    with pytest.raises(RunStillRunning) as exc:
        reg.require_done(run_id)
    assert said in str(exc.value)
    assert said in str(resumed_twice(reg.get(run_id)))
    mine = reg.create_run("v4", "c", "d")
    reg.mark_running(mine)  # this process: checked, so nothing to explain
    assert "cannot be checked" not in str(resumed_twice(reg.get(mine)))


def test_runs_record_leaves_alone_a_run_whose_process_still_runs(tmp_path):
    """Trial Z: a registry deleted under a live run, then `runs --record`, recorded the run as
    interrupted, and `--resume` started a second process in its directory beside the first.
    run.json names the process that writes the run; a live one is not recorded; a gone one is,
    and so is a directory without results and evaluated metadata is explained."""
    from exitcore.process_identity import owner_host, owner_token
    from exitcore.recording import record_run_dirs

    runs = tmp_path / "runs"
    alive, gone, lost = (runs / f"20261101-00000{i}-v4_no_lookahead-ab1{i}" for i in range(3))
    for run_dir, pid, token in ((alive, os.getpid(), owner_token()), (gone, 999_999_999, "x:1")):
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps({
            "run_id": run_dir.name, "experiment": "v4_no_lookahead", "config_hash": "c", "seed": 0, "data": {"hash": "d"},
            "owner": {"pid": pid, "host": owner_host(), "token": token}}))
    lost.mkdir()
    (lost / "results.json").write_text("{}")
    with Registry(runs) as reg:
        by_dir = {r.run_dir: r for r in record_run_dirs(reg, [alive, gone, lost])}
    assert by_dir[alive].run_id is None and f"the process that ran it (pid {os.getpid()}) is still running" in by_dir[alive].why_not
    assert (by_dir[gone].run_id, by_dir[gone].status) == (gone.name, "interrupted")
    assert "it has no run.json though it has results: the run's metadata (its id, data, plugins) was deleted" in by_dir[lost].why_not
