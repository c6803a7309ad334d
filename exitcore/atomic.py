"""Atomic, durable file writes: the one implementation every writer uses.

A reader (or a crash, or a kill) never sees a half-written file: content goes to a temporary
file in the same directory, is flushed and fsynced, then ``os.replace``-d over the target
(atomic on POSIX and Windows) and the directory is fsynced so the rename itself survives a
power cut. On any failure the temporary file is removed and the previous file is untouched.
"""

from __future__ import annotations

import contextlib
import os
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
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # the temporary name keeps the target's suffix, so writers that pick a format by it work
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def check_new_file(path: str | os.PathLike[str], option: str = "--out", force: bool = False) -> Path:
    """Refuse, before any work, to write ``path`` for a command-line ``option`` when its folder
    does not exist (like cp or tar, a mistyped folder is not created) or when the file exists
    and ``force`` is false. ``ExitcoreError`` naming the path and the fix; returns the path."""
    from exitcore.errors import ExitcoreError

    target = Path(path)
    if target.is_dir():
        raise ExitcoreError(f"{target}: is a folder ({option} {path}); name a file")
    if target.exists() and not force:
        raise ExitcoreError(f"{target}: already exists (use --force to overwrite)")
    parent = target.parent
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


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
