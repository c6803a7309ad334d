"""The ``exitcore`` command line (also installed as ``exit`` and ``python -m exitcore``).

One click group; each subcommand lives in its own module and is imported only when it is run
(or when ``--help`` lists it), so ``exitcore --help`` never imports torch. Plugins add
subcommands through the ``register_commands`` hook. User errors (:class:`ExitcoreError`) are
printed as one ``error:`` message without a traceback and exit with the error's ``exit_code``
(2, bad input, unless the error says otherwise: a failed run or a run taken over exits 1).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import os
import sys
from typing import Any

import click

from exitcore import __version__
from exitcore.errors import MACHINE_ERRNOS, ConfigError, ExitcoreError

#: built-in subcommands: name -> "module:attribute", imported on first use
LAZY_COMMANDS: dict[str, str] = {
    "audit": "exitcore.cli.audit:audit",
    "compare": "exitcore.cli.compare:compare",
    "data": "exitcore.cli.data:data",
    "experiments": "exitcore.cli.experiments:experiments",
    "plugins": "exitcore.cli.plugins:plugins",
    "report": "exitcore.cli.report:report",
    "run": "exitcore.cli.run:run",
    "runs": "exitcore.cli.runs:runs",
    "show": "exitcore.cli.runs:show",
}


class Session:
    """Per-invocation state shared by subcommands (``ctx.obj``): options and the plugin host."""

    def __init__(self, experiments_path: str | None = None):
        self.experiments_path = experiments_path
        self._host: Any = None

    def host(self) -> Any:
        """The plugin host (created on first use; entry points are loaded then)."""
        if self._host is None:
            from exitcore.plugins import PluginHost

            self._host = PluginHost.create()
        return self._host

    def experiments_file(self) -> Any:
        """The experiments (``--experiments``, ``$EXITCORE_EXPERIMENTS`` or ./experiments.toml),
        layered over exitcore's shipped ones (:func:`exitcore.experiments.load_experiments`)."""
        from exitcore.experiments import load_experiments

        return load_experiments(self.experiments_path)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on demand, plus plugin commands."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})
        self._plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from exitcore.plugins import PluginHost

        # A stand-in group catches what plugins add so a name clash with a built-in
        # (lazy) command is reported instead of silently shadowing it.
        staging = click.Group()
        staging.commands = dict.fromkeys(self.lazy_subcommands, None)  # type: ignore[arg-type]
        staging.commands.update(self.commands)
        try:
            problems = PluginHost.create().add_commands(staging)
        except ExitcoreError as exc:
            click.echo(f"warning: plugin commands unavailable: {exc}", err=True)
            return
        for problem in problems:
            click.echo(f"warning: {problem}", err=True)
        for name, cmd in staging.commands.items():
            if cmd is not None and name not in self.commands:
                self.add_command(cmd, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_subcommands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            module_name, attr = self.lazy_subcommands[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        if cmd_name not in self.commands:
            self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except BrokenPipeError:  # `exitcore --help | true`: --help and --version print while parsing
            if not _stdout_closed():
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExitcoreError as exc:
            message = str(exc)
            if isinstance(exc, ConfigError):  # each problem an error of its own
                message = "\nerror: ".join(exc.lines())
            # stderr may be a pipe whose reader left (`2>&1 | head -1`): the status still says
            # what went wrong (trial AB: a usage error exited 1, as if the machine had failed)
            with contextlib.suppress(OSError):
                click.echo(f"error: {message}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            # Ctrl-C outside a recorded run's training or evaluation (those stop with their own
            # message): the documented status 130, not click's "Aborted!" and 1
            click.echo("\ninterrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError as exc:
            if not _stdout_closed():
                click.echo(f"error: {exc}", err=True)
                ctx.exit(2)
            # `exitcore plugins | head`: the reader left; stop quietly, as other Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except OSError as exc:
            # A file that cannot be written or read (read-only, full disk, permissions): one line,
            # not a traceback. Writers go through exitcore.atomic, so nothing is left half-written.
            stream = _output_stream_of(exc)
            where = f"cannot write to {stream}: " if stream else ""
            with contextlib.suppress(OSError):  # stderr may be the stream that failed
                click.echo(f"error: {where}{exc}", err=True)
            ctx.exit(1 if exc.errno in MACHINE_ERRNOS else 2)  # a full disk is not bad input


def _output_stream_of(exc: OSError) -> str | None:
    """``"standard output"`` or ``"standard error"`` when *exc* was raised by ``click.echo``
    writing to one of them (``exitcore runs > /dev/full``): such an error names no file, so the
    message would not say what was full."""
    if exc.filename is not None:
        return None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "echo" and frame.f_globals.get("__name__") == "click.utils":
            try:  # by descriptor: `run` writes through its own wrapper of the stream
                fd = frame.f_locals["file"].fileno()
            except (AttributeError, KeyError, OSError, ValueError):
                return None
            return {1: "standard output", 2: "standard error"}.get(fd)
        tb = tb.tb_next
    return None


def _stdout_closed() -> bool:
    """Whether our own stdout is the broken pipe (not a socket or a child's pipe): the write
    end of a pipe whose reader has gone polls as an error."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() (Windows) or no real stdout
        return False


@click.group(
    cls=LazyGroup,
    lazy_subcommands=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="exitcore")
@click.option(
    "--experiments",
    "experiments_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Experiments file (default: $EXITCORE_EXPERIMENTS, else ./experiments.toml), layered over "
    "exitcore's shipped experiments: v1-v4 and the budgets stay available.",
)
@click.pass_context
def cli(ctx: click.Context, experiments_path: str | None) -> None:
    """exitcore: reinforcement-learning trade-exit optimisation.

    A classical strategy enters FX trades; a masked PPO agent learns when to hold, exit,
    tighten the stop, trail it to breakeven or take a partial exit. Experiments are plugin
    sets composed in experiments.toml.

    Installed as `exitcore`, `exit` and `python -m exitcore`; prefer `exitcore`, because
    `exit` is a shell builtin in bash, zsh and fish and typing `exit ...` closes the shell.
    """
    if experiments_path is not None:
        from exitcore.cli.options import check_experiments_file

        check_experiments_file(experiments_path)
    ctx.obj = Session(experiments_path)


def show_exitcore_warnings_as_lines() -> None:
    """Print exitcore's own warnings (:class:`~exitcore.errors.ExitcoreWarning`) as one
    ``warning: ...`` line on stderr, like the CLI's other warnings, instead of Python's
    ``file:line: category: message`` and a source line; other warnings keep their format."""
    import warnings

    from exitcore.errors import ExitcoreWarning

    default = warnings.showwarning
    if getattr(default, "_exitcore", False):
        return

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if issubclass(category, ExitcoreWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    show._exitcore = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def sigterm_as_ctrl_c() -> None:
    """SIGTERM (``kill``, ``timeout``, a job scheduler) and SIGHUP (the terminal or SSH session
    closed) stop every command as Ctrl-C does: a file being written is removed rather than left
    as a hidden temporary, and the status is 130. A signal already ignored (``nohup`` ignores
    SIGHUP) stays ignored; a recorded run has its own handling."""
    import signal

    from exitcore.stop_signals import STOP_SIGNALS

    with contextlib.suppress(ValueError, OSError):  # not the main thread: leave signals alone
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _interrupt)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point for ``exitcore`` and ``exit``."""
    show_exitcore_warnings_as_lines()
    sigterm_as_ctrl_c()
    if argv is None:
        # The console script (or `python -m exitcore`), whose process ends with the command: at
        # exit the interpreter's last garbage collections walk every object torch (and
        # torch._dynamo, which torch.optim imports) created, 0.6-1.4 s of each command for
        # nothing. Frozen objects are skipped; exitcore's files, run directories and registry are
        # closed by then (atexit runs this last: registered first). Not for a program calling
        # main([...]): its own objects in reference cycles would not be finalised at its exit.
        atexit.unregister(gc.freeze)
        atexit.register(gc.freeze)
    cli.main(args=argv, prog_name="exitcore")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
