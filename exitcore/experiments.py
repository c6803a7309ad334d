"""``experiments.toml``: loading, ``extends``, budgets, ``--set`` overrides, component resolution.

The file has three top-level tables::

    [defaults]              # applies to every experiment
    [experiments.NAME]      # one named experiment; `extends = "OTHER"` inherits from OTHER
    [budgets.NAME]          # a named set of overrides, e.g. a short CPU budget (`--budget`)

An experiment is composed as ``defaults <- root ancestor <- ... <- NAME <- budget <- --set``:
tables merge key by key, anything else (numbers, strings, arrays such as the list of guards)
is replaced whole; a table that names another component (``entry.name``, ``data.source``,
``ppo.policy``) drops the old component's parameters. ``description`` and ``assumptions`` are
not inherited. Every problem is reported at the TOML path where the offending value was
written (``defaults.ppo.n_envs`` if it came from the defaults), so the user can go straight to
the line.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from exitcore.components import Component, ComponentKind
from exitcore.config import (
    ComponentRef,
    DataConfig,
    ExperimentConfig,
    PPOConfig,
    RewardRef,
    RuleError,
    SPLIT_DATE_KEYS,
    SplitConfig,
    DataOrigins,
    SplitOrigins,
    canonical_split_time,
    converter,
    locate_problems,
    unknown_key_message,
    unstructure,
)
from exitcore.errors import ConfigError, ExitcoreError, PluginError, describe_exception

FILE_NAME = "experiments.toml"
#: environment variable naming the experiments file to use
FILE_ENV = "EXITCORE_EXPERIMENTS"
_TOP_LEVEL = ("defaults", "experiments", "budgets")
#: top-level keys a --set cannot change, and why (compose fills them in)
NOT_SETTABLE = {
    "name": "the experiment's name is not a setting: run another experiment by naming it, or define one "
            "that extends this one in experiments.toml",
    "lineage": "lineage is recorded (the chain of experiments this one extends), not set: change `extends` in "
               "experiments.toml instead",
}
_NOT_INHERITED = ("description", "assumptions", "extends")
_KEY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*|\[\d+\])*$")
_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


# --------------------------------------------------------------------------- the file


@attrs.frozen
class ExperimentsFile:
    """The parsed ``experiments.toml``: its path and its three tables."""

    path: Path
    defaults: dict[str, Any]
    experiments: dict[str, dict[str, Any]]
    budgets: dict[str, dict[str, Any]]
    #: the file layered under ``path`` (exitcore's shipped experiments.toml; see
    #: :func:`load_experiments`), or None when ``path`` was read alone
    base: Path | None = None
    #: the tables that came from ``base``: ``"experiments.v1"``, ``"budgets.quick"``
    from_base: frozenset[str] = frozenset()
    #: ``path``'s own ``[defaults]`` (to tell which file wrote a default)
    own_defaults: dict[str, Any] | None = None
    #: the tables of ``base`` that ``path`` defines differently (``path``'s win)
    replaced: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        """Experiment names in file order (the shipped ones first when layered)."""
        return list(self.experiments)

    def file_of(self, where: str) -> Path:
        """The file the TOML path ``where`` (``experiments.v4_no_lookahead.ppo.n_envs``,
        ``defaults.split.test``) was written in: ``base`` for what came from it, else ``path``."""
        if self.base is None:
            return self.path
        tokens = [t for t, _ in _PATH_TOKEN.findall(where.split(" ")[0])]
        if tokens[:1] == ["defaults"]:
            node: Any = self.own_defaults or {}
            for tok in tokens[1:]:
                if isinstance(node, list):  # arrays are replaced whole: this one is the user's
                    return self.path
                if not isinstance(node, dict) or tok not in node:
                    return self.base
                node = node[tok]
            return self.path
        return self.base if ".".join(tokens[:2]) in self.from_base else self.path

    def error(self, problems: list[tuple[str, str]]) -> ConfigError:
        """A :class:`ConfigError` whose every problem names the file its path was written in."""
        return ConfigError(problems, str(self.path), lambda where: str(self.file_of(where)))

    def resolve_name(self, name: str) -> str:
        """The full experiment name for ``name``: exact, else a unique prefix (``v4``).

        Unknown names raise a :class:`ConfigError` suggesting the closest names.
        """
        if name in self.experiments:
            return name
        matches = [n for n in self.experiments if n.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise self.error([("", f"experiment {name!r} is ambiguous: it could be {', '.join(matches)}")])
        # names are case-sensitive; a different case (V4) is suggested, not taken
        folded = [n for n in self.names if n.lower().startswith(name.lower())]
        close = folded[:3] or difflib.get_close_matches(name, self.names, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise self.error([("", f"unknown experiment {name!r}{hint} (available: {', '.join(self.names) or 'none'})"
                                f"{_shipped_hint(self, name, prefix=True)}")])

    def resolve_budget(self, name: str) -> str:
        """The budget named ``name``; unknown names list the available ones."""
        if name in self.budgets:
            return name
        close = difflib.get_close_matches(name, list(self.budgets), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise self.error([("", f"unknown budget {name!r}{hint}; available: {', '.join(self.budgets) or 'none'}")])


#: exitcore's own experiments (v1-v4, the budgets), package data of exitcore (so wheels have it
#: too); a user's file is layered over it (:func:`load_experiments`)
SHIPPED_FILE = Path(__file__).resolve().parent / FILE_NAME


def find_file(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate ``experiments.toml``: ``explicit``, ``$EXITCORE_EXPERIMENTS``, the current
    directory, then exitcore's shipped file (:data:`SHIPPED_FILE`)."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    elif os.environ.get(FILE_ENV):
        candidates.append(Path(os.environ[FILE_ENV]))
    else:
        candidates.append(Path.cwd() / FILE_NAME)
        candidates.append(SHIPPED_FILE)
    for path in candidates:
        if path.is_file():
            return path
    if explicit or os.environ.get(FILE_ENV):
        named = f"{candidates[0]} (${FILE_ENV})" if not explicit else str(candidates[0])
        if candidates[0].is_dir():
            raise ExitcoreError(f"{named}: a directory, not an experiments file (give the path of a .toml file)")
        raise ExitcoreError(f"{named}: experiments file not found")
    raise ExitcoreError(
        f"no {FILE_NAME} in {Path.cwd()}, and exitcore's shipped one ({SHIPPED_FILE}) is missing: reinstall "
        f"exitcore, or pass --experiments FILE or set {FILE_ENV}"
    )


def load_file(path: str | os.PathLike[str]) -> ExperimentsFile:
    """Parse an experiments file; syntax errors and misplaced tables name the file and line."""
    path = Path(path)
    try:
        raw = tomllib.loads(_read_utf8(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("", f"TOML syntax error: {exc}")], str(path)) from None
    except OSError as exc:
        raise ExitcoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
    problems = []
    for key in raw:
        if key not in _TOP_LEVEL:
            problems.append((key, unknown_key_message(key, list(_TOP_LEVEL))))
    for key in _TOP_LEVEL:
        if not isinstance(raw.get(key, {}), dict):
            problems.append((key, f"expected a table, got {raw[key]!r}"))
    for table in ("experiments", "budgets"):
        for name, value in raw.get(table, {}).items() if isinstance(raw.get(table), dict) else []:
            if not name.strip():  # [experiments.""]: nothing could name it on a command line
                problems.append((f'{table}."{name}"', f"a{'n experiment' if table == 'experiments' else ' budget'} "
                                 "needs a name that is not empty or blank"))
            elif not isinstance(value, dict):
                problems.append((f"{table}.{name}", f"expected a table, got {value!r}"))
    if problems:
        raise ConfigError(problems, str(path))
    return ExperimentsFile(
        path=path,
        defaults=raw.get("defaults", {}),
        experiments=raw.get("experiments", {}),
        budgets=raw.get("budgets", {}),
    )


def load_experiments(path: str | os.PathLike[str] | None = None) -> ExperimentsFile:
    """The experiments the command line sees: the file :func:`find_file` finds for ``path``
    (``path`` itself when given), layered over exitcore's shipped experiments.toml.

    A user's file adds to the shipped experiments and budgets instead of replacing them, so
    ``extends = "v4_no_lookahead"`` and ``--budget quick`` work from any directory. Its
    ``[defaults]`` merge key by key over the shipped ones (arrays are replaced whole), and
    where it defines an experiment or budget the shipped file defines too, its definition
    wins (also for a shipped experiment that extends that name); ``experiments list`` marks
    those. The shipped file read on its own gives the file alone. Problems name the file each
    key was written in.
    """
    top = load_file(find_file(path))
    if not SHIPPED_FILE.is_file() or _same_file(top.path, SHIPPED_FILE):
        return top
    return layer(load_file(SHIPPED_FILE), top)


def layer(base: ExperimentsFile, top: ExperimentsFile) -> ExperimentsFile:
    """``top`` layered over ``base`` (see :func:`load_experiments`)."""
    from_base = {f"{table}.{name}" for table in ("experiments", "budgets")
                 for name in getattr(base, table) if name not in getattr(top, table)}
    replaced = tuple(f"{table}.{name}" for table in ("experiments", "budgets") for name, value in getattr(top, table).items()
                     if name in getattr(base, table) and getattr(base, table)[name] != value)
    return ExperimentsFile(
        path=top.path,
        defaults=_deep_merge(base.defaults, top.defaults),
        experiments={**base.experiments, **top.experiments},
        budgets={**base.budgets, **top.budgets},
        base=base.path,
        from_base=frozenset(from_base),
        own_defaults=top.defaults,
        replaced=replaced,
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _shipped_hint(file: ExperimentsFile, parent: str, *, prefix: bool = False) -> str:
    """For an ``extends`` (or, with ``prefix``, an experiment asked for by a unique prefix too)
    naming one of the shipped experiments in a file read alone: how to read it layered over
    them (``load_file`` reads one file only)."""
    if file.base is not None or not SHIPPED_FILE.is_file() or _same_file(file.path, SHIPPED_FILE):
        return ""
    try:
        shipped = load_file(SHIPPED_FILE).experiments
    except ExitcoreError:
        return ""
    if parent not in shipped and not (prefix and any(name.startswith(parent) for name in shipped)):
        return ""
    return (f"; it is one of exitcore's shipped experiments ({SHIPPED_FILE}): read this file with "
            "exitcore.experiments.load_experiments(path), which layers it over them, as the command line does "
            "(load_file reads one file)")


def _read_utf8(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 (TOML's only encoding) are a :class:`ConfigError`
    naming the offset, since a traceback would not tell the user which file or where."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark (Windows Notepad) is dropped
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        # Windows editors save "Unicode" as UTF-16, which starts with a byte-order mark
        hint = "; it looks like UTF-16: save it as UTF-8" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError(
            [("", f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}) is invalid{hint}")],
            str(path),
        ) from None


# --------------------------------------------------------------------------- composition


@attrs.frozen
class Layer:
    """One table in an experiment's composition and the TOML path it was written at."""

    label: str
    table: dict[str, Any]
    #: the parameter tables (``.entry.params``) this layer dropped by naming another component:
    #: what earlier layers wrote inside them is no longer part of the experiment
    resets: tuple[str, ...] = ()


