"""Atomic, durable file writes: the one implementation every writer uses.

A reader (or a crash, or a kill) never sees a half-written file: content goes to a temporary
file in the same directory, is flushed and fsynced, then ``os.replace``-d over the target
(atomic on POSIX and Windows) and the directory is fsynced so the rename itself survives a
power cut. On any failure the temporary file is removed and the previous file is untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Write the whole file to the yielded path (with any library: ``torch.save``,
    ``DataFrame.to_csv``, ...). The file is fsynced before the rename.

    A symbolic link is written through (its target is replaced, the link stays); a path that
    is not a regular file (a FIFO, a device such as ``/dev/stdout``, a directory) is refused,
    since replacing it would destroy it rather than write into it. Errors name ``path``, not the
    temporary file.
    """
    named = Path(path)
    target = _written_through(named)
    kind = _not_a_regular_file(target)
    if kind:
        raise OSError(f"{named}: {kind}; exitcore writes a file by replacing it atomically, so give the path "
                      "of a regular file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder of the path should be
        raise OSError(f"{named}: {target.parent} is a file, not a folder") from None
    # the temporary name keeps the target's suffix, so writers that pick a format by it work
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(named)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        # e.g. the disk filled up while writing: name the file the user asked for (an error on a
        # flush or close carries no file name at all)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, str(tmp)):
            raise OSError(exc.errno, exc.strerror, str(named)) from exc
        raise
    fsync_dir(target.parent)


def _written_through(path: Path) -> Path:
    """The file a write to ``path`` replaces: a symbolic link's target (the link stays)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _not_a_regular_file(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file (replacing it would destroy
    it): ``"a directory"`` or ``"not a regular file (...)"``; None otherwise."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there yet
        return None
    if stat.S_ISREG(mode):
        return None
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file (a FIFO, device or socket)"


#: the temporary files :func:`atomic_path` names: ``.<name>.<8 random characters>.tmp<suffix>``
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files an atomic write killed mid-way left in ``directory`` (only
    call it where no other process writes); returns what was removed."""
    removed = []
    for path in Path(directory).iterdir():
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def check_new_file(path: str | os.PathLike[str], option: str = "--out", force: bool = False) -> Path:
    """Refuse, before any work, to write ``path`` for a command-line ``option`` when its folder
    does not exist (like cp or tar, a mistyped folder is not created) or when the file exists
    and ``force`` is false. ``ExitcoreError`` naming the path and the fix; returns the path."""
    from exitcore.errors import ExitcoreError

    target = Path(path)
    real = _written_through(target)
    kind = _not_a_regular_file(real)
    if kind == "a directory":
        raise ExitcoreError(f"{target}: is a folder ({option} {path}); name a file")
    if kind:  # /dev/null, a FIFO
        raise ExitcoreError(f"{target}: {kind} ({option} {path}); name a file")
    if real.exists() and not force:
        raise ExitcoreError(f"{target}: already exists (use --force to overwrite)")
    parent = real.parent
    if parent.exists() and not parent.is_dir():  # somefile.csv/r.txt: not "[Errno 17] File exists"
        raise ExitcoreError(f"{parent}: is a file, not a folder ({option} {path}); name a file in an existing folder")
    if not parent.is_dir():
        raise ExitcoreError(f"{parent}: no such folder ({option} {path}); create it first")
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(device, inode)`` of the file or directory at ``path`` (None where there is none): the
    same one still there, or another made at its path since (a registry replaced, a run
    directory moved away and made afresh)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
