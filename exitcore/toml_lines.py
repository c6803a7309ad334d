"""Where each key of a TOML file is written: the line a configuration error points at.

``tomllib`` reports the line of a syntax error only; a value that parses but is wrong (a string
where a number belongs, an unknown key) is found by its path (``experiments.v5.ppo.n_envs``).
:func:`line_of` gives that path's line, so an error reads ``experiments.toml:12: ...`` and an
editor jumps to it. The scanner follows TOML's grammar far enough to find keys (tables, arrays
of tables, dotted and quoted keys, inline tables, arrays, every kind of string and comment) and
is used only on files ``tomllib`` has already accepted; anything it cannot place has no line.
"""

from __future__ import annotations

import re
import stat
from functools import lru_cache
from pathlib import Path

Path_ = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_PATH_PART = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([^.\[\]"\']+)|\[(\d+)\]')


class _Scanner:
    def __init__(self, text: str):
        self.text, self.i = text, 0
        self.lines: dict[Path_, int] = {}
        #: array-of-tables path (with the indices of the arrays above it) -> elements so far
        self.array_tables: dict[Path_, int] = {}
        #: paths with a table header of their own (it wins over a line a child header gave them)
        self.headers: set[Path_] = set()

    # ------------------------------------------------------------------ basics
    def line(self) -> int:
        return self.text.count("\n", 0, self.i) + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.i:self.i + n]

    def skip(self, newlines: bool) -> None:
        """Skip blanks and comments (and newlines where ``newlines``)."""
        while self.i < len(self.text):
            c = self.text[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            else:
                return

    def record(self, path: Path_, line: int, header: bool = False) -> None:
        # a dotted key or a table header also writes its parents (where no line of their own is)
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)
        if header and path not in self.headers:  # `[x]` after `[x.y]`: x is where its header is
            self.headers.add(path)
            self.lines[path] = line

    def placed(self, name: Path_) -> Path_:
        """A header's name with the last element of every array of tables in it (``[a.b]`` after
        ``[[a]]`` is ``a[last].b``)."""
        out: list[str | int] = []
        for part in name:
            out.append(part)
            count = self.array_tables.get(tuple(out))
            if count:
                out.append(count - 1)
        return tuple(out)

    # ------------------------------------------------------------------ keys and strings
    def string(self) -> str:
        quote = self.peek()
        if self.peek(3) == quote * 3:  # multi-line: ends at the first unescaped triple quote
            self.i += 3
            pattern = r'(?:[^\\]|\\.)*?"""' if quote == '"' else r"[\s\S]*?'''"
            m = re.compile(pattern, re.S).match(self.text, self.i)
            end = m.end() if m else len(self.text)
            while self.text[end:end + 1] == quote:  # up to two quotes may end the content
                end += 1
            value, self.i = self.text[self.i:end - 3], end
            return value
        self.i += 1
        pattern = r'((?:[^"\\\n]|\\.)*)"' if quote == '"' else r"([^'\n]*)'"
        m = re.compile(pattern).match(self.text, self.i)
        if m is None:
            raise ValueError("unterminated string")
        self.i = m.end()
        return m.group(1)

    def key(self) -> Path_:
        parts: list[str | int] = []
        while True:
            self.skip(newlines=False)
            if self.peek() in "\"'":
                parts.append(self.string())
            else:
                m = _BARE_KEY.match(self.text, self.i)
                if m is None:
                    raise ValueError("not a key")
                parts.append(m.group())
                self.i = m.end()
            self.skip(newlines=False)
            if self.peek() != ".":
                return tuple(parts)
            self.i += 1

    # ------------------------------------------------------------------ values
    def value(self, path: Path_) -> None:
        c = self.peek()
        if c in "\"'":
            self.string()
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self.skip(newlines=True)
                if self.peek() == "]":
                    self.i += 1
                    return
                self.record(path + (index,), self.line())
                self.value(path + (index,))
                index += 1
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self.skip(newlines=True)
                if self.peek() == "}":
                    self.i += 1
                    return
                self.key_value(path)
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.i += 1
        else:  # a number, a boolean, a date: up to what ends a value
            m = re.compile(r"[^,\]\}\n#]*").match(self.text, self.i)
            self.i = m.end() if m else len(self.text)

    def key_value(self, table: Path_) -> None:
        """``key = value`` inside ``table`` (a table's line or an inline table's entry)."""
        line = self.line()
        path = table + self.key()
        self.record(path, line)
        self.skip(newlines=False)
        self.i += 1  # "="
        self.skip(newlines=False)
        self.value(path)

    # ------------------------------------------------------------------ the document
    def document(self) -> dict[Path_, int]:
        table: Path_ = ()
        while True:
            self.skip(newlines=True)
            if self.i >= len(self.text):
                return self.lines
            line = self.line()
            if self.peek(2) == "[[":
                self.i += 2
                name = self.key()
                self.i += 2
                array = self.placed(name[:-1]) + name[-1:]
                index = self.array_tables.get(array, 0)
                self.array_tables[array] = index + 1
                table = array + (index,)
                self.record(array, line)
                self.record(table, line, header=True)
            elif self.peek() == "[":
                self.i += 1
                table = self.placed(self.key())
                self.i += 1
                self.record(table, line, header=True)
            else:
                self.key_value(table)


def key_lines(text: str) -> dict[Path_, int]:
    """Every key path of the TOML ``text`` (array elements by index) -> the 1-based line where it
    is first written; as much as could be placed where the text is not valid TOML."""
    scanner = _Scanner(text)
    try:
        return scanner.document()
    except (ValueError, IndexError):
        return scanner.lines


def parse_path(path: str) -> Path_:
    """``experiments.v1.rewards[2].params.time_coef`` as its parts (indices as ints)."""
    parts: list[str | int] = []
    for m in _PATH_PART.finditer(path):
        basic, literal, bare, index = m.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(basic if basic is not None else literal if literal is not None else bare.strip())
    return tuple(parts)


def _dotted(path: Path_) -> str:
    """A key path as error messages write it: parts joined by dots, indices in brackets, names
    unquoted (``experiments.v5.1.ppo``, ``rewards[0].params``)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@lru_cache(maxsize=16)
def _lines_of_file(path: str, mtime_ns: int, size: int) -> dict[str, int]:
    try:
        lines = key_lines(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}
    # by the text of the path: a quoted name holding a dot (`experiments."v5.1"`) reads as error
    # paths write it, unquoted, and must not be taken for `experiments.v5`'s key `1` (review AJ)
    return {_dotted(key): line for key, line in sorted(lines.items(), key=lambda kv: kv[1], reverse=True)}


def line_of(file: str | Path, path: str) -> int | None:
    """The line of ``file`` where the key ``path`` is written, or, where it is not (a required
    key left out), where its closest written parent is (the experiment's table); None where
    neither is in the file, or the file cannot be read."""
    try:
        st = Path(file).stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):  # a pipe (--experiments /dev/stdin) cannot be read again
        return None
    lines = _lines_of_file(str(file), st.st_mtime_ns, st.st_size)
    # the path and its parents, longest first, as text: a table at least (`experiments.v5`), not
    # just the first word every key of a file shares
    cuts = [m.start() for m in re.finditer(r"[.\[]", path)]
    for prefix in [path] + [path[:c] for c in reversed(cuts[1:])]:
        found = lines.get(prefix)
        if found is not None:
            return found
    return None


def file_key(file: str | Path, path: str) -> str:
    """``FILE:LINE: path`` (``FILE: path`` where the line is unknown): how an error found away
    from :class:`~exitcore.errors.ConfigError` (when the data is read) starts, as that does."""
    line = line_of(file, path)
    return f"{file}:{line}: {path}" if line else f"{file}: {path}"


_FILE_KEY = re.compile(r"^(?P<file>.+?\.toml)(?::\d+)?: (?P<path>[^\s:]+)$")


def deeper(where: str, rel: str) -> str:
    """``where`` (a key path, or ``FILE[:LINE]: path`` as :func:`file_key` writes it) extended by
    ``rel`` (``params.timezone``), the line being that of the deeper key where it is written."""
    m = _FILE_KEY.match(where)
    if m is None:
        return f"{where}.{rel}"
    return file_key(m["file"], f"{m['path']}.{rel}")