def lineage(file: ExperimentsFile, name: str) -> list[str]:
    """The ``extends`` chain of ``name``, root first; cycles and unknown parents are errors."""
    chain = [name]
    while True:
        parent = file.experiments[chain[-1]].get("extends")
        if parent is None:
            break
        where = f"experiments.{chain[-1]}.extends"
        if not isinstance(parent, str):
            raise file.error([(where, f"expected an experiment name, got {parent!r}")])
        if parent not in file.experiments:
            close = difflib.get_close_matches(parent, file.names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise file.error([(where, f"unknown experiment {parent!r}{hint}{_shipped_hint(file, parent)}")])
        if parent in chain:
            cycle = " -> ".join([*chain[chain.index(parent) :], parent])
            raise file.error([(where, f"extends cycle: {cycle}")])
        chain.append(parent)
    return chain[::-1]


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"ppo.n_envs=64"`` -> (["ppo", "n_envs"], 64); values are TOML, bare words are strings."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError([(f"--set {text}", "expected KEY=VALUE, for example ppo.n_envs=64")])
    if not _KEY.match(key):
        raise ConfigError([(f"--set {text}", f"cannot read the key {key!r}; use dots and [index], e.g. guards[0].params.min_bars")])
    tokens = _path_tokens(key)
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if _meant_as_toml(value.strip()):
            raise ConfigError([(f"--set {key}", _toml_value_error(value.strip(), exc))]) from None
        parsed = value.strip()  # a bare word: text (a glob such as [EG]*USD*.csv too)
    return tokens, parsed


def _meant_as_toml(value: str) -> bool:
    """Whether ``value``, which is not TOML, was meant as TOML rather than as a bare word: a
    quoted string, or an array or table with items (``=`` or ``,`` in it); ``[EG]*USD*.csv``,
    a glob, is a word."""
    return value.startswith(('"', "'")) or (value.startswith(("[", "{")) and ("=" in value or "," in value))


def _toml_value_error(value: str, exc: tomllib.TOMLDecodeError) -> str:
    """Why ``value`` (an array, table or quoted string) is not TOML, with the position in the
    value as typed (the parser counts from the ``v = `` put before it)."""
    message = str(exc)
    where = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if where:
        line, column = int(where.group(1)), int(where.group(2))
        at = f"character {column - 4}" if line == 1 else f"line {line}, column {column}"
        message = f"{message[:where.start()]} at {at} of the value"
    first_line = value.split("\n", 1)[0]
    if "\n" in value and first_line.count("{") > first_line.count("}"):
        hint = "; an inline table { ... } must be on one line: join the lines"
    elif "} {" in value or "] [" in value:
        hint = "; items of an array or table are separated by commas"
    else:
        hint = ""
    return (f"cannot read {value!r} as a TOML value: {message}{hint} (text is quoted: "
            f"--set 'KEY=\"...\"')")


def override_texts(overrides: Any) -> list[str]:
    """``overrides`` as ``KEY=VALUE`` strings: a sequence of them as it is, a mapping of keys to
    Python values (``{"ppo.hidden": [64, 64]}``) written as TOML values; a lone string is refused
    (it would be read one character at a time, trial AC)."""
    if isinstance(overrides, str):
        raise TypeError(f"overrides is a list of 'KEY=VALUE' strings (or a dict of keys to values), got the string "
                        f"{overrides!r}: wrap it in a list")
    if isinstance(overrides, Mapping):
        return [f"{key}={_toml_value(value, key)}" for key, value in overrides.items()]
    return list(overrides)


def _toml_value(value: Any, key: str) -> str:
    """``value`` as a TOML value on one line (what ``--set KEY=VALUE`` takes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else "inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, key) for v in value) + "]"
    raise TypeError(f"overrides[{key!r}]: a value for --set is a number, string, boolean or array, "
                    f"got {type(value).__name__}; give a table's keys one by one ({key}.KEY)")


def compose(
    file: ExperimentsFile,
    name: str,
    budget: str | None = None,
    overrides: Sequence[str] = (),
    data: tuple[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[Layer]]:
    """Merge defaults, the ``extends`` chain, the budget, ``--data`` and ``--set`` for ``name``.

    ``overrides``: ``KEY=VALUE`` strings as ``--set`` takes them, or from Python a mapping
    ``{"ppo.n_envs": 64}`` (:func:`override_texts`). ``data`` is ``(source, params)`` from a
    ``--data`` string: it replaces the data source and its whole params table (params of
    another source would not make sense).
    """
    overrides = override_texts(overrides)
    name = file.resolve_name(name)
    chain = lineage(file, name)
    layers = [Layer("defaults", file.defaults)]
    for i, exp in enumerate(chain):
        table = dict(file.experiments[exp])
        if exp != name:
            for key in _NOT_INHERITED:
                table.pop(key, None)
        else:
            table.pop("extends", None)
        layers.append(Layer(f"experiments.{exp}", table))
    if budget:
        layers.append(Layer(f"budgets.{file.resolve_budget(budget)}", file.budgets[file.resolve_budget(budget)]))
    merged: dict[str, Any] = {}
    for i, layer in enumerate(layers):
        resets: list[str] = []
        merged = _deep_merge(merged, layer.table, "", resets)
        layers[i] = attrs.evolve(layer, resets=tuple(resets))
    if data is not None:
        source, params = data
        merged.setdefault("data", {})
        if not isinstance(merged["data"], dict):
            merged["data"] = {}
        merged["data"]["source"], merged["data"]["params"] = source, copy.deepcopy(params)
        layers.append(Layer("--data", {"data": {"source": source, "params": params}}, (".data.params",)))
    # a --set naming another component goes first: it drops the old component's parameters,
    # which must not take with them a parameter another --set gave on the same command line
    parsed = [(text, parse_override(text)) for text in overrides]
    for text, (tokens, _value) in parsed:
        if tokens and tokens[0] in NOT_SETTABLE:  # compose writes them last: a --set would vanish
            raise file.error([(f"--set {text.partition('=')[0].strip()}", NOT_SETTABLE[str(tokens[0])])])
    parsed.sort(key=lambda item: 0 if _names_component(item[1][0]) else 1)  # stable otherwise
    for text, (tokens, value) in parsed:
        resets = []
        _set_path(merged, tokens, value, f"--set {text.partition('=')[0].strip()}", resets)
        layers.append(Layer(f"--set {text.partition('=')[0].strip()}", _nest(tokens, value), tuple(resets)))
    merged["name"] = name
    merged["lineage"] = chain
    return merged, layers


def _params_key(rel: str, key: str) -> str | None:
    """The key of the parameters of the component that ``key`` names in the table at ``rel``
    (``.entry``, ``.guards[1]``, ``.data``, ``.ppo``), or ``None`` when ``key`` names none."""
    if key == "name" and rel:
        return "params"
    return {(".data", "source"): "params", (".ppo", "policy"): "policy_params"}.get((rel, key))


def _default_name(rel: str, key: str) -> Any:
    """The component a table names when no layer wrote ``key`` (``donchian``, ``synthetic``, ``mlp``)."""
    if (rel, key) == (".entry", "name"):
        return attrs.fields(ExperimentConfig).entry.default.factory().name
    if (rel, key) == (".data", "source"):
        return DataConfig().source
    if (rel, key) == (".ppo", "policy"):
        return PPOConfig().policy
    return None


def _renames(table: dict[str, Any], rel: str, key: str, value: Any) -> str | None:
    """The parameters key to drop when writing ``value`` at ``key`` names another component than
    ``table`` does (what was written, else the default), or ``None``."""
    pkey = _params_key(rel, key)
    if not pkey or pkey not in table:
        return None
    current = table.get(key, _default_name(rel, key))
    return pkey if current is not None and current != value else None


def _deep_merge(base: dict[str, Any], top: dict[str, Any], rel: str = "", resets: list[str] | None = None) -> dict[str, Any]:
    """``top`` merged onto ``base`` key by key. A table of ``top`` that names another component
    than ``base`` (``entry.name``, ``data.source``, ``ppo.policy``) does not inherit the old
    component's parameters: they are dropped, and their path added to ``resets``."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        pkey = _renames(out, rel, key, value)
        if pkey:
            del out[pkey]
            if resets is not None:
                resets.append(f"{rel}.{pkey}")
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value, f"{rel}.{key}", resets)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _names_component(tokens: Sequence[str | int]) -> bool:
    """Whether an override path sets a component's name (``entry.name``, ``data.source``, ...)."""
    return bool(tokens) and isinstance(tokens[-1], str) and _params_key(_rel(tokens[:-1]), tokens[-1]) is not None


