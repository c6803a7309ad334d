"""Errors a user can cause, and how they are reported.

Anything derived from :class:`ExitcoreError` is a user error: the CLI prints its message on one
line (no traceback) and exits with status 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import sysconfig
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: OS errors that are the machine's state, not the user's input or the experiment's doing: a
#: full disk or quota, a file-size limit, an I/O error, a read-only file system, a closed output
#: pipe, no memory (a run stopped by one stays resumable; the CLI exits 1 for one, not 2)
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EPIPE, errno.ENOMEM})


def innermost_match(exc: BaseException, by_code: dict[Any, T]) -> T | None:
    """The value of ``by_code`` for the deepest frame of ``exc``'s traceback whose code object
    is a key (``None`` if none is): which plugin function an exception came from."""
    found, tb = None, exc.__traceback__
    while tb is not None:
        found = by_code.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    return found


def _library_dirs() -> tuple[str, ...]:
    """Directories whose frames are never the user's: the standard library, exitcore itself, and
    the numeric libraries a plugin calls into (a shape error raised inside torch is the caller's)."""
    dirs = [os.path.dirname(os.path.abspath(__file__))]
    for name in ("torch", "numpy", "pandas", "pluggy", "attrs", "cattrs"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            dirs.append(os.path.dirname(os.path.abspath(module.__file__)))
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


def _in_stdlib(path: str) -> bool:
    """Whether ``path`` is the standard library's, not a package installed beside it (without a
    virtualenv, site-packages lies inside the stdlib folder, and a plugin may be there)."""
    paths = sysconfig.get_paths()
    stdlib = paths["stdlib"].rstrip(os.sep) + os.sep
    installed = tuple(paths[k].rstrip(os.sep) + os.sep for k in ("purelib", "platlib"))
    return path.startswith(stdlib) and not path.startswith(installed)


def raised_at(exc: BaseException) -> str:
    """Where a plugin's exception came from, as ``file:line`` of the deepest frame outside the
    standard library, exitcore and the numeric libraries (the line of the plugin's own code
    that raised or made the failing call); the file and line of a ``SyntaxError``; ``""`` when
    every frame is library code. Paths under the working directory are shown relative to it."""
    if isinstance(exc, SyntaxError) and exc.filename:
        found: tuple[str, int] | None = (exc.filename, exc.lineno or 0)
    else:
        found, tb, skip = None, exc.__traceback__, _library_dirs()
        while tb is not None:
            path = tb.tb_frame.f_code.co_filename
            full = os.path.abspath(path)
            if not path.startswith("<") and not full.startswith(skip) and not _in_stdlib(full):
                found = (path, tb.tb_lineno)
            tb = tb.tb_next
    if found is None:
        return ""
    path = found[0]
    try:
        rel = os.path.relpath(path)
        path = rel if not rel.startswith("..") else path
    except ValueError:  # another drive (Windows)
        pass
    return f"{path}:{found[1]}"


def describe_exception(exc: BaseException) -> str:
    """``Type: message (at file:line)``: a plugin's exception in one line, located by
    :func:`raised_at` so its author finds the line without a traceback."""
    where = raised_at(exc)
    return f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")


class ExitcoreError(Exception):
    """A problem with the user's input: config, data, command-line arguments or plugins."""

    exit_code = 2


class ConfigError(ExitcoreError):
    """One or more problems in a configuration, each located by its TOML path.

    ``problems`` is a list of ``(path, message)``; ``str()`` renders one line per problem as
    ``path: message`` so the user can find the key in the file.
    """

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None,
                 source_of: Callable[[str], str] | None = None):
        self.problems = list(problems)
        self.source = source
        #: the file a problem's path was written in, where several files were read together
        #: (a user's experiments file layered over exitcore's own): else ``source``
        self.source_of = source_of
        super().__init__(self._render())

    def _render(self) -> str:
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        """Each problem as ``FILE:LINE: path: message`` (a message may have lines of its own):
        the line where the key is written, or its table where it was left out
        (:func:`exitcore.toml_lines.line_of`), where the file has one."""
        from exitcore.toml_lines import line_of

        lines = []
        for path, msg in self.problems:
            source = self.source_of(path) if self.source_of is not None and path else self.source
            if path.startswith("--"):  # typed on the command line (--set ...), not in the file
                source = None
            line = line_of(source, path) if source and path else None
            prefix = f"{source}:{line}: " if line else f"{source}: " if source else ""
            lines.append(f"{prefix}{path}: {msg}" if path else f"{prefix}{msg}")
        return lines


class PluginError(ExitcoreError):
    """A plugin failed to load, register, or build; the message names the plugin and its distribution."""


class CheckpointError(ExitcoreError):
    """A checkpoint file that cannot be read or does not fit the run; the message names the file."""


class NotOwner(ExitcoreError):
    """This process no longer owns its run (another process took it over): nothing more may be
    written for the run, neither a checkpoint nor its status. Raised from a heartbeat."""

    exit_code = 1


class RunDirGone(NotOwner):
    """The run's directory was moved or deleted while the run ran: nothing more is written at its
    old path (a checkpoint there would start a stray copy of the run); its status may still be
    recorded. Raised from a heartbeat."""


class ExitcoreWarning(RuntimeWarning):
    """Something the user should know that does not stop the work (the CLI prints it as one
    ``warning:`` line; in Python it is an ordinary warning)."""


class DataError(ExitcoreError):
    """Market data or trades that cannot be used; the message names the file and row or the key."""
