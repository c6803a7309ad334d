"""Finding and reading data files: folders, globs, ``.gz``/``.zip``, line numbers that match the file.

A source's ``path`` may be one file, a folder (every file in it with a data extension) or a glob.
Compressed files are read directly: ``.gz``/``.bz2``/``.xz`` by their suffix, ``.zip`` member by
member (only its ``.csv`` members when it has any, so HistData's status ``.txt`` is skipped).

:func:`read_delimited` keeps the link between a parsed row and the line of the file it came
from, so every problem can be reported as ``file, line N`` - including after a line with a wrong
number of fields was dropped (which is itself reported, never dropped silently).
"""

from __future__ import annotations

import glob
import io
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from exitcore.data.bars import Finding
from exitcore.errors import DataError

#: extensions a folder is scanned for
DATA_SUFFIXES = (".csv", ".txt", ".tsv", ".zip", ".gz", ".bz2", ".xz", ".parquet", ".pq")
_GLOB_CHARS = re.compile(r"[*?\[]")
_BAD_LINE = re.compile(r"Skipping line (\d+): (.*)")


def expand_paths(path: str, suffixes: tuple[str, ...] = DATA_SUFFIXES, key: str = "path") -> list[Path]:
    """The files ``path`` names: itself, the data files of a folder, or a glob's matches (sorted).

    A missing file, an empty folder or a glob that matches nothing is a :class:`DataError`
    naming the path (and the parameter ``key`` it came from).
    """
    p = Path(path).expanduser()
    if _GLOB_CHARS.search(path):
        files = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
        if not files:
            raise _param_error(f"{path}: no file matches this pattern{relative_to_cwd(path)}", key)
        return files
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and _has_suffix(f, suffixes))
        if not files:
            raise _param_error(f"{path}: the folder holds no data files ({', '.join(suffixes)})", key)
        return files
    if p.is_file():
        return [p]
    raise _param_error(f"{path}: no such file or folder{relative_to_cwd(path)}", key)


def _param_error(message: str, key: str) -> DataError:
    """``message (key)``, remembering ``key`` (``.param``) so that the caller who knows where the
    parameter was set (``experiments.v4_real.data.params.path``) can say so instead."""
    error = DataError(f"{message} ({key})")
    error.param, error.bare = key, message  # type: ignore[attr-defined]
    return error


def relative_to_cwd(path: str) -> str:
    """`` in /home/me/work`` for a relative ``path`` (read from the current directory, which
    is easy to forget when the path comes from an experiments file elsewhere), else ``""``."""
    import os

    p = Path(path).expanduser()
    return "" if p.is_absolute() else f" in {os.getcwd()} (a relative path is read from the directory exitcore runs in)"


def _has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


@attrs.frozen
class TextMember:
    """One text stream to parse: ``display`` names it in messages (``a.zip[b.csv]``)."""

    display: str
    path: Path
    member: str = ""

    def open(self) -> Any:
        """A path or binary file object pandas can read (zip members are opened here)."""
        if not self.member:
            return self.path
        with zipfile.ZipFile(self.path) as zf:
            return io.BytesIO(zf.read(self.member))

    def read_bytes(self) -> bytes:
        """The whole stream, decompressed (``.gz``/``.bz2``/``.xz`` by their suffix, zip members)."""
        if self.member:
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self.member)
        with _opener(self.path)(self.path, "rb") as fh:
            return fh.read()

    def head(self, n_bytes: int = 4096) -> str:
        """The first bytes as text (decompressed), for sniffing a layout."""
        import lzma

        try:
            if self.member:
                with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as fh:
                    raw = fh.read(n_bytes)
            else:
                with _opener(self.path)(self.path, "rb") as fh:
                    raw = fh.read(n_bytes)
        except (OSError, zipfile.BadZipFile, EOFError, lzma.LZMAError) as exc:
            raise DataError(f"{self.display}: cannot read: {exc}") from None
        return raw.decode("utf-8", errors="replace").lstrip("\ufeff")