def _rel(tokens: Sequence[str | int]) -> str:
    """``["guards", 1, "params"]`` -> ``".guards[1].params"``."""
    return "".join(f"[{t}]" if isinstance(t, int) else f".{t}" for t in tokens)


def _path_tokens(path: str) -> list[str | int]:
    return [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _PATH_TOKEN.finditer(path)]


def _set_path(root: dict[str, Any], tokens: list[str | int], value: Any, where: str, resets: list[str] | None = None) -> None:
    """Set ``value`` at ``tokens``; a table or array replaces the old one whole, and a new
    component name drops the old component's parameters (both are added to ``resets``)."""
    if resets is not None and isinstance(value, (dict, list)):
        resets.append(_rel(tokens))
    node: Any = root
    for i, tok in enumerate(tokens):
        last = i == len(tokens) - 1
        if isinstance(tok, int):
            if not isinstance(node, list) or tok >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise ConfigError([(where, f"index [{tok}] is out of range (the array has {size} entries)")])
            if last:
                node[tok] = value
            else:
                node = node[tok]
            continue
        if not isinstance(node, dict):
            raise ConfigError([(where, f"{tok!r} is not inside a table")])
        if last:
            pkey = _renames(node, _rel(tokens[:i]), tok, value)
            if pkey:
                del node[pkey]
                if resets is not None:
                    resets.append(f"{_rel(tokens[:i])}.{pkey}")
            node[tok] = value
        else:
            nxt = tokens[i + 1]
            if tok not in node:
                if isinstance(nxt, int):
                    raise ConfigError([(where, f"{tok!r} is not set, so [{nxt}] does not exist")])
                node[tok] = {}
            node = node[tok]


