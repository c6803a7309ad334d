"""CLI usability fixes from a user review: messages, exit codes and output of each one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from exitcore.cli import cli
from exitcore.experiments import SHIPPED_FILE

ROOT = Path(__file__).resolve().parents[1]


def test_compare_csv_keeps_the_warnings_on_stderr(monkeypatch, tmp_path):
    """--csv lost the DIFFERENT DATA / SPLITS warnings the table and --json show."""
    from exitcore import compare as cmp
    from exitcore.registry import Registry

    Registry(tmp_path / "runs").close()
    monkeypatch.setattr(cmp, "collect", lambda refs, registry, file: list(refs))
    monkeypatch.setattr(cmp, "warnings", lambda views: ["DIFFERENT DATA: not comparable"])
    monkeypatch.setattr(cmp, "as_csv", lambda views: "metric,a,b\n")
    result = CliRunner().invoke(cli, ["compare", "a", "b", "--csv", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert result.stdout == "metric,a,b\n"
    assert "warning: DIFFERENT DATA: not comparable" in result.stderr


def test_a_run_is_found_by_its_random_suffix_everywhere(tmp_path):
    """`show fa29` suggested the full id while `compare fa29 8d7d` said "no runs of an
    experiment 'fa29'": the one resolver (Registry.get) now accepts a unique suffix after a dash."""
    from exitcore.registry import AmbiguousName, Registry

    runs = tmp_path / "runs"
    with Registry(runs) as reg:
        a = reg.create_run("v4_no_lookahead", "c", "d")
        b = reg.create_run("v3", "c", "d")
        assert reg.get(a.rsplit("-", 1)[1]).id == a
        assert reg.get("v3-" + b.rsplit("-", 1)[1]).id == b
        with reg._write() as conn:  # two ids ending alike
            conn.execute("UPDATE runs SET id = id || '-zz'")
        with pytest.raises(AmbiguousName, match="2 runs end with it"):
            reg.get("zz")
        with reg._write() as conn:
            conn.execute("UPDATE runs SET id = substr(id, 1, length(id) - 3)")
        # the start of one id and the end of another: ambiguous, not silently the first
        year = a[:4]
        with reg._write() as conn:  # (an id from another day would not start with the year)
            conn.execute("UPDATE runs SET id = ? WHERE id = ?", ("19991231-000000-v3-" + year, b))
        with pytest.raises(AmbiguousName, match=f"run '{year}' is ambiguous: 2 runs start or end with it"):
            reg.get(year)
        with reg._write() as conn:
            conn.execute("UPDATE runs SET id = ? WHERE id = ?", (b, "19991231-000000-v3-" + year))
    suffix = a.rsplit("-", 1)[1]
    result = CliRunner().invoke(cli, ["show", suffix, "--runs-dir", str(runs)])
    assert result.exit_code == 0 and a in result.output, result.output
    result = CliRunner().invoke(cli, ["compare", suffix, b.rsplit("-", 1)[1], "--runs-dir", str(runs)])
    assert "no runs of an experiment" not in result.output and f"run {a} is pending" in result.output


