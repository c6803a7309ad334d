"""Strict JSON for evaluation results, which legitimately contain NaN and infinity.

A profit factor with no losing trade is ``inf``; a Sharpe ratio of a flat curve is NaN. Python's
``json`` would write the bare tokens ``NaN``/``Infinity``, which are not JSON and which other
tools reject. Here non-finite floats are written as the *strings* ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (the same spelling, quoted), and :func:`loads` turns them back into floats. numpy
scalars and arrays become plain numbers and lists, timestamps ISO-8601 strings. Stdlib only, so
the run registry can use it without importing numpy or pandas.

The command line prints every ``--json`` through :func:`dumps` (``exitcore.cli.output``), and
every time in it as :func:`iso_time` writes it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_jsonable(obj: Any, default: Callable[[Any], Any] | None = None) -> Any:
    """Plain JSON data for ``obj``: non-finite floats as strings, numpy/pandas values converted.

    ``default`` (as :func:`json.dumps`'s) converts a value of any other type (``str`` writes its
    text); without it such a value is a :class:`TypeError`."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            return "NaN"
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return float(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, default) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, default) for v in obj]
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    # a pandas Series or DataFrame keeps its labels ({label: value}; a frame {column: {label:
    # value}}): as a bare list (tolist) an evaluator's per-exit-reason means lost their names
    if hasattr(obj, "index") and callable(getattr(obj, "to_dict", None)):
        return to_jsonable(obj.to_dict(), default)
    # numpy scalars and arrays, without importing numpy
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist(), default)
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item(), default)
    if default is not None:
        return to_jsonable(default(obj))
    raise TypeError(f"cannot write {type(obj).__name__} as JSON: {obj!r}")


def from_jsonable(obj: Any) -> Any:
    """Inverse of :func:`to_jsonable` for numbers: ``"NaN"``/``"Infinity"``/``"-Infinity"`` become floats."""
    if isinstance(obj, str):
        return _NON_FINITE.get(obj, obj)
    if isinstance(obj, dict):
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    return obj


def dumps(obj: Any, default: Callable[[Any], Any] | None = None, **kwargs: Any) -> str:
    """Strict JSON text (``allow_nan=False``) for ``obj``; ``default`` as in :func:`to_jsonable`,
    other keyword arguments go to :func:`json.dumps`."""
    return json.dumps(to_jsonable(obj, default), allow_nan=False, **kwargs)


def loads(text: str) -> Any:
    """Parse JSON written by :func:`dumps`, restoring NaN and infinities."""
    return from_jsonable(json.loads(text))


def iso_time(value: Any) -> str | None:
    """``value`` (a datetime, a pandas Timestamp or ISO 8601 text) in the command line's one JSON
    time format: ISO 8601 in UTC with milliseconds and offset, ``2026-11-27T13:20:33.123+00:00``.
    A time without an offset is taken as UTC; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a time: {value!r}")
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp: its nanoseconds are not written anyway
        value = value.to_pydatetime(warn=False)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")