def _nest(tokens: list[str | int], value: Any) -> Any:
    """A sparse structure holding ``value`` at ``tokens`` (lists padded with None)."""
    if not tokens:
        return value
    head, rest = tokens[0], tokens[1:]
    if isinstance(head, int):
        out: list[Any] = [None] * (head + 1)
        out[head] = _nest(rest, value)
        return out
    return {head: _nest(rest, value)}


def origin_of(layers: Sequence[Layer], rel: str, fallback: str) -> str:
    """The TOML path where the value at ``rel`` (``.ppo.n_envs``) was last written (``fallback``
    plus ``rel`` when no layer wrote it: a default)."""
    written = _written_at(layers, rel)
    return written[2] if written else _join(fallback, rel)


def value_origin(layers: Sequence[Layer], rel: str) -> tuple[int, str] | None:
    """Where the value at ``rel`` was last written, for a message that names it: ``(layer
    index, where)``, with a ``--set`` shown as typed (``--set split.train=0.9``); ``None`` for
    a default (see :data:`exitcore.config.Origin`)."""
    written = _written_at(layers, rel)
    if written is None:
        return None
    index, node, where = written
    if where == f"--set {rel.lstrip('.')}" and not isinstance(node, (dict, list)):
        where += "=" + (str(node).lower() if isinstance(node, bool) else str(node))
    return index, where


def _written_at(layers: Sequence[Layer], rel: str) -> tuple[int, Any, str] | None:
    """``(layer index, value, TOML path)`` of the layer that last wrote the value at ``rel``."""
    tokens = _path_tokens(rel)
    for index in range(len(layers) - 1, -1, -1):
        layer = layers[index]
        node: Any = layer.table
        depth, in_array = 0, False
        for tok in tokens:
            if isinstance(tok, int) and isinstance(node, list) and tok < len(node) and node[tok] is not None:
                node, depth, in_array = node[tok], depth + 1, True
            elif isinstance(tok, str) and isinstance(node, dict) and tok in node:
                node, depth = node[tok], depth + 1
            else:
                break
        # the layer wrote this value, or wrote an array/scalar above it that replaced it whole
        # (a key missing inside an array's element is that layer's, never an earlier layer's)
        # (--set and --data layers are sparse: they edit inside an element, never replace it)
        sparse = layer.label.startswith("--")
        if depth == len(tokens) or (depth > 0 and not isinstance(node, dict)) or (in_array and not sparse):
            return index, node, _join(layer.label, rel)
        if any(rel == r or rel.startswith((r + ".", r + "[")) for r in layer.resets):
            return None  # this layer dropped what earlier layers wrote here (another component)
    return None


def _join(label: str, rel: str) -> str:
    if label.startswith("--set"):
        return label
    if label == "--data":
        return f"--data ({rel.lstrip('.')})"
    return label + rel if rel.startswith("[") or not rel else f"{label}{rel}"


# --------------------------------------------------------------------------- resolution


@attrs.frozen
class ResolvedComponent:
    """A component chosen by an experiment, with its validated parameters."""

    component: Component
    params: Any
    path: str
    weight: float = 1.0

    @property
    def name(self) -> str:
        """The component's registered name."""
        return self.component.name

    def build(self, *args: Any) -> Any:
        """Call the component's factory; failures name the component, its plugin and path."""
        try:
            return self.component.build(self.params, *args)
        except ExitcoreError as exc:
            raise type(exc)(f"{self.path} ({self.component.kind.value} {self.name!r} from {self.component.origin}): {exc}") from exc
        except Exception as exc:
            raise PluginError(
                f"{self.path}: {self.component.kind.value} {self.name!r} from {self.component.origin} failed to build: "
                f"{describe_exception(exc)}"
            ) from exc


@attrs.frozen
class ResolvedExperiment:
    """A fully resolved experiment: the config (with every default filled in) and its components."""

    config: ExperimentConfig
    entry: ResolvedComponent
    features: tuple[ResolvedComponent, ...]
    rewards: tuple[ResolvedComponent, ...]
    guards: tuple[ResolvedComponent, ...]
    masks: tuple[ResolvedComponent, ...]
    evaluators: tuple[ResolvedComponent, ...]
    data_source: ResolvedComponent | None
    policy: Component
    source: str = ""
    #: ``policy``'s parameters (an instance of its params class; ``None`` when it takes none)
    policy_params: Any = None
    #: where each ``split`` key was written (:data:`~exitcore.config.SplitOrigins`), for the
    #: errors of splits found empty only on the data; empty for a run's frozen configuration
    split_origins: SplitOrigins = attrs.field(factory=dict, eq=False)
    #: where each key of the ``data`` section was written (:data:`~exitcore.config.DataOrigins`),
    #: for the errors found only when the data is read; empty for a run's frozen configuration
    data_origins: DataOrigins = attrs.field(factory=dict, eq=False)
    #: the data table that chose the source, with its file (:attr:`data_where`); "" when unknown
    data_table: str = attrs.field(default="", eq=False)

    @property
    def name(self) -> str:
        """The experiment's full name."""
        return self.config.name

    @property
    def data_where(self) -> str:
        """Where the experiment's data section is, for the errors found when its data is read
        (a sniffed source's missing parameter): the table that chose its source (or its path),
        ``FILE: defaults.data``, else ``FILE: experiments.NAME.data``."""
        if self.data_table:
            return self.data_table
        return f"{self.source}: experiments.{self.name}.data" if self.source else f"experiments.{self.name}.data"

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as plain data (what ``experiments show`` prints)."""
        return unstructure(self.config)

    def plugins_used(self) -> set[str]:
        """The names of the plugins that supply the experiment's components (its code)."""
        return self.plugins_training() | {rc.component.plugin for rc in self.evaluators}

    def plugins_training(self) -> set[str]:
        """The plugins whose code decides what a run trains and what its policy meets: those of
        the data source, entry strategy, features, rewards, guards, masks and policy (not the
        evaluators, which only read the ledgers)."""
        chosen = [self.entry, *self.features, *self.rewards, *self.guards, *self.masks, self.data_source]
        return {rc.component.plugin for rc in chosen if rc is not None} | {self.policy.plugin}

    def to_toml(self) -> str:
        """The resolved configuration as a TOML document (frozen into every run directory)."""
        import tomli_w

        return tomli_w.dumps({"experiment": _drop_empty(self.to_dict())})

    def config_hash(self) -> str:
        """A stable hash of the resolved configuration (name and description excluded)."""
        return hash_config(self.to_dict())