def test_runs_dir_and_run_directory_mistakes_are_named(tmp_path, monkeypatch):
    runs = tmp_path / "typo"
    result = CliRunner().invoke(cli, ["runs", "--runs-dir", str(runs)])
    assert result.exit_code == 2
    assert f"error: no run registry in {runs}: the directory does not exist" in result.output
    # the default ./runs missing is a first start, not a mistake
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(cli, ["runs"], env={"EXITCORE_RUNS_DIR": ""})
    assert first.exit_code == 0 and first.output.startswith(f"no runs recorded yet ({tmp_path / 'runs'} does not exist;")
    other = tmp_path / "folder"
    other.mkdir()
    from exitcore.registry import Registry

    Registry(tmp_path / "runs").close()
    result = CliRunner().invoke(cli, ["show", str(other), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert f"error: {other} is not a run directory: it holds no run.json or config.toml" in result.output


def test_a_runs_dir_that_refuses_files_is_not_called_missing(monkeypatch, tmp_path):
    """`--runs-dir /proc` said "not writable: No such file or directory"."""
    import tempfile

    from exitcore.errors import ExitcoreError
    from exitcore.registry import Registry
    from exitcore.runner import check_runs_dir_writable

    def refuse(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(ExitcoreError, match=f"runs directory {tmp_path}/x is not writable: files cannot be created in {tmp_path} "):
        check_runs_dir_writable(tmp_path / "x")
    with pytest.raises(ExitcoreError, match="is not writable: files cannot be created in it"):
        Registry(tmp_path)


def test_split_dates_take_a_bare_year():
    """docs/experiments.md lists "2019" as a split date; `--set split.train_end=2019` said
    "expected a string, got 2019". Only split dates take a number, and only a year."""
    result = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", "split.train_end=2019"])
    assert result.exit_code == 0, result.output
    assert 'train_end = "2019"' in result.output
    result = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", "split.train_end=2019.5"])
    assert result.exit_code == 2 and 'expected a date such as "2019-01-01" (quoted) or a year such as 2019' in result.output
    result = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", "data.timeframe=15"])
    assert result.exit_code == 2 and "expected a string, got 15" in result.output


@pytest.mark.parametrize("key, why", [
    ("name=foo", "--set name: the experiment's name is not a setting"),
    ("lineage=[]", "--set lineage: lineage is recorded (the chain of experiments this one extends), not set"),
])
def test_name_and_lineage_cannot_be_set(key, why):
    result = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", key])
    assert result.exit_code == 2 and why in result.output


def test_the_unknown_key_message_does_not_offer_name_or_lineage():
    result = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", "nme=foo"])
    assert result.exit_code == 2 and "allowed: description, assumptions, data" in result.output
    assert "'name'" not in result.output and "lineage" not in result.output


def test_a_missing_experiments_file_is_refused_even_where_unused():
    """`data inspect SOURCE --experiments v4` (for --experiment) exited 0 ignoring the file."""
    result = CliRunner().invoke(cli, ["data", "inspect", "synthetic", "--experiments", "v4"])
    assert result.exit_code == 2
    assert result.output == "error: v4: experiments file not found (--experiments FILE); did you mean --experiment v4?\n"
    result = CliRunner().invoke(cli, ["--experiments", "nope.toml", "plugins"])
    assert result.exit_code == 2 and result.output == "error: nope.toml: experiments file not found (--experiments FILE)\n"


def test_a_directory_given_as_the_experiments_file_is_called_a_directory(tmp_path, monkeypatch):
    """`EXITCORE_EXPERIMENTS=/tmp` said '/tmp: experiments file not found' (--experiments DIR is
    refused by its option's own check)."""
    monkeypatch.setenv("EXITCORE_EXPERIMENTS", str(tmp_path))
    result = CliRunner().invoke(cli, ["experiments", "list"])
    assert result.exit_code == 2 and result.output == (
        f"error: {tmp_path} ($EXITCORE_EXPERIMENTS): a directory, not an experiments file (give the path of a "
        ".toml file)\n")


def test_plugins_takes_experiments_after_the_command():
    """docs: the option works before or after any command; `plugins` said "No such option"."""
    from pathlib import Path

    project = SHIPPED_FILE
    result = CliRunner().invoke(cli, ["plugins", "--experiments", str(project)])
    assert result.exit_code == 0 and "builtin" in result.output


def test_report_out_refuses_a_missing_folder_and_an_existing_file(monkeypatch, tmp_path):
    """report --out created missing folders and overwrote files, unlike data synth --out;
    `--out somefile.csv/r.txt` was a raw "[Errno 17] File exists"."""
    import exitcore.evaluation.report as report_module
    import exitcore.evaluation.rundir as rundir

    monkeypatch.setattr(rundir, "find_run_dir", lambda run, runs_dir: tmp_path)
    monkeypatch.setattr(report_module, "render_report", lambda run_dir, fmt, trials_now: f"report {fmt}\n")
    monkeypatch.setattr(report_module, "current_trials", lambda run_dir, runs_dir: None)
    monkeypatch.chdir(tmp_path)

    def report(*args):
        return CliRunner().invoke(cli, ["report", "r1", *args])

    assert report("--out", "r.md").exit_code == 0 and (tmp_path / "r.md").read_text() == "report markdown\n"
    again = report("--out", "r.md")
    assert again.exit_code == 2 and again.output == "error: r.md: already exists (use --force to overwrite)\n"
    assert report("--out", "r.md", "--force", "--format", "text").exit_code == 0
    assert (tmp_path / "r.md").read_text() == "report text\n"
    missing = report("--out", "nodir/r.txt")
    assert missing.exit_code == 2 and missing.output == "error: nodir: no such folder (--out nodir/r.txt); create it first\n"
    assert not (tmp_path / "nodir").exists()
    (tmp_path / "somefile.csv").write_text("x")
    under_file = report("--out", "somefile.csv/r.txt")
    assert under_file.exit_code == 2 and "Errno" not in under_file.output
    assert under_file.output == ("error: somefile.csv: is a file, not a folder (--out somefile.csv/r.txt); "
                                 "name a file in an existing folder\n")
    # a device is not "already there" (and --force would have replaced /dev/null by a file)
    device = report("--out", "/dev/null", "--force")
    assert device.exit_code == 2 and "/dev/null: not a regular file (a FIFO, device or socket)" in device.output
    # a link is written through, so its target's folder must exist (it was created)
    (tmp_path / "dangling.md").symlink_to(tmp_path / "made" / "by" / "link.md")
    dangling = report("--out", "dangling.md")
    assert dangling.exit_code == 2 and "made/by: no such folder" in dangling.output and not (tmp_path / "made").exists()


def test_plural_agrees_with_the_number():
    from exitcore.words import plural

    assert plural(1, "trial") == "1 trial" and plural(2363, "trade") == "2,363 trades" and plural(0, "update") == "0 updates"


def _exitcore(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "exitcore", *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def one_update_run(tmp_path_factory):
    """A smoke run of v4 asked for a single timestep: one update of 16 x 32 steps."""
    runs = tmp_path_factory.mktemp("runs")
    out = _exitcore("run", "v4", "--budget", "smoke", "--timesteps", "1", "--runs-dir", str(runs))
    assert out.returncode == 0, out.stderr
    return runs, out


def test_the_run_summary_counts_agree(one_update_run, tmp_path):
    """A smoke run printed "(N = 1 trials)", "1 updates" and "2363 trades evaluated", and its
    stdout opened with a blank line even with -q."""
    _, out = one_update_run
    # the steps it trains (whole updates), not the 1 asked for (trial W), as the training stage says
    assert "(N = 1 trial)" in out.stdout and "512 training steps, 16 trades at a time (n_envs)" in out.stderr
    assert "training (512 steps (1 asked, rounded up to whole updates) on cpu" in out.stderr
    assert "/ 1 update," in out.stderr
    evaluated = next(line for line in out.stderr.splitlines() if "trades evaluated" in line)
    assert re.search(r"\d,\d{3} trades evaluated", evaluated), evaluated
    quiet = _exitcore("run", "v4", "--budget", "smoke", "-q", "--runs-dir", str(tmp_path / "runs"))
    assert quiet.returncode == 0 and quiet.stdout.startswith("run "), quiet.stdout


def test_too_few_updates_are_warned_about(one_update_run):
    """`--timesteps 500000` on v4 (256 x 2,048 steps per update) trained one update, silently."""
    _, out = one_update_run
    assert ("warning: --timesteps 1 trains 1 PPO update (512 steps): each update takes n_envs x n_steps = 16 x 32 = "
            "512 steps; ask for at least 2,048 timesteps") in out.stderr
    assert "n_steps=" not in out.stderr  # 1 step cannot make 4 updates of 16 envs: no rollout length to suggest


@pytest.mark.parametrize("total, hint", [
    (60_000, "or shorten each update's rollout (--set ppo.n_steps=937 gives 4 updates)"),
    (10_000, None),  # 4 updates would need rollouts of 156 steps: fewer rows than a minibatch of 4,096
])
def test_the_few_updates_hint_is_worked_out_from_the_numbers(capsys, total, hint):
    """The hint said "--set ppo.n_steps=128, or --budget quick" whatever the numbers: 128 was
    longer than the smoke budget's 32 steps, and quick's updates are larger still."""
    from exitcore.config import PPOConfig
    from exitcore.runner import RunRequest, _warn_few_updates

    _warn_few_updates(PPOConfig(n_envs=16, n_steps=2048, batch_size=4096, total_timesteps=total), RunRequest(timesteps=total))
    err = capsys.readouterr().err
    assert err.startswith(f"warning: --timesteps {total:,} trains {2 if total > 32_768 else 1} PPO update")
    assert (hint in err) if hint else "n_steps=" not in err
    # trial AB: the advice only went up (2 M steps for someone who wanted a short run)
    assert err.rstrip().endswith("for a short run, take a budget made for one (--budget smoke: seconds, --budget quick: "
                                 "minutes)")
    _warn_few_updates(PPOConfig(n_envs=16, n_steps=2048, batch_size=4096, total_timesteps=total),
                      RunRequest(timesteps=total, budget="smoke"))
    assert "budget made for one" not in capsys.readouterr().err  # a budget was taken already


def test_a_run_shortened_below_its_entropy_schedule_is_warned_about(capsys):
    """Trial AB: `--timesteps 150000` on v4 (entropy annealed over 7 M steps) left the entropy
    coefficient at its start value, without a word."""
    from exitcore.config import PPOConfig
    from exitcore.runner import RunRequest, _warn_unannealed

    ppo = PPOConfig(n_envs=16, n_steps=32, batch_size=512, total_timesteps=150_016, entropy_coef_start=0.05,
                    entropy_coef_end=0.005, entropy_anneal_steps=7_000_000)
    _warn_unannealed(ppo, RunRequest(timesteps=150_016))
    assert capsys.readouterr().err == (
        "warning: --timesteps 150,016 trains 150,016 steps, fewer than ppo.entropy_anneal_steps 7,000,000: the entropy "
        "coefficient goes from 0.05 only to 0.049, not to entropy_coef_end 0.005; --set ppo.entropy_anneal_steps=150016 "
        "anneals it within the run\n")
    _warn_unannealed(ppo, RunRequest())  # the experiment's own length: its author chose the schedule
    _warn_unannealed(attrs.evolve(ppo, entropy_anneal_steps=100_000), RunRequest(timesteps=150_016))
    assert capsys.readouterr().err == ""


@pytest.fixture
def interrupted_run(one_update_run, tmp_path):
    """The finished run, copied and recorded as interrupted in a runs directory of its own."""
    import shutil

    from exitcore.registry import Registry

    runs, _ = one_update_run
    with Registry(runs) as done:
        (record,) = done.list()
        source = done.path_of(record)
    shutil.copytree(source, tmp_path / "runs" / "r1")
    with Registry(tmp_path / "runs") as reg:
        run_id = reg.create_run(record.experiment, record.config_hash, record.data_hash, seed=record.seed,
                                run_dir=tmp_path / "runs" / "r1", params=record.params)
        reg.mark_running(run_id)
        reg.mark_interrupted(run_id, "test")
    return tmp_path / "runs", run_id


def test_a_resume_that_would_change_the_frozen_config_is_refused_first(interrupted_run):
    """`run --resume RUN --set ppo.n_envs=3` said batch_size must divide ..., after printing
    the header `exitcore run v4: ...` as if starting."""
    runs, run_id = interrupted_run
    out = _exitcore("run", "--resume", run_id, "--set", "ppo.n_envs=3", "--runs-dir", str(runs))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"error: cannot resume run {run_id} with --set ppo.n_envs=3: a resume continues the "
                                 "configuration frozen in the run directory, which cannot be changed on resume"), out.stderr
    assert "exitcore run v4" not in out.stderr and "loading data" not in out.stderr
    out = _exitcore("run", "--resume", run_id, "--set", "ppo.n_epochs=3", "--runs-dir", str(runs))
    assert out.returncode == 2 and "the resolved configuration changed (ppo.n_epochs: 2 -> 3)" in out.stderr
    assert "exitcore run v4" not in out.stderr and "loading data" not in out.stderr
    # not another trial (the config hash is unchanged), but a resume keeps the frozen setup too
    out = _exitcore("run", "--resume", run_id, "--set", "ppo.checkpoint_every=3", "--runs-dir", str(runs))
    assert out.returncode == 2 and "the resolved configuration changed (ppo.checkpoint_every: 10 -> 3)" in out.stderr, out.stderr


def test_a_resume_on_the_device_the_run_trained_on_is_no_change(interrupted_run):
    """A run frozen with device "auto" that trained on the CPU was refused with --device cpu."""
    import json

    runs, run_id = interrupted_run
    run_json = runs / "r1" / "run.json"
    meta = json.loads(run_json.read_text())
    assert meta["device"] == "cpu"
    # a device the run did not train on is a refused change
    run_json.write_text(json.dumps({**meta, "device": "cuda:0"}))
    out = _exitcore("run", "--resume", run_id, "--device", "cpu", "--runs-dir", str(runs))
    assert out.returncode == 2 and "the resolved configuration changed (ppo.device: 'auto' -> 'cpu')" in out.stderr, out.stderr
    # the one it trained on is none
    run_json.write_text(json.dumps(meta))
    out = _exitcore("run", "--resume", run_id, "--device", "cpu", "--runs-dir", str(runs))
    assert out.returncode == 0, out.stderr
    assert f"(resuming {run_id})" in out.stderr


def test_a_resume_with_the_device_it_trained_on_trains_there_even_where_auto_picks_a_gpu(interrupted_run, monkeypatch):
    """Dropping --device cpu as "no change" left the frozen "auto" to choose: on a GPU machine
    the resume went to CUDA and refused the CPU checkpoint. Here "auto" stands for a GPU."""
    import exitcore.device as device_module

    real = device_module.select_device
    asked: list[str] = []

    def select(name="auto"):
        asked.append(name)
        if name == "auto":
            raise AssertionError("the frozen 'auto' chose the device: on a GPU machine that is CUDA")
        return real(name)

    monkeypatch.setattr(device_module, "select_device", select)
    runs, run_id = interrupted_run
    result = CliRunner().invoke(cli, ["run", "--resume", run_id, "--device", "cpu", "--runs-dir", str(runs), "-q"])
    assert result.exit_code == 0, result.output
    assert "auto" not in asked and "cpu" in asked


def test_a_bad_data_path_in_the_experiments_file_names_its_toml_path(tmp_path):
    """It ended with a bare "(path)"."""
    project = SHIPPED_FILE.read_text(encoding="utf-8")
    mine = tmp_path / "mine.toml"
    mine.write_text(project + '\n[experiments.v4_real]\nextends = "v4_no_lookahead"\n[experiments.v4_real.data]\n'
                    'source = "csv"\nparams = { path = "nodata/bars.csv" }\n', encoding="utf-8")
    out = _exitcore("--experiments", str(mine), "data", "inspect", "-e", "v4_real", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: nodata/bars.csv: no such file or folder in ")
    line = mine.read_text().splitlines().index("params = { path = \"nodata/bars.csv\" }") + 1  # where it is written
    assert out.stderr.rstrip().endswith(f"({mine}:{line}: experiments.v4_real.data.params.path)"), out.stderr


def test_show_prints_large_metrics_in_fixed_notation():
    from exitcore.cli.runs import _value

    assert _value(-26210.37) == "-26,210.37" and _value(0.5321) == "0.5321" and _value(float("inf")) == "inf"
    assert _value(float("nan")) == "undefined"  # as report and compare say it, not "nan"


def test_an_experiment_name_in_another_case_is_suggested():
    result = CliRunner().invoke(cli, ["experiments", "show", "V4"])
    assert result.exit_code == 2 and "unknown experiment 'V4'; did you mean v4_no_lookahead?" in result.output


def test_training_progress_in_a_pipe_is_plain_lines(capsys, monkeypatch):
    """Not on a terminal, --progress printed only the bare word `training` and the default
    printed nothing for minutes; now a line per tenth of the run (or 30 s)."""
    import sys

    from exitcore.ppo.logger import TrainLogger

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    log = TrainLogger(None, total_steps=1000, progress=True)
    for update in range(1, 11):
        log.log({"update": update, "global_step": 100 * update, "steps": 100, "ep_return_mean": 0.5})
    log.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and lines[0].startswith("training: update 1, 100 / 1,000 steps (10 %), ")
    assert " steps/s, ETA " in lines[0] and lines[0].endswith("mean episode return 0.5")
    assert TrainLogger(None, total_steps=10, progress=None)._lines is None  # libraries stay quiet


def test_progress_lines_are_rate_limited(monkeypatch):
    import click

    from exitcore.ppo.logger import ProgressLines

    now = [0.0]
    lines = ProgressLines(total_steps=10_000, clock=lambda: now[0])
    printed = []
    monkeypatch.setattr(click, "echo", lambda message, err=False: printed.append(message))
    for _ in range(5):  # 5 % of the run, 10 s apart: one line, at 30 s
        now[0] += 10
        lines.update(1, 100)
    assert len(printed) == 1 and "300 / 10,000 steps" in printed[0] and "ETA 16:10" in printed[0]
    slow = ProgressLines(total_steps=1_000_000, clock=lambda: now[0])
    now[0] += 100
    slow.update(1, 10_000)  # 100 s a hundredth: 9,900 s to go, as hours
    assert printed[-1].endswith("ETA 2:45:00")


def test_audit_announces_its_stages_unless_quiet(one_update_run):
    """`exitcore audit RUN` was silent for ~30 s even on a terminal; it had no -q."""
    runs, _ = one_update_run
    from exitcore.registry import Registry

    with Registry(runs) as reg:
        (record,) = reg.list()
    out = _exitcore("audit", record.id, "--decisions", "2", "--mode", "truncate", "--runs-dir", str(runs))
    assert out.returncode in (0, 3), out.stderr
    assert "[1/3] loading data ..." in out.stderr and "[3/3] auditing 2 decisions (truncate) ..." in out.stderr
    quiet = _exitcore("audit", record.id, "--decisions", "2", "--mode", "truncate", "-q", "--runs-dir", str(runs))
    assert quiet.returncode == out.returncode and quiet.stderr == "" and quiet.stdout == out.stdout


def test_audit_of_a_run_whose_results_are_damaged_is_an_error_not_a_pass(interrupted_run):
    """A truncated results.json made `audit RUN` skip the plausibility rules and say PASS
    (exit 0): a SUSPECT verdict could quietly become a PASS."""
    from exitcore.registry import Registry

    runs, run_id = interrupted_run
    with Registry(runs) as reg:  # the copied run, finished
        reg.mark_running(run_id)
        reg.mark_done(run_id, {})
    results = runs / "r1" / "results.json"
    results.write_text(results.read_text()[:200])
    out = _exitcore("audit", run_id, "--decisions", "2", "--mode", "truncate", "-q", "--runs-dir", str(runs))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith(f"error: {results}: ") and "PASS" not in out.stdout


def test_runs_training_side_by_side_on_too_few_cores_are_warned_about():
    """Two runs at torch's 2 threads on a 2-core machine wait for each other's threads (each
    several times slower); the registry knows the runs training on this host."""
    import socket
    from types import SimpleNamespace

    from exitcore.runner import crowded_cpu_words

    host = socket.gethostname()
    here = SimpleNamespace(id="r1", hostname=f"{host} (pid namespace 4026531836)")
    older = SimpleNamespace(id="r2", hostname=host)  # recorded before the namespace was
    elsewhere = SimpleNamespace(id="r3", hostname=f"{host}-2")
    assert crowded_cpu_words([(here, 2), (older, None), (elsewhere, 8)], "cpu", threads=2, cores=2) == (
        "2 other runs are training on this host (r1, r2): 6 torch threads in all on 2 cores, so the runs wait for "
        "each other's threads and each is several times slower; start them with OMP_NUM_THREADS=1, or one after another")
    assert crowded_cpu_words([(here, 1)], "cpu", threads=1, cores=2) == ""  # 2 threads on 2 cores: fine
    assert crowded_cpu_words([(here, 1)], "cpu", threads=2, cores=2).startswith("1 other run is training")  # 3 on 2
    assert crowded_cpu_words([(here, 1)], "cpu", threads=1, cores=2) == ""
    assert crowded_cpu_words([(elsewhere, 2)], "cpu", threads=2, cores=2) == ""  # another host's
    assert crowded_cpu_words([(here, 2)], "cuda:0", threads=2, cores=2) == ""
    assert crowded_cpu_words([], "cpu", threads=16, cores=2) == ""


def test_a_resumed_run_s_threads_are_its_resume_s(tmp_path):
    """run.json keeps the first start's thread count; a run resumed with another one trains with
    the resume's (the crowded-CPU warning read the first: a false warning, or a missed one)."""
    import json

    from exitcore.runner import _recorded_threads

    (tmp_path / "run.json").write_text(json.dumps({"threads": 2, "resumes": [{"threads": 4}, {"threads": 1}]}))
    assert _recorded_threads(tmp_path) == 1
    (tmp_path / "run.json").write_text(json.dumps({"threads": 2}))
    assert _recorded_threads(tmp_path) == 2
    (tmp_path / "run.json").write_text("{damaged")
    assert _recorded_threads(tmp_path) is None
    assert _recorded_threads(tmp_path / "missing") is None


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_the_machine_lacks_is_refused_before_the_data_loads(tmp_path):
    """`--device cuda` on a CPU-only torch loaded the data first (trial W: a large file is a long
    wait for a refusal); refused before the first stage, nothing recorded."""
    runs = tmp_path / "runs"
    out = _exitcore("run", "v4", "--budget", "smoke", "--device", "cuda", "--runs-dir", str(runs))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: device 'cuda' was requested (--device, ppo.device) but CUDA is not available")
    assert "loading data" not in out.stderr and not runs.exists()


def test_distances_read_as_price_units_name_the_entry_table_and_the_unit_to_set(monkeypatch):
    """Trial AB 2: pip distances read as price units warned at whichever `--set entry.params.*`
    came last (`--set entry.params.target_column: ...`), without the option that fixes it."""
    from exitcore.errors import ExitcoreWarning

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    with pytest.warns(ExitcoreWarning) as caught:
        out = CliRunner().invoke(cli, ["data", "inspect", "-e", "v4", "--set", "entry.name=csv_trades",
                                       "--set", "entry.params.path=data/example_trades.csv",
                                       "--set", "entry.params.stop_column=stop_pips",
                                       "--set", "entry.params.target_column=target_pips"])
    assert out.exit_code == 0, out.output
    said = [str(w.message) for w in caught if "price units" in str(w.message)]
    assert said[0].startswith("--set entry: entry strategy 'csv_trades': 800 of 800 trades have a stop_dist above "
                              "20% of the price (row 0: 21.9 at a close of"), said
    assert len(said) == 2 and all(m.endswith('; if they are pips, set entry.params.distance_unit = "pips"') for m in said)
