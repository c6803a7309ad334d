"""The CLI frame: every command's --help, lazy imports, entry points, user errors."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from exitcore.cli import cli
from exitcore.experiments import SHIPPED_FILE

ROOT = Path(__file__).resolve().parents[1]


def all_command_paths(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, f"command {name!r} listed but not loadable"
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            sub_ctx = click.Context(cmd, info_name=name, parent=ctx)
            yield from all_command_paths(cmd, sub_ctx, (*prefix, name))


def test_every_command_has_help():
    ctx = click.Context(cli, info_name="exitcore")
    paths = list(all_command_paths(cli, ctx))
    assert ("experiments", "show") in paths and ("plugins",) in paths
    runner = CliRunner()
    for path in [(), *paths]:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output and "Show this message and exit." in result.output
        cmd = cli
        for name in path:
            cmd = cmd.get_command(ctx, name)
        assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"


def run_exitcore(*args, env=None, cwd=ROOT):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "exitcore", *args], capture_output=True, text=True, env=full_env, cwd=cwd)


def test_help_does_not_import_torch_or_pandas():
    code = textwrap.dedent("""
        import sys
        from exitcore.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        heavy = sorted(m for m in ("torch", "pandas", "numpy") if m in sys.modules)
        print("HEAVY:", heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "HEAVY: []" in out.stdout, out.stdout + out.stderr
    assert "experiments" in out.stdout


def test_the_exit_skips_the_interpreters_last_garbage_collections():
    """A command's objects are frozen at exit (gc.freeze): the interpreter's final collections
    then skip them, which saved 1.5 s of a 11 s smoke run (docs/benchmarks.md)."""
    def frozen_at_exit(call):
        code = textwrap.dedent(f"""
            import atexit, gc, sys
            from exitcore.cli import main
            atexit.register(lambda: print("FROZEN AT EXIT:", gc.get_freeze_count()))  # runs after main's
            sys.argv = ["exitcore", "--version"]
            {call}
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0 and "exitcore, version" in out.stdout, out.stdout + out.stderr
        return int(out.stdout.split("FROZEN AT EXIT:")[1])

    assert frozen_at_exit("main()") > 1000  # the console script
    # a program calling main([...]) keeps its own exit: its objects in cycles are still finalised
    assert frozen_at_exit('main(["--version"])') == 0


def test_console_scripts_and_module_entry_point():
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("exitcore", "exit"):
        out = subprocess.run([str(scripts / name), "--version"], capture_output=True, text=True)
        assert out.returncode == 0 and "exitcore, version" in out.stdout
    out = run_exitcore("--version")
    assert out.returncode == 0 and "exitcore, version" in out.stdout


def test_user_errors_exit_2_with_one_message_and_no_traceback(tmp_path):
    bad = tmp_path / "experiments.toml"
    bad.write_text("[experiments.x]\nextends = 'y'\n[experiments.y]\nextends = 'x'\n")
    out = run_exitcore("--experiments", str(bad), "experiments", "show", "x")
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "extends cycle: x -> y -> x" in out.stderr
    assert "Traceback" not in out.stderr

    bad.write_text("[defaults\n")
    out = run_exitcore("--experiments", str(bad), "experiments", "list")
    assert out.returncode == 2 and "TOML syntax error" in out.stderr and str(bad) in out.stderr

    out = run_exitcore("--experiments", str(tmp_path / "missing.toml"), "experiments", "list")
    assert out.returncode == 2 and "experiments file not found" in out.stderr


def test_show_and_check_on_the_project_file():
    out = run_exitcore("experiments", "show", "v4", "--set", "ppo.seed=3")
    assert out.returncode == 0, out.stderr
    assert "name = \"v4_no_lookahead\"" in out.stdout and "seed = 3" in out.stdout
    assert "min_exit_bar" in out.stdout
    out = run_exitcore("experiments", "show", "v4", "--set", "ppo.n_envs=-1")
    assert out.returncode == 2 and "--set ppo.n_envs: expected a positive integer, got -1" in out.stderr
    out = run_exitcore("experiments", "show", "v5")
    assert out.returncode == 2 and "unknown experiment 'v5'" in out.stderr
    out = run_exitcore("experiments", "check")
    assert out.returncode == 0, out.stderr
    assert "v1, v2_exit_guards, v3, v4_no_lookahead" in out.stdout
    out = run_exitcore("experiments", "list")
    assert out.returncode == 0 and "v3" in out.stdout and "BROKEN ON PURPOSE" in out.stdout


def test_show_says_the_fractions_are_unused_beside_a_dated_split():
    """`train = 0.6 / test = 0.4` printed beside `train_end` read as if both applied (trial X)."""
    import tomllib

    dated = CliRunner().invoke(cli, ["experiments", "show", "v4", "--set", "split.train_end=2016-06-01"])
    assert dated.exit_code == 0, dated.output
    assert ("# split by date (train_end): the split fractions (train, validation, test) are not used\n"
            in dated.output)
    assert tomllib.loads(dated.output)["experiment"]["split"]["train_end"] == "2016-06-01"  # still TOML
    plain = CliRunner().invoke(cli, ["experiments", "show", "v4"])
    assert "split by date" not in plain.output


def test_plugins_command_shows_builtins_and_a_broken_plugin_is_named(tmp_path):
    out = run_exitcore("plugins")
    assert out.returncode == 0
    assert "builtin_policies  [exitcore 0.1.0]" in out.stdout and "mlp" in out.stdout
    assert "min_exit_bar" in out.stdout and "[exitcore-masks 0.1.0]" in out.stdout
    # a distribution whose plugin raises while registering
    (tmp_path / "kaputt.py").write_text(
        "from exitcore import hookimpl\n@hookimpl\ndef register_features(register):\n    raise ValueError('boom')\n"
    )
    info = tmp_path / "kaputt-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kaputt\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\nkaputt = kaputt\n")
    out = run_exitcore("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 2
    assert "plugin 'kaputt' (kaputt 2.0) raised in register_features: ValueError: boom" in out.stderr
    assert "Traceback" not in out.stderr


def test_plugins_warns_on_stderr_about_a_plugin_that_implements_no_hook(tmp_path):
    """A same-named folder without __init__.py shadowed a plugin's package: `exitcore plugins`
    listed it silently, and its components were "unknown" with no hint."""
    (tmp_path / "shadowpkg").mkdir()
    info = tmp_path / "shadow_plug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow-plug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\nshadow = shadowpkg\n")
    out = run_exitcore("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert ("warning: plugin 'shadow' (shadow-plug 1.0) implements no exitcore hooks: entry point 'shadowpkg' "
            f"imported as a namespace package from {tmp_path / 'shadowpkg'};") in out.stderr
    assert "shadow  [shadow-plug 1.0]\n  implements no exitcore hooks (see the warning)\n" in out.stdout


def test_a_duplicate_component_stops_the_commands_that_load_plugins_but_plugins_lists_it(tmp_path):
    (tmp_path / "dupe_mask.py").write_text(textwrap.dedent('''
        from exitcore import hookimpl

        @hookimpl
        def register_action_masks(register):
            register("min_exit_bar", lambda p, ctx: None, description="a second min_exit_bar")
    '''))
    info = tmp_path / "dupe_mask-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dupe-mask\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\ndupe = dupe_mask\n")
    env = {"PYTHONPATH": str(tmp_path)}
    out = run_exitcore("plugins", env=env)
    assert out.returncode == 2 and "dupe  [dupe-mask 1.0]" in out.stdout and "min_exit_bar" in out.stdout
    assert "params: regret_coef=0.8" in out.stdout  # parameters and defaults are listed
    assert "problem: mask 'min_exit_bar' is registered twice: by " in out.stderr
    assert "dupe (dupe-mask 1.0)" in out.stderr and "masks (exitcore-masks 0.1.0)" in out.stderr
    # it says which commands stop: it said "every other command", and experiments list ran on (trial U)
    assert "the commands that build experiments (run, audit, experiments show and check, data inspect) refuse" in out.stderr
    out = run_exitcore("experiments", "check", env=env)  # any command that needs the plugins
    assert out.returncode == 2 and "registered twice" in out.stderr and "Traceback" not in out.stderr
    listed = run_exitcore("experiments", "list", env=env)
    assert listed.returncode == 0 and "v4_no_lookahead" in listed.stdout, listed.stderr


def test_plugin_cli_commands_are_added(tmp_path):
    (tmp_path / "hello_cmd.py").write_text(textwrap.dedent("""
        import click
        from exitcore import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                '''Say hello from a plugin.'''
                click.echo("hello from a plugin")
    """))
    info = tmp_path / "hello_cmd-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-cmd\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\nhello = hello_cmd\n")
    out = run_exitcore("hello", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0 and "hello from a plugin" in out.stdout
    out = run_exitcore("--help", env={"PYTHONPATH": str(tmp_path)})
    assert "Say hello from a plugin." in out.stdout and "warning" not in out.stderr

    # a second plugin that redefines `run`: refused, with a warning; the first one's command stays
    (tmp_path / "clash_cmd.py").write_text(textwrap.dedent('''
        import click
        from exitcore import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def extra():
                """Never added."""

            @cli.command()
            def run():
                """A run that shadows the built-in."""
    '''))
    info = tmp_path / "clash_cmd-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clash-cmd\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\nclash = clash_cmd\n")
    out = run_exitcore("--help", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0 and "Say hello from a plugin." in out.stdout and "extra" not in out.stdout
    assert "warning: plugin 'clash' (clash-cmd 1.0) redefines the command(s) run; its commands are not added" in out.stderr
    assert "Train experiment NAME" in run_exitcore("run", "--help", env={"PYTHONPATH": str(tmp_path)}).stdout
    assert run_exitcore("hello", env={"PYTHONPATH": str(tmp_path)}).returncode == 0


def test_every_hookspec_is_documented():
    import inspect

    from exitcore import hookspecs

    doc = (ROOT / "docs" / "plugins.md").read_text()
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "exitcore_spec")]
    assert len(hooks) >= 12
    missing = [h for h in hooks if f"### {h}" not in doc]
    assert not missing, f"hookspecs missing from docs/plugins.md: {missing}"
    undocumented = [h for h in hooks if len((getattr(hookspecs, h).__doc__ or "").split()) < 20]
    assert not undocumented, f"hookspecs with too little docstring: {undocumented}"


@pytest.mark.parametrize("args, progress", [(["-q"], False), (["-q", "--progress"], True), ([], True), (["--no-progress"], False)])
def test_quiet_run_turns_the_progress_bar_off(monkeypatch, args, progress):
    """-q means no progress even on a terminal; without it progress is on (a bar on a terminal, lines elsewhere)."""
    import exitcore.runner as runner

    seen = {}

    def fake_execute(request, file, host, quiet=False, registered=None):
        seen.update(progress=request.progress, quiet=quiet)
        raise runner.RunInterrupted("r", Path("."))

    monkeypatch.setattr(runner, "execute", fake_execute)
    result = CliRunner().invoke(cli, ["run", "v4", *args])
    assert result.exit_code == 130, result.output
    assert seen == {"progress": progress, "quiet": "-q" in args}


def test_an_interrupted_run_says_whether_it_has_a_checkpoint(monkeypatch, tmp_path):
    import exitcore.runner as runner

    run_dir = tmp_path / "20261127-101500-v4_no_lookahead-3f2a"
    run_dir.mkdir()

    def interrupted(request, file, host, quiet=False, registered=None):
        raise runner.RunInterrupted(run_dir.name, run_dir)

    monkeypatch.setattr(runner, "execute", interrupted)
    early = CliRunner().invoke(cli, ["run", "v4"])
    assert early.exit_code == 130 and "stopped before its first checkpoint, so a resume trains it from step 0" in early.output
    (run_dir / "checkpoint.pt").write_bytes(b"saved")
    later = CliRunner().invoke(cli, ["run", "v4"])
    assert later.exit_code == 130 and f"its checkpoint is in {run_dir}" in later.output
    assert f"continue it with: exitcore run --resume {run_dir.name}" in later.output


def test_ctrl_c_before_a_run_is_recorded_exits_130(monkeypatch):
    """Ctrl-C while data loads (before the runner records the run): the documented 130 and one
    line, not click's "Aborted!" and status 1."""
    import exitcore.runner as runner

    def interrupted_while_loading(request, file, host, quiet=False, registered=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "execute", interrupted_while_loading)
    result = CliRunner().invoke(cli, ["run", "v4"])
    assert result.exit_code == 130 and result.output.strip() == "interrupted"


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path):
    """`exitcore ... | head -1`: no 'Broken pipe' error, exit 0, as other Unix tools. A plugin
    command writes far more than a pipe buffers, so the write really fails."""
    (tmp_path / "flood_cmd.py").write_text(textwrap.dedent("""
        import click
        from exitcore import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def flood():
                for i in range(200_000):
                    click.echo(f"line {i}")
    """))
    info = tmp_path / "flood_cmd-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flood-cmd\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\nflood = flood_cmd\n")
    proc = subprocess.Popen([sys.executable, "-m", "exitcore", "flood"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader leaves while exitcore still writes
    _, err = proc.communicate(timeout=60)
    assert first == b"line 0\n" and proc.returncode == 0 and b"Broken pipe" not in err and b"Traceback" not in err, err


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_top_level_help_to_a_reader_that_has_gone_exits_0(args):
    """`exitcore --help | true` exited 1: click prints the group's --help and --version while
    parsing, before our handling of a closed pipe (subcommands' help already exited 0)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before exitcore writes
    proc = subprocess.run([sys.executable, "-m", "exitcore", *args], stdout=write_end, stderr=subprocess.PIPE,
                          cwd=ROOT, timeout=60)
    os.close(write_end)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_standard_output_is_named():
    """`exitcore experiments list > file` on a full disk said only '[Errno 28] No space left on
    device', naming nothing: the error of a write to stdout carries no file name."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "exitcore", "experiments", "list"], stdout=full,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "error: cannot write to standard output: [Errno 28] No space left on device"


def test_a_full_stream_is_named_by_its_descriptor():
    """`exitcore run > /dev/full` writes its summary through its own wrapper of stdout (not
    sys.stdout): the stream is told by its file descriptor."""
    import errno
    import io

    import click

    from exitcore.cli import _output_stream_of

    class Full(io.TextIOBase):
        def __init__(self, fd):
            self.fd = fd

        def fileno(self):
            return self.fd

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    for fd, name in [(1, "standard output"), (2, "standard error"), (7, None)]:
        with pytest.raises(OSError) as info:
            click.echo("summary", file=Full(fd))
        assert _output_stream_of(info.value) == name
    assert _output_stream_of(OSError(errno.ENOSPC, "No space left on device", "ledger.csv")) is None


def test_guarded_streams_discard_output_once_the_reader_has_gone(monkeypatch):
    """`exitcore run`'s streams (exitcore/cli/streams.py): after the reader of a pipe leaves, a
    write points the descriptor at /dev/null instead of raising BrokenPipeError."""
    import io

    from exitcore.cli.streams import output_discarded_when_closed

    read_end, write_end = os.pipe()
    fd = os.dup(write_end)  # stands in for stdout's descriptor
    os.close(write_end)
    stream = io.TextIOWrapper(io.FileIO(fd, "w", closefd=True), encoding="utf-8", line_buffering=True)
    monkeypatch.setattr(sys, "stdout", stream)
    with output_discarded_when_closed():
        print("seen")
        with os.fdopen(read_end, "rb") as reader:
            assert reader.read(5) == b"seen\n"
        for i in range(20_000):  # far more than a pipe holds: the write really fails
            print(f"line {i}")
        assert sys.stdout is not stream and sys.stdout.buffer.reader_gone
        assert os.path.samestat(os.fstat(fd), os.stat(os.devnull))
    assert sys.stdout is stream
    stream.close()


def test_exitcore_warnings_are_one_warning_line_and_others_keep_their_format():
    import subprocess
    import sys

    code = (
        "import warnings\n"
        "from exitcore.cli import show_exitcore_warnings_as_lines\n"
        "from exitcore.errors import ExitcoreWarning\n"
        "show_exitcore_warnings_as_lines()\n"
        "warnings.warn('CUDA graph of the update could not be captured', ExitcoreWarning)\n"
        "warnings.warn('something else', UserWarning)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = out.stderr.splitlines()
    assert lines[0] == "warning: CUDA graph of the update could not be captured"
    assert "UserWarning: something else" in out.stderr and "<string>" in out.stderr


@pytest.mark.parametrize("value, ok", [("cuda:1", True), ("cuda", True), ("auto", True), ("gpu", False), ("cuda:x", False)])
def test_device_names_one_gpu_by_index(value, ok):
    """ppo.device and `run --device` take cuda:N (as `audit --device` does); anything else is
    refused at the option or the key that was given."""
    from exitcore.config import PPOConfig

    from exitcore.device import select_device
    from exitcore.errors import ExitcoreError

    if ok:
        assert PPOConfig(device=value).device == value
    else:
        with pytest.raises(ExitcoreError, match=f"unknown device '{value}': expected auto, cpu, cuda or cuda:N"):
            select_device(value)
        with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
            PPOConfig(device=value)
        result = CliRunner().invoke(cli, ["run", "v4", "--device", value])
        assert result.exit_code == 2 and "Invalid value for '--device': expected auto, cpu, cuda or cuda:N" in result.output


def test_experiments_check_build_runs_the_plugins(tmp_path):
    """`experiments check` resolves names and values only; `--build` also builds the components
    and steps every trade, so a guard that fails when built (or a mask that fails when run) is
    reported, naming the experiment and the plugin."""
    (tmp_path / "brittle.py").write_text(textwrap.dedent("""
        import torch
        from exitcore import hookimpl

        def failing_build(params, ctx):
            raise ValueError("needs a calendar file")

        def bad_shape_mask(params, ctx):
            return lambda state: torch.ones(state.n, 3, dtype=torch.bool, device=state.trade.device)

        @hookimpl
        def register_exit_guards(register):
            register("needs_calendar", failing_build)

        @hookimpl
        def register_action_masks(register):
            register("three_columns", bad_shape_mask)

        def strategy_needing_volume(params, ctx):
            def strategy(bars):
                raise LookupError("these bars carry no volume")
            return strategy

        def strategy_never_signalling(params, ctx):
            import pandas as pd
            from exitcore.data.bars import Trades
            columns = ["signal_bar", "direction", "stop_dist", "target_dist"]
            return lambda bars: Trades(pd.DataFrame({c: pd.Series([], dtype="int64" if c == "signal_bar" else "float64")
                                                     for c in columns}))

        @hookimpl
        def register_entry_strategies(register):
            register("volume_breakout", strategy_needing_volume)
            register("quiet", strategy_never_signalling)

        class Overflowing(torch.nn.Module):  # right shapes on zeros; inf on real observations
            def __init__(self, obs_dim, n_actions):
                super().__init__()
                self.linear = torch.nn.Linear(obs_dim, n_actions + 1)
            def forward(self, obs):
                out = self.linear(obs) + torch.log((obs.abs().sum(dim=1, keepdim=True) == 0).float())
                return out[:, :-1], out[:, -1]

        @hookimpl
        def register_policies(register):
            register("overflowing", lambda params, ppo, obs_dim, n_actions: Overflowing(obs_dim, n_actions))
    """))
    info = tmp_path / "brittle-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brittle\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[exitcore]\nbrittle = brittle\n")
    experiments = tmp_path / "experiments.toml"
    experiments.write_text(SHIPPED_FILE.read_text() + textwrap.dedent("""
        [experiments.v5_calendar]
        extends = "v4_no_lookahead"
        guards = [{ name = "needs_calendar" }]

        [experiments.v5_three]
        extends = "v4_no_lookahead"
        masks = [{ name = "three_columns" }]

        [experiments.v5_volume]
        extends = "v4_no_lookahead"
        entry = { name = "volume_breakout" }

        [experiments.v5_quiet]
        extends = "v4_no_lookahead"
        entry = { name = "quiet" }

        [experiments.v5_overflowing]
        extends = "v4_no_lookahead"
        ppo = { policy = "overflowing" }
    """))
    # the plugin folder first, then whatever PYTHONPATH already holds (a checkout tested in place)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p)}

    def check(*args):
        return subprocess.run([sys.executable, "-m", "exitcore", "--experiments", str(experiments), "experiments", "check",
                               *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)

    plain = check()
    assert plain.returncode == 0 and "9 experiments OK" in plain.stdout, plain.stderr
    built = check("--build")
    assert built.returncode == 2, built.stderr
    assert "experiments.v5_calendar.guards[0]: guard 'needs_calendar' from brittle (brittle 1.0) failed to build: ValueError: needs a calendar file" in built.stderr
    assert "experiments.v5_three:" in built.stderr and "three_columns" in built.stderr
    assert "experiments.v5_volume.entry: entry strategy 'volume_breakout' from brittle (brittle 1.0) raised LookupError: these bars carry no volume" in built.stderr
    assert ("experiments.v5_quiet.entry: entry strategy 'quiet' from brittle (brittle 1.0): gives no trade on the "
            "experiment's data") in built.stderr  # was "its entry strategy gives no trade", naming neither
    # the policy is built and fed the first observations too (it used to fail only in `run`, a recorded trial)
    assert ("experiments.v5_overflowing.ppo.policy: policy 'overflowing' from brittle (brittle 1.0) returned NaN or "
            "inf for the first observations") in built.stderr
    assert "experiments.v4_no_lookahead:" not in built.stderr and "Traceback" not in built.stderr


@pytest.mark.parametrize("terminal", [True, False])
def test_compare_warns_once_on_a_terminal(monkeypatch, tmp_path, terminal):
    """The table opens with its warnings (`!! ...`); they are repeated on stderr only when the
    table goes to a file or a pipe, so a terminal shows each once."""
    import exitcore.cli.compare as compare_cli
    from exitcore import compare as cmp
    from exitcore.registry import Registry

    Registry(tmp_path / "runs").close()
    monkeypatch.setattr(cmp, "collect", lambda refs, registry, file: list(refs))
    monkeypatch.setattr(cmp, "warnings", lambda views: ["SAME RUN: a is listed more than once"])
    monkeypatch.setattr(cmp, "as_table", lambda views: "!! SAME RUN: a is listed more than once\n\nmetric  a  a")
    monkeypatch.setattr(compare_cli, "_stdout_is_terminal", lambda: terminal)
    result = CliRunner().invoke(cli, ["compare", "a", "a", "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert result.output.count("SAME RUN") == (1 if terminal else 2)
    assert ("warning: SAME RUN" in result.stderr) is not terminal


@pytest.mark.parametrize("where", ["before", "after"])
def test_experiments_file_option_before_or_after_the_subcommand(tmp_path, where):
    """`exitcore run v5 --experiments mine.toml` is what users type; it means what
    `exitcore --experiments mine.toml run v5` means (it was "No such option")."""
    project = SHIPPED_FILE.read_text(encoding="utf-8")
    mine = tmp_path / "mine.toml"
    mine.write_text(project + '\n[experiments.only_mine]\nextends = "v4_no_lookahead"\n', encoding="utf-8")
    option = ["--experiments", str(mine)]
    for command in (["experiments", "list"], ["experiments", "show", "only_mine"]):
        args = [*option, *command] if where == "before" else [*command, *option]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and "only_mine" in result.output, result.output
    assert CliRunner().invoke(cli, ["experiments", "show", "only_mine"]).exit_code == 2  # not in the default file


def test_a_defaults_key_that_broke_every_experiment_is_said_once():
    """Review AH: `check --build` printed a `[defaults]` key's error once per experiment (four
    identical lines but for the name), where the docs said once."""
    from exitcore.cli.experiments import _grouped

    empty = "the test split is empty: 2030-01-01 is after the last bar"
    failed = [("defaults.split.train_end", f"{empty} (experiment {n})") for n in ("v1", "v2", "v3")]
    failed.insert(1, ("experiments.v1.features[1]", "feature 'f' from p: cannot build"))
    failed.append(("defaults.data.timeframe", "cannot resample (experiment v3)"))
    assert _grouped(failed) == [("defaults.split.train_end", f"{empty} (experiments v1, v2, v3)"),
                                ("experiments.v1.features[1]", "feature 'f' from p: cannot build"),
                                ("defaults.data.timeframe", "cannot resample (experiment v3)")]


def test_a_build_failure_is_located_once_at_the_component_path():
    """An ExitcoreError raised in a plugin's build read 'experiments.x: experiments.x.features[1]
    (feature ...): msg', the path twice."""
    from exitcore.cli.experiments import _located

    message = "experiments.x.features[1] (feature 'f' from p (dist 0.1.0)): f: cannot build"
    assert _located("x", message) == ("experiments.x.features[1]", "feature 'f' from p (dist 0.1.0): f: cannot build")
    plain = "experiments.x.features[1]: feature 'f' from p failed to build: ValueError: oops"
    assert _located("x", plain) == ("experiments.x.features[1]", "feature 'f' from p failed to build: ValueError: oops")
    assert _located("x", "the data is empty") == ("experiments.x", "the data is empty")


def test_compare_shows_the_scratch_rate_beside_the_win_rate(tmp_path):
    """Trades closed at exactly 0 (breakeven stops) are neither wins nor losses: compare's
    table and CSV give their share on the row after the win rate."""
    from exitcore import compare as cmp

    views = [cmp.RunView(ref, ref, tmp_path, "v4_no_lookahead", "d", (), {}, {"win_rate": 0.316, "scratch_rate": rate})
             for ref, rate in (("a", 0.48), ("b", 0.0))]
    lines = cmp.as_table(views).splitlines()
    row = lines.index(next(line for line in lines if line.startswith("win rate")))
    assert lines[row + 1].split() == ["scratch", "rate", "(closed", "at", "PnL", "0)", "48.0%", "0.0%"]
    assert "scratch_rate,0.48,0.0" in cmp.as_csv(views).splitlines()


def test_compare_counts_the_ambiguous_exit_bars(tmp_path):
    """design.md reports the bars that touch both stop and target (the stop is taken): compare
    showed no such row (trial W)."""
    from exitcore import compare as cmp

    views = [cmp.RunView(ref, ref, tmp_path, "v4_no_lookahead", "d", (), {}, {"ambiguous": n, "quick_exit_rate": 0.1})
             for ref, n in (("a", 8), ("b", 0))]
    lines = cmp.as_table(views).splitlines()
    assert next(line for line in lines if line.startswith("ambiguous")).split()[-2:] == ["8", "0"]
    assert "ambiguous,8,0" in cmp.as_csv(views).splitlines()


def test_compare_sees_one_split_date_typed_two_ways_as_no_difference(tmp_path):
    """Trial X: the same split date typed ``2019/07/01`` and ``2019-07-01`` was listed as a
    configuration difference; another date still is, shown as each run typed it."""
    from exitcore import compare as cmp

    def view(ref, date, seed=1):
        config = {"split": {"train": 0.6, "train_end": date}, "ppo": {"seed": seed}}
        return cmp.RunView(ref, ref, tmp_path, "v4_no_lookahead", "d", (), config, {})

    assert cmp.config_differences([view("a", "2019/07/01"), view("b", "2019-07-01T00:00")]) == []
    assert cmp.as_table([view("a", "2019/07/01"), view("b", "2019-07-01")]).endswith("configuration: identical")
    assert cmp.config_differences([view("a", "2019/07/01"), view("b", "2019-07-02", seed=2)]) == [
        ("ppo.seed", [1, 2]), ("split.train_end", ["2019/07/01", "2019-07-02"])]


def test_compare_writes_an_undefined_interval_and_dsr_as_undefined(tmp_path):
    """Too few active days leave the Sharpe interval and the DSR NaN: the table says
    "undefined" (not "[nan, nan]"), the CSV keeps the NaN."""
    from exitcore import compare as cmp

    nan = float("nan")
    metrics = [{"sharpe_interval": [nan, nan], "sharpe_interval_confidence": 0.95, "dsr_recorded": nan, "dsr_trials": 4},
               {"sharpe_interval": [-0.5, 1.25], "sharpe_interval_confidence": 0.95, "dsr_recorded": 0.31, "dsr_trials": 4}]
    views = [cmp.RunView(ref, ref, tmp_path, "v4_no_lookahead", "d", (), {}, m) for ref, m in zip("ab", metrics)]
    lines = cmp.as_table(views).splitlines()
    interval = next(line for line in lines if line.startswith("Sharpe interval"))
    dsr = next(line for line in lines if line.startswith("deflated Sharpe"))
    assert "undefined 95%" in interval and interval.endswith("[-0.50, 1.25] 95%")
    assert "undefined (N = 4)" in dsr and dsr.endswith("0.310 (N = 4)")
    assert "nan" not in interval + dsr


def test_compare_csv_json_cells_are_strict_json(tmp_path):
    """A metric object holding NaN (shares of no decisions) and an infinite
    parameter are JSON cells: quoted "NaN"/"Infinity", which strict parsers read, not bare tokens."""
    import csv
    import io
    import json

    from exitcore import compare as cmp

    def strict(text):
        return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))

    views = [cmp.RunView(ref, ref, tmp_path, "v4_no_lookahead", "d", (), {"costs": {"max_cost": cost}},
                         {"action_distribution": {"EXIT": 0.1, "TRAIL_BE": float("nan")}})
             for ref, cost in (("a", float("inf")), ("b", 1.0))]
    rows = {r[0]: r[1:] for r in csv.reader(io.StringIO(cmp.as_csv(views)))}
    assert strict(rows["action_distribution"][0]) == {"EXIT": 0.1, "TRAIL_BE": "NaN"}
    assert [strict(c) for c in rows["config.costs.max_cost"]] == ["Infinity", 1.0]


def test_compare_names_each_runs_account_currency(tmp_path):
    from exitcore import compare as cmp

    views = [cmp.RunView(ref, ref, tmp_path, "v4_no_lookahead", "d", (), config, {"total_pnl_ccy": -24291.14})
             for ref, config in (("a", {"costs": {"account_currency": "EUR"}}), ("b", {}))]
    row = next(line for line in cmp.as_table(views).splitlines() if line.startswith("total PnL"))
    assert row.startswith("total PnL (account currency)  ") and "  -24,291 EUR  " in row
    assert row.endswith("  -24,291 (account ccy)")  # no configuration to name it


def test_compare_opens_with_a_failed_audit(tmp_path):
    """FAIL was only the "look-ahead audit" row, fifth from the bottom: compare now opens with
    it, as show and report do (and --json lists it among the warnings)."""
    from exitcore import compare as cmp

    def view(ref, experiment, verdict, sources=("lookahead_audit",)):
        return cmp.RunView(ref, ref, tmp_path, experiment, "d", (), {}, {"audit_verdict": verdict}, None, sources)

    views = [view("r3", "v3", "FAIL"), view("r4", "v4_no_lookahead", "PASS"), view("r3", "v3", "FAIL")]
    notes = cmp.warnings(views)
    assert notes.count("AUDIT FAIL: r3 (v3): look-ahead audit FAIL (a leak was found); do not trust its numbers") == 1
    assert not any("r4" in n and n.startswith("AUDIT") for n in notes)
    assert cmp.as_table(views[:2]).startswith("!! AUDIT FAIL: r3 (v3): ")
    unstable = cmp.RunView("u", "u", tmp_path, "mine", "d", (), {}, {"audit_verdict": "FAIL"}, None, ("lookahead_audit",),
                           "a component is not reproducible, so it could not be tested")
    assert cmp.warnings([unstable]) == ["AUDIT FAIL: u (mine): look-ahead audit FAIL (a component is not reproducible, "
                                        "so it could not be tested); do not trust its numbers"]
    plugin = cmp.warnings([view("p", "mine", "SUSPECT", ("exit_stats",))])
    assert plugin == ["AUDIT SUSPECT: p (mine): audit verdict SUSPECT from evaluator 'exit_stats'; do not trust its numbers"]


def test_an_error_whose_reader_has_left_still_exits_with_its_status(tmp_path):
    """Trial AB 12: `exitcore compare RUN 2>&1 | head -1` exited 1 (the machine's trouble) for a
    bad argument, because printing the error into the closed pipe failed."""
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "exitcore", "compare", "no-such-run", "nor-this", "--runs-dir",
                             str(runs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    proc.stderr.close()  # the reader leaves before the error is printed
    assert proc.wait(timeout=120) == 2