#: settings that decide how fast a run trains, not what it learns (the same results, up to float
#: rounding from compilation or the micro-batch split): the hash takes them at their defaults, so a
#: rerun with other checkpoints or micro-batches is the same trial for the deflated Sharpe ratio's
#: N, not one more; configurations that keep the defaults hash as before. ``ppo.device`` is not
#: one: the trainer's random streams are the device's (CPU and CUDA draw differently for one
#: seed, another draw as another seed is), so only a GPU's index is left out (``cuda:1`` hashes
#: as ``cuda``). Resume still refuses a change of any of them (:func:`operational_differences`).
OPERATIONAL_KEYS: dict[str, tuple[str, ...]] = {"ppo": ("compile", "micro_batch_size", "checkpoint_every")}


def operational_defaults() -> dict[str, dict[str, Any]]:
    """``{table: {key: default}}`` of :data:`OPERATIONAL_KEYS`."""
    fields = {"ppo": attrs.fields_dict(PPOConfig)}
    return {table: {key: fields[table][key].default for key in keys} for table, keys in OPERATIONAL_KEYS.items()}


def operational_settings(data: dict[str, Any]) -> dict[str, Any]:
    """``ppo.device`` and the :data:`OPERATIONAL_KEYS` of a configuration as plain data, keyed
    ``ppo.KEY`` (a missing key reads as its default): what the config hash leaves out or
    generalises, which run.json records as the run had them."""
    defaults = {"ppo": {"device": attrs.fields_dict(PPOConfig)["device"].default, **operational_defaults()["ppo"]}}
    return {f"{table}.{key}": (data.get(table) or {}).get(key, default)
            for table, keys in defaults.items() for key, default in keys.items()}


def operational_differences(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, before, after)`` for each of :func:`operational_settings` that differs
    between two configurations as plain data."""
    a, b = operational_settings(before), operational_settings(after)
    return [(key, a[key], b[key]) for key in a if a[key] != b[key]]


def with_canonical_dates(data: dict[str, Any]) -> dict[str, Any]:
    """A plain configuration with its split dates in their one spelling
    (:func:`~exitcore.config.canonical_split_time`): ``2019/07/01`` and ``2019-07-01`` are one
    split, so one trial for the deflated Sharpe ratio's N and no difference in a comparison."""
    split = data.get("split") if isinstance(data, dict) else None
    if not isinstance(split, dict) or not any(isinstance(split.get(k), str) and split.get(k) for k in SPLIT_DATE_KEYS):
        return data
    split = {k: canonical_split_time(v) if k in SPLIT_DATE_KEYS and isinstance(v, str) else v for k, v in split.items()}
    return {**data, "split": split}


def hash_config(data: dict[str, Any], operational: bool = False, typed_dates: bool = False) -> str:
    """:meth:`ResolvedExperiment.config_hash` of a configuration as plain data.

    :data:`OPERATIONAL_KEYS` are hashed at their defaults and ``cuda:N`` as ``cuda``;
    ``operational=True`` hashes them as they are, as exitcore did before 2026-11-29 (runs
    recorded then carry that hash). Split dates are hashed in their one spelling
    (:func:`with_canonical_dates`); ``typed_dates=True`` hashes them as typed, as exitcore did
    before 2026-11-30 (a run recorded then with ``2019/07/01`` carries that hash)."""
    data = copy.deepcopy(data if typed_dates else with_canonical_dates(data))
    ppo = data.get("ppo")
    if not operational and isinstance(ppo, dict):
        for key, default in operational_defaults()["ppo"].items():
            if key in ppo:  # an older configuration without the key hashes without it
                ppo[key] = default
        if isinstance(ppo.get("device"), str) and ppo["device"].startswith("cuda:"):
            ppo["device"] = "cuda"  # which GPU changes no random stream
    for key in ("name", "description", "lineage", "assumptions"):
        data.pop(key, None)
    # Added after runs were recorded: an empty table leaves the hash as it was, so those runs
    # still resume and count as the same trial as new runs of the same configuration.
    if not data.get("ppo", {}).get("policy_params"):
        data.get("ppo", {}).pop("policy_params", None)
    # env.data_holes too: runs recorded before it closed every trade at a hole, so "close" leaves
    # the hash as it was (the same trial as those runs) and "hold", a different episode, changes it
    if data.get("env", {}).get("data_holes") == "close":
        data["env"].pop("data_holes")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def restricted_to(data: Any, shape: Any) -> Any:
    """``data`` with only the table keys ``shape`` has too (arrays of tables item by item): a
    configuration as an older exitcore, which had not those keys yet, would have hashed it."""
    if isinstance(data, dict) and isinstance(shape, dict):
        return {k: restricted_to(v, shape[k]) for k, v in data.items() if k in shape}
    if isinstance(data, list) and isinstance(shape, list) and len(data) == len(shape) and all(isinstance(v, dict) for v in data):
        return [restricted_to(v, s) for v, s in zip(data, shape)]
    return data