def _opener(path: Path) -> Any:
    """``open``, or the decompressing ``open`` of a ``.gz``/``.bz2``/``.xz`` file."""
    import bz2
    import gzip
    import lzma

    return {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower(), open)


def text_members(path: Path) -> list[TextMember]:
    """The text streams inside ``path``: the file itself, or the data members of a zip."""
    if path.suffix.lower() != ".zip":
        return [TextMember(display=str(path), path=path)]
    try:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable zip archive: {exc}") from None
    csvs = [n for n in names if n.lower().endswith(".csv")]
    chosen = csvs or names
    if not chosen:
        raise DataError(f"{path}: the zip archive is empty")
    return [TextMember(display=f"{path}[{n}]", path=path, member=n) for n in sorted(chosen)]


def first_line(member: TextMember) -> str:
    """The first non-empty line of a stream (for header and layout detection)."""
    for line in member.head().splitlines():
        if line.strip():
            return line.strip()
    return ""


@attrs.frozen(eq=False)
class Table:
    """A parsed text table: ``frame`` plus the 1-based file ``line`` of every row and the
    ``findings`` for lines pandas could not split (wrong number of fields)."""

    frame: pd.DataFrame
    line: np.ndarray
    findings: list[Finding]


def read_delimited(
    member: TextMember,
    *,
    sep: str,
    header: bool,
    names: list[str] | None = None,
    dtype: Any = None,
    usecols: Any = None,
) -> Table:
    """Read a delimited stream with pandas' C parser, keeping file line numbers.

    Lines with too many or too few fields (as many as the header, or ``names``, or else the
    first line) are reported as errors and their rows dropped; blank lines are dropped (they
    carry no bar); every remaining row knows its line in the file.
    """
    import lzma

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # read once, decompressed: pandas parses these bytes and the fields are counted on them
            raw = member.read_bytes()
            frame = pd.read_csv(
                io.BytesIO(raw),
                sep=sep,
                header=0 if header else None,
                names=names,
                dtype=dtype,
                usecols=usecols,
                skip_blank_lines=False,
                on_bad_lines="warn",
                compression=None,
                encoding_errors="replace",
            )
        except pd.errors.EmptyDataError:
            raise DataError(f"{member.display}: the file is empty") from None
        except (pd.errors.ParserError, UnicodeError, OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
            raise DataError(f"{member.display}: cannot parse: {exc}") from None
        except ValueError as exc:  # usecols naming a column the file lacks
            raise DataError(f"{member.display}: {exc}") from None
    # (line, problem) of every row with a wrong number of fields: pandas skips (and warns about)
    # rows with too many; rows with too few it pads with NaN, so they are found by counting
    bad_rows: list[tuple[int, str]] = []
    for w in caught:
        for m in _BAD_LINE.finditer(str(w.message)):
            bad_rows.append((int(m.group(1)), m.group(2).strip()))
    skipped = [n for n, _ in bad_rows]
    # Rows with too few fields, found by counting separators per line. Only where no quote can
    # hide a separator or a line break: pandas opens a quoted field only at a field's start, so
    # counting around stray quotes would misplace lines (the vendors' files have no quotes).
    short = np.empty(0, dtype=np.int64)
    if b'"' not in raw:
        counts = fields_per_line(raw, sep)
        # the rows' width as pandas takes it: the names given, else the header or first row, less
        # a trailing empty header field (`...,volume,`: pandas names it and pads the rows)
        expected = len(names) if names else _header_width(raw, counts, sep)
        short = np.flatnonzero((counts > 0) & (counts < expected)) + 1  # 1-based lines
        bad_rows.extend((int(n), f"expected {expected} fields, saw {counts[n - 1]}") for n in short)
    bad_rows.sort()
    findings = _row_findings(member, bad_rows)
    first = 2 if header else 1
    base = np.arange(len(frame), dtype=np.int64) + first
    if skipped:
        # row i is the i-th line from `first` on that pandas did not skip: with the skipped
        # lines sorted, shift by how many of them lie at or before it
        s = np.sort(np.asarray(skipped, dtype=np.int64))
        base = base + np.searchsorted(s - np.arange(len(s)), base, side="right")
    drop = frame.isna().all(axis=1).to_numpy() if len(frame.columns) else np.zeros(len(frame), dtype=bool)
    if len(short):
        drop = drop | np.isin(base, short)  # reported above, not checked again as missing values
    if drop.any():
        frame = frame.loc[~drop].reset_index(drop=True)
        base = base[~drop]
    return Table(frame=frame, line=base, findings=findings)


def _header_width(raw: bytes, counts: np.ndarray, sep: str) -> int:
    """The fields of the first non-blank line, not counting empty ones at its end."""
    first = next((k for k, n in enumerate(counts) if n), None)
    if first is None:
        return 0
    eol = b"\n" if b"\n" in raw or b"\r" not in raw else b"\r"
    line = raw.split(eol, first + 1)[first].rstrip(b"\r")
    trailing = len(line) - len(line.rstrip(sep.encode("utf-8")))
    return int(counts[first]) - trailing // max(len(sep.encode("utf-8")), 1)


def _row_findings(member: TextMember, bad_rows: list[tuple[int, str]]) -> list[Finding]:
    """``unparseable row`` findings for ``(line, problem)`` pairs (at most ``KEEP_PER_KIND``
    objects; the rest are counted)."""
    from exitcore.data.formats.common import capped  # formats import this module
    from exitcore.data.validate import KEEP_PER_KIND

    kept = [Finding("error", f"{member.display}, line {n}", f"unparseable row: {problem}")
            for n, problem in bad_rows[:KEEP_PER_KIND]]
    return capped(kept, len(bad_rows), member.display)


def fields_per_line(raw: bytes, sep: str) -> np.ndarray:
    """The number of ``sep``-separated fields on each line of ``raw`` (element ``k`` is line
    ``k + 1``; 0 for a blank line), and a file without ``\\n`` breaks its lines at ``\\r``.
    A ``sep`` or line break between double quotes does not count, and a quoted field across
    lines then makes one element of two lines, so the elements no longer match line numbers.
    pandas opens a quoted field only at a field's start, where this counts any quote:
    :func:`read_delimited` counts quote-free files only.

    Vectorised on the bytes (positions of separators, quotes and line ends), so that it adds
    milliseconds to a file of 100,000 rows.
    """
    b = np.frombuffer(raw, dtype=np.uint8)
    eol_byte = b"\n" if b"\n" in raw or b"\r" not in raw else b"\r"
    ends = np.flatnonzero(b == eol_byte[0])
    sep_bytes = sep.encode("utf-8")
    if len(sep_bytes) == 1:
        seps = np.flatnonzero(b == sep_bytes[0])
    else:  # a separator outside ASCII (never in the vendors' files): find it in the text
        seps = np.fromiter((m.start() for m in re.finditer(re.escape(sep_bytes), raw)), dtype=np.int64)
    if b'"' in raw:  # a position is quoted when an odd number of quotes precede it
        quotes = np.flatnonzero(b == ord('"'))
        ends = ends[np.searchsorted(quotes, ends) % 2 == 0]
        seps = seps[np.searchsorted(quotes, seps) % 2 == 0]
    if len(b) and (not len(ends) or ends[-1] != len(b) - 1):
        ends = np.r_[ends, len(b)]  # a last line without a final line break
    starts = np.r_[0, ends[:-1] + 1]
    # a line's length without its line break and the \r of a CRLF break: 0 is a blank line
    length = ends - starts
    cr = np.zeros(len(ends), dtype=bool)
    has = length > 0
    cr[has] = b[ends[has] - 1] == ord("\r")
    length = length - cr
    n_seps = np.diff(np.r_[0, np.searchsorted(seps, ends)])
    return np.where(length > 0, n_seps + 1, 0)
