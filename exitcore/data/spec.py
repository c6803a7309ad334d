"""The ``--data`` string: ``[SOURCE:]PATH[?KEY=VALUE&KEY=VALUE...]``.

* ``SOURCE`` names a data-source component (``exitcore plugins`` lists them). Without it every
  source is asked in turn (``sniff``) and the first that recognises the file loads it.
* ``PATH`` is a file, a folder or a glob (``data/EURUSD_*.csv.gz``); ``.gz`` and ``.zip`` are
  read directly. The synthetic source takes no path: ``synthetic:?years=5&seed=1``.
* ``KEY=VALUE`` pairs are the source's parameters, typed by the source's parameter class:
  numbers, ``true``/``false``, strings, and tables written ``KEY=a:b,c:d``
  (``columns=time:Date,close:Last``). Values may be percent-encoded (``%26`` for ``&``).

Examples::

    ../shared/data/eurusd_m15_dukascopy_2006_2010
    histdata:../shared/data/histdata_m1_2018_2019/*EURUSD*.zip?timezone=America/New_York;2019-01-01=UTC-5,EU
    csv:my_bars.csv?columns=time:Datetime,close:Last&timezone=UTC+2

This module is pure Python: it is used while plugins register and while the CLI parses options.
"""

from __future__ import annotations

import glob
import os
import re
import types
import typing
from typing import Any
from urllib.parse import unquote

import attrs

from exitcore.errors import ConfigError

_SOURCE = re.compile(r"^([A-Za-z_][\w-]+):(?!//)(.*)$", re.DOTALL)
# the query starts at the first "?" followed by "key=" (a glob's "?" wildcard is not)
_QUERY = re.compile(r"\?(?=[A-Za-z_]\w*=)")
_KEY = re.compile(r"^[A-Za-z_]\w*$")


@attrs.frozen
class DataSpec:
    """A parsed ``--data`` string: optional ``source``, ``path`` (may be empty) and raw ``options``."""

    source: str
    path: str
    options: dict[str, str]
    text: str


def option_where(where: str, key: str) -> str:
    """How messages name the option ``key`` of a spec given at ``where``: ``--data.timezone``
    for an option's value (``--data``), ``SOURCE ?timezone=`` for an argument (``SOURCE``)."""
    return f"{where}.{key}" if where.startswith("-") else f"{where} ?{key}="


def parse_spec(text: str, where: str = "--data") -> DataSpec:
    """Split a ``--data`` string into source, path and options (values stay strings)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError([(where, "expected [SOURCE:]PATH[?KEY=VALUE&...], got an empty string")])
    body = text.strip()
    source = ""
    m = _SOURCE.match(body)
    if m:
        source, body = m.group(1), m.group(2)
    path, query = body, ""
    q = _QUERY.search(body)
    if q:
        path, query = body[: q.start()], body[q.end() :]
    options: dict[str, str] = {}
    for item in query.split("&") if query else []:
        key, sep, value = item.partition("=")
        if not sep or not _KEY.match(key):
            raise ConfigError([(where, f"option {item!r} must read KEY=VALUE")])
        if key in options:
            raise ConfigError([(option_where(where, key), "given twice")])
        options[key] = unquote(value)
    return DataSpec(source=source, path=path, options=options, text=text)


def _absolute_if_local(path: str) -> str:
    """A path to local files made absolute, so that a run's frozen config still finds them
    from another directory (audit, report and --resume reload the data). Anything that names
    no existing local file or glob match (a URL, a table name of a plugin source) is kept."""
    local = os.path.expanduser(path)
    if "://" not in path and (os.path.exists(local) or glob.glob(local)):
        return os.path.abspath(local)
    return path


def spec_params(spec: DataSpec, params_cls: type | None, where: str = "--data") -> dict[str, Any]:
    """The ``params`` table for a source from ``spec``: its path plus its typed options.

    Unknown keys and values that do not fit the field's type are :class:`ConfigError` at
    ``--data.KEY`` (:func:`option_where`). The result is plain data, validated later like a TOML table.
    """
    fields = _fields(params_cls)
    out: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    if spec.path:
        if "path" not in fields:
            # "synthetic:seed=3,years=1" reads as a path: say where options go instead
            hint = "; options go after a '?': SOURCE:?KEY=VALUE&KEY=VALUE" if "=" in spec.path else ""
            problems.append((where, f"this source takes no path, got {spec.path!r}{hint}"))
        else:
            out["path"] = _absolute_if_local(spec.path)
    from exitcore.config import unknown_key_message

    for key, raw in spec.options.items():
        if key not in fields or key == "path":
            problems.append((option_where(where, key), unknown_key_message(key, [f for f in fields if f != "path"])))
            continue
        try:
            out[key] = _coerce(raw, fields[key])
        except ValueError as exc:
            problems.append((option_where(where, key), str(exc)))
    if problems:
        raise ConfigError(problems)
    return out


def _fields(params_cls: type | None) -> dict[str, Any]:
    if params_cls is None:
        return {}
    attrs.resolve_types(params_cls)
    return {a.name: a.type for a in attrs.fields(params_cls)}


def _coerce(raw: str, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        typ = args[0] if args else str
        origin = typing.get_origin(typ)
    if typ is bool:
        low = raw.strip().lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if typ is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if typ is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    if origin is dict:
        table: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in raw.split(","))):
            k, sep, v = pair.partition(":")
            if not sep or not k.strip():
                raise ValueError(f"expected a table written KEY:VALUE,KEY:VALUE, got {raw!r}")
            table[k.strip()] = v.strip()
        return table
    if origin is list:
        return [p.strip() for p in raw.split(",") if p.strip()]
    return raw