def _drop_empty(data: Any) -> Any:
    """TOML has no null: drop None values (empty tables and arrays are kept)."""
    if isinstance(data, dict):
        return {k: _drop_empty(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_drop_empty(v) for v in data]
    return data


def resolve(
    file: ExperimentsFile,
    name: str,
    host: Any,
    budget: str | None = None,
    overrides: Sequence[str] = (),
    data: tuple[str, dict[str, Any]] | None = None,
) -> ResolvedExperiment:
    """Compose, validate and resolve experiment ``name``; every problem is reported at once."""
    merged, layers = compose(file, name, budget, overrides, data)
    full = merged["name"]
    leaf = f"experiments.{full}"
    source = str(file.file_of(leaf))  # the file that defines the experiment
    problems: list[tuple[str, str]] = []
    misspelt_extends = False  # an `extend = ...`: what it meant to inherit is missing, not wrong
    try:
        config = converter.structure(merged, ExperimentConfig)
    except Exception as exc:  # noqa: BLE001 - turned into located problems below
        located = locate_problems(exc, "", ExperimentConfig, origin=lambda rel: value_origin(layers, rel))
        for rel, msg in located:
            where = origin_of(layers, rel, leaf)
            msg, typo = _extends_typo(rel, where, msg)
            misspelt_extends = misspelt_extends or typo
            problems.append((where, msg))
        # Go on with the sections that are fine, so the components' parameters are checked
        # too and every problem is reported at once; a broken section's components are not.
        config, broken = _partial_config(merged)
    else:
        broken = set()

    def component(kind: ComponentKind, ref: ComponentRef | RewardRef, rel: str, name_key: str = "name") -> ResolvedComponent | None:
        where = origin_of(layers, f"{rel}.{name_key}", leaf)
        try:
            comp = host.get(kind, ref.name, where=where)
        except ConfigError as exc:
            problems.extend(exc.problems)
            return None
        params, ok = _structure_params(comp, ref.params, rel + ".params", layers, leaf, problems, f"{rel}.{name_key}")
        if not ok:
            return None
        return ResolvedComponent(comp, params, origin_of(layers, rel, leaf), getattr(ref, "weight", 1.0))

    def many(kind: ComponentKind, refs: Iterable[ComponentRef | RewardRef], rel: str) -> tuple[ResolvedComponent, ...]:
        out = []
        seen: set[str] = set()
        for i, ref in enumerate(refs):
            if ref is None:  # an entry the partial structuring could not read (reported already)
                continue
            if ref.name in seen:
                problems.append((origin_of(layers, f"{rel}[{i}].name", leaf), f"{kind.value} {ref.name!r} is listed twice"))
            seen.add(ref.name)
            resolved = component(kind, ref, f"{rel}[{i}]")
            if resolved is not None:
                out.append(resolved)
        return tuple(out)

    entry = component(ComponentKind.ENTRY, config.entry, ".entry") if "entry" not in broken else None
    features = many(ComponentKind.FEATURE, config.features, ".features")
    rewards = many(ComponentKind.REWARD, config.rewards, ".rewards")
    guards = many(ComponentKind.GUARD, config.guards, ".guards")
    masks = many(ComponentKind.MASK, config.masks, ".masks")
    evaluators = many(ComponentKind.EVALUATOR, config.eval.evaluators, ".eval.evaluators")
    data_source = None
    if config.data.source != "auto" and "data" not in broken:
        data_source = component(ComponentKind.DATA_SOURCE, ComponentRef(config.data.source, config.data.params), ".data", "source")
    policy, policy_params = None, None
    if "ppo" not in broken:
        try:
            policy = host.get(ComponentKind.POLICY, config.ppo.policy, where=origin_of(layers, ".ppo.policy", leaf))
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            policy_params, _ok = _structure_params(policy, config.ppo.policy_params, ".ppo.policy_params", layers, leaf, problems,
                                                  ".ppo.policy")
    # an empty list, not one whose entries failed above (each already reported), nor one that a
    # misspelt `extends` left empty (the typo is the problem: fixing it fills the list)
    replaced = _replaced_whole(file, merged["lineage"])
    if not config.features and "features" not in broken and not misspelt_extends:
        problems.append((origin_of(layers, ".features", leaf), "an experiment needs at least one feature" + replaced))
    if not config.rewards and "rewards" not in broken and not misspelt_extends:
        problems.append((origin_of(layers, ".rewards", leaf), "an experiment needs at least one reward term" + replaced))
    problems.extend(replaced_value_problems(layers))
    if problems:
        raise file.error(problems)
    assert entry is not None and policy is not None

    # Freeze every component's full parameters (defaults filled in) into the config.
    def refs(items: tuple[ResolvedComponent, ...], cls: type) -> list[Any]:
        out = []
        for rc in items:
            kw = {"name": rc.name, "params": _params_dict(rc)}
            if cls is RewardRef:
                kw["weight"] = rc.weight
            out.append(cls(**kw))
        return out

    config = attrs.evolve(
        config,
        entry=ComponentRef(entry.name, _params_dict(entry)),
        features=refs(features, ComponentRef),
        rewards=refs(rewards, RewardRef),
        guards=refs(guards, ComponentRef),
        masks=refs(masks, ComponentRef),
        eval=attrs.evolve(config.eval, evaluators=refs(evaluators, ComponentRef)),
        data=attrs.evolve(config.data, params=_params_dict(data_source)) if data_source else config.data,
        ppo=attrs.evolve(config.ppo, policy_params=unstructure(policy_params) if policy_params is not None else {}),
    )
    # a split error (an empty split, found only on the data) names each key where it was written
    split_origins = {key: _with_file(file, origin_of(layers, f".split.{key}", leaf)) for key in attrs.fields_dict(SplitConfig)}
    data_keys = [*(f.name for f in attrs.fields(DataConfig) if f.name != "params"),
                 *(f"params.{k}" for k in _params_dict(data_source) or config.data.params)]
    data_origins = {rel: _data_origin(file, origin_of(layers, f".data.{rel}", leaf), leaf) for rel in data_keys}
    return ResolvedExperiment(
        data_table=_data_table(file, layers, leaf),
        config=config,
        entry=entry,
        features=features,
        rewards=rewards,
        guards=guards,
        masks=masks,
        evaluators=evaluators,
        data_source=data_source,
        policy=policy,
        source=source,
        policy_params=policy_params,
        split_origins=split_origins,
        data_origins=data_origins,
    )


#: said of a problem of a value a later table replaces (:func:`replaced_value_problems`)
REPLACED_NOTE = " (overridden by a later table, but wrong wherever it takes effect)"
#: keys of a section whose values are components' parameters or lists of components: checked
#: against the component they belong to, where they take effect
_COMPONENT_KEYS = ("params", "policy_params", "evaluators")


def replaced_value_problems(layers: Sequence[Layer]) -> list[tuple[str, str]]:
    """Problems of the values a file's table wrote (``[defaults]``, an experiment, a budget) that
    a later layer replaces: each is checked on its own, its type and its key's rule, so that a
    wrong value is reported where it is written even while an override hides it (an ``n_envs =
    "64"`` under a budget that sets n_envs, one in ``[defaults]`` under experiments that all set
    it). Rules across keys (batch_size against n_envs x n_steps) are checked on the merged
    configuration only."""
    sections = {f.name: f.type for f in attrs.fields(ExperimentConfig) if attrs.has(f.type)}
    out: list[tuple[str, str]] = []
    for index, layer in enumerate(layers):
        if layer.label.startswith("--"):  # --set and --data: their values are the merged ones
            continue
        for section, cls in sections.items():
            table = layer.table.get(section)
            if not isinstance(table, dict):
                continue
            keys = attrs.fields_dict(cls)
            for key, value in table.items():
                rel = f".{section}.{key}"
                written = _written_at(layers, rel)
                if key not in keys or key in _COMPONENT_KEYS or written is None or written[0] == index:
                    continue  # unknown keys and the values that take effect are the merged check's
                try:
                    converter.structure({key: value}, cls)
                except Exception as exc:  # noqa: BLE001 - located below
                    if _breaks_a_rule(exc):  # the value passed its own checks; rules hold for the merge only
                        continue
                    out.extend((_join(layer.label, path), message + REPLACED_NOTE)
                               for path, message in locate_problems(exc, f".{section}", cls)
                               if path == rel or path.startswith(rel + "["))
    return out


def _data_table(file: ExperimentsFile, layers: Sequence[Layer], leaf: str) -> str:
    """The data table (with its file) that chose the experiment's source, else its path, else
    the experiment's own: where a parameter the source requires belongs (``--set`` and ``--data``
    are named by the loader themselves)."""
    for rel in (".data.source", ".data.params.path"):
        written = _written_at(layers, rel)
        if written is not None and not written[2].startswith("--") and written[2].endswith(rel.removeprefix(".data")):
            return _data_origin(file, written[2].removesuffix(rel.removeprefix(".data")), leaf)
    return _data_origin(file, f"{leaf}.data", leaf)


def _breaks_a_rule(exc: BaseException) -> bool:
    """Whether a structuring error is a rule across keys (:class:`~exitcore.config.RuleError`,
    raised after every key passed its own checks), however cattrs grouped it."""
    if isinstance(exc, RuleError):
        return True
    return isinstance(exc, BaseExceptionGroup) and any(_breaks_a_rule(sub) for sub in exc.exceptions)


def _data_origin(file: ExperimentsFile, path: str, leaf: str) -> str:
    """A data key's origin as a message names it: with its file, unless it is a ``--set`` or
    ``--data`` (errors found only when the data is read are no ConfigError the file adds itself to)."""
    if path.startswith("--"):
        return path
    from exitcore.toml_lines import file_key

    return file_key(file.file_of(path), path)


def _with_file(file: ExperimentsFile, path: str) -> tuple[str, str | None]:
    """``(path, the file it was written in)``; no file for a ``--set`` or ``--data``."""
    return path, (None if path.startswith("--") else str(file.file_of(path)))


def _extends_typo(rel: str, where: str, message: str) -> tuple[str, bool]:
    """An unknown key of an experiment's own table (``experiments.x.extend``) is told that
    ``extends`` is allowed there too (the loader reads it, so the config classes do not list
    it), with a "did you mean 'extends'?" for a near miss. Returns ``(message, whether the key
    is a misspelt extends)``."""
    key = rel.lstrip(".")
    if (not where.startswith("experiments.") or not message.startswith("unknown key ")
            or "." in key or "[" in key or key == "extends"):
        return message, False
    allowed = [a.name for a in attrs.fields(ExperimentConfig) if a.name not in NOT_SETTABLE]
    allowed.insert(allowed.index("assumptions") + 1 if "assumptions" in allowed else 0, "extends")
    message = unknown_key_message(key, allowed)
    return message, message.startswith(f"unknown key {key!r} (did you mean 'extends'?)")


def _replaced_whole(file: ExperimentsFile, chain: Sequence[str]) -> str:
    """For an experiment that is (or extends) a user's definition replacing a shipped one of
    the same name: that the shipped one is not inherited, and how to change one value of it;
    else ``""``. Appended to the "needs at least one ..." errors a table of a few overrides gets."""
    mine = [n for n in chain if f"experiments.{n}" in file.replaced]
    if not mine:
        return ""
    name = mine[-1]
    return (f"; experiments.{name} replaces the shipped {name} whole (nothing is inherited): to change one value, "
            f'define a new experiment with extends = "{name}"')


#: the fields of a section that choose components and hold their parameters: checked on their
#: own when another value of the section is bad (:func:`_partial_config`)
_COMPONENT_FIELDS = {"data": ("source", "params"), "ppo": ("policy", "policy_params"), "eval": ("evaluators",)}


def _partial_config(merged: dict[str, Any]) -> tuple[ExperimentConfig, set[str]]:
    """``merged`` structured section by section, for an experiment whose whole failed: every
    section that structures on its own is kept; of one that does not, its component fields
    (:data:`_COMPONENT_FIELDS`) are kept if they structure, on the section's defaults. The
    sections whose components cannot be checked are returned by name."""
    kept: dict[str, Any] = {}
    broken: set[str] = set()
    for field in attrs.fields(attrs.resolve_types(ExperimentConfig)):
        if field.name not in merged:
            continue
        value = merged[field.name]
        try:
            kept[field.name] = converter.structure(value, field.type)
            continue
        except Exception:  # noqa: BLE001 - reported already by the whole's structuring
            pass
        if field.name in _COMPONENT_LISTS:
            # entry by entry, so one entry's bad weight does not hide another's bad parameters
            kept[field.name] = _partial_list(value, _COMPONENT_LISTS[field.name])
            if not isinstance(value, list) or None in kept[field.name]:
                broken.add(field.name)
            continue
        try:
            keys = _COMPONENT_FIELDS[field.name]
            kept[field.name] = converter.structure({k: value[k] for k in keys if k in value}, field.type)
        except Exception:  # noqa: BLE001 - not a section with components, or those are bad too
            broken.add(field.name)
    return ExperimentConfig(**kept), broken


#: the component lists of an experiment and the class of their entries
_COMPONENT_LISTS = {"features": ComponentRef, "rewards": RewardRef, "guards": ComponentRef, "masks": ComponentRef}


def _partial_list(value: Any, cls: type) -> list[Any]:
    """The entries of a component list that structure as ``cls``: an entry with a bad value
    outside its name and parameters (a reward's weight) keeps those two, so its parameters
    are still checked; an entry without a usable name is ``None`` (its place kept, so the
    others keep their indices in messages). Not a list at all: ``[]``."""
    if not isinstance(value, list):
        return []
    out: list[Any] = []
    for item in value:
        ref = None
        for keys in (None, ("name", "params")):
            try:
                ref = converter.structure(item if keys is None else {k: item[k] for k in keys if k in item}, cls)
                break
            except Exception:  # noqa: BLE001 - reported already by the whole's structuring
                continue
        out.append(ref)
    return out


def _structure_params(
    comp: Component,
    params: dict[str, Any],
    rel: str,
    layers: Sequence[Layer],
    leaf: str,
    problems: list[tuple[str, str]],
    name_rel: str,
) -> tuple[Any, bool]:
    """``params`` structured with ``comp``'s params class, problems added to ``problems``.

    ``name_rel`` is where the component is named (``.entry.name``, ``.data.source``): a
    required parameter that is missing is blamed there when the name was given after the
    experiment's own table (a budget, ``--data``, ``--set``), else at the parameter's path in
    the experiment; the message says which component needs it and where to set it."""
    if comp.params is None:
        if params:
            for key in params:
                problems.append((origin_of(layers, f"{rel}.{key}", leaf), f"{comp.kind.value} {comp.name!r} takes no parameters"))
            return None, False
        return None, True
    try:
        structured = converter.structure(params, comp.params)
    except Exception as exc:  # noqa: BLE001
        for sub_rel, msg in locate_problems(exc, rel, comp.params, origin=lambda r: value_origin(layers, r)):
            key = sub_rel[len(rel) + 1:].split(".")[0].split("[")[0] if sub_rel.startswith(rel + ".") else None
            if msg == "required key is missing" and key is not None:
                problems.append(_missing_param(comp, sub_rel, name_rel, layers, leaf))
            elif key is not None and key not in params:  # the params class's own default, refused
                problems.append(_missing_param(comp, f"{rel}.{key}", name_rel, layers, leaf, refused=msg))
            else:
                problems.append((origin_of(layers, sub_rel, leaf), msg))
        return None, False
    # Once more from the plain values a run freezes in config.toml: a default the converter
    # would have read otherwise (`ratio: float = 1` reads back as 1.0) must be the value used
    # and hashed now, or the frozen file would hash otherwise and its run be refused as edited
    # (trial Y); a default the converter refuses (`n: int = "3"`) is the plugin's error.
    try:
        return converter.structure(unstructure(structured), comp.params), True
    except Exception as exc:  # noqa: BLE001
        for sub_rel, msg in locate_problems(exc, rel, comp.params):
            problems.append((origin_of(layers, name_rel, leaf),
                             f"{comp.kind.value.replace('_', ' ')} {comp.name!r}: the default of its parameter "
                             f"{sub_rel[len(rel) + 1:] or sub_rel!r} is not a valid value ({msg}): a bug in the "
                             f"plugin's params class ({comp.params.__qualname__}); set it explicitly meanwhile"))
        return None, False


def _missing_param(comp: Component, rel: str, name_rel: str, layers: Sequence[Layer], leaf: str,
                   refused: str = "") -> tuple[str, str]:
    """``(where, message)`` for the required parameter at ``rel`` that no layer set (see
    :func:`_structure_params`); ``refused``: it has a default, which its params class refuses
    (the message why: a plugin's way to make a parameter required, HistData's ``timezone``)."""
    what = f"{comp.kind.value.replace('_', ' ')} {comp.name!r}"
    key = rel.rsplit(".", 1)[-1]
    named = value_origin(layers, name_rel)
    own = max((i for i, layer in enumerate(layers) if layer.label == leaf), default=len(layers))
    default = f" (its default is refused: {refused})" if refused else ""
    if named is None or named[0] <= own:
        at = origin_of(layers, rel, leaf)
        by = f" (named at {origin_of(layers, name_rel, leaf)})" if named else " (the default)"
        if refused:
            return at, f"not set: {what}{by} needs {key!r}{default}"
        return at, f"required key is missing: {what}{by} needs {key!r}"
    label = layers[named[0]].label
    if label.startswith("--set"):
        hint = f"add --set {rel.lstrip('.')}=..."
        if name_rel == ".data.source":
            hint += f", or give the data as --data {comp.name}:PATH"
    elif label == "--data":
        hint = f"add it to --data as ?{key}=..."
    else:
        hint = f"set {label}{rel}"
    return origin_of(layers, name_rel, leaf), f"{what} needs the parameter {key!r}, which is not set{default}: {hint}"



def _params_dict(rc: ResolvedComponent | None) -> dict[str, Any]:
    if rc is None or rc.params is None:
        return {}
    return unstructure(rc.params)


def check_all(file: ExperimentsFile, host: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """Resolve every experiment (and every budget on top of it); return (ok names, problems).

    A file without experiments is a problem too: there is nothing to run, and its defaults and
    budgets are only validated through an experiment.
    """
    ok: list[str] = []
    problems: list[tuple[str, str]] = []
    if not file.names:
        problems.append(("", "defines no experiments: add an [experiments.NAME] table (see docs/experiments.md)"))
    for name in file.names:
        experiment_ok, fine = True, True
        for budget in [None, *file.budgets]:
            try:
                resolve(file, name, host, budget=budget)
            except ConfigError as exc:
                if budget is None:
                    problems.extend(exc.problems)
                    experiment_ok = False
                else:
                    # every budget is checked, also after a bad one or a bad experiment; when the
                    # experiment itself is broken, only what the budget's own table adds is new
                    own = [(p, m) for p, m in exc.problems if experiment_ok or p.startswith(f"budgets.{budget}")]
                    problems.extend((f"{p} (with budget {budget!r})", m) for p, m in own)
                fine = False
        if fine:
            ok.append(name)
    # identical problems reached through several experiments are reported once, and so is an
    # extends cycle met from each of its members (the same loop, started elsewhere)
    seen: set[Any] = set()
    unique = []
    for where, message in problems:
        # a value wrong where it takes effect in one experiment and replaced in another: once
        key: Any = (where, message.removesuffix(REPLACED_NOTE))
        if message.startswith("extends cycle: "):
            key = frozenset(message.removeprefix("extends cycle: ").split(" -> "))
        if key not in seen:
            seen.add(key)
            unique.append((where, message))
    return ok, unique


def flatten_config(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"ppo": {"n_envs": 8}}`` -> ``{"ppo.n_envs": 8}``; arrays of tables by index."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list) and all(isinstance(v, dict) for v in data):
        # arrays of tables by index; an empty one contributes no keys (nothing listed)
        for i, value in enumerate(data):
            out.update(flatten_config(value, f"{prefix}[{i}]"))
    else:
        out[prefix] = data
    return out


def config_diff(a: dict[str, Any], b: dict[str, Any], ignore: Sequence[str] = ("description", "assumptions", "lineage")) -> list[tuple[str, Any, Any]]:
    """Keys whose values differ between two resolved configs: ``[(key, a_value, b_value)]``.

    A key missing on one side shows ``None`` there. Purely descriptive keys are ignored. Split
    dates are compared, and shown, in their one spelling (:func:`with_canonical_dates`).
    """
    fa, fb = flatten_config(with_canonical_dates(a)), flatten_config(with_canonical_dates(b))
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k), fb.get(k)) for k in keys
            if fa.get(k) != fb.get(k) and k.split(".")[0].split("[")[0] not in ignore]
