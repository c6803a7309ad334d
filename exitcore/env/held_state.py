"""Per-bar data a component keeps between builds, which the look-ahead audit cannot poison.

The audit rebuilds every feature, mask and guard from its factory on poisoned bars and compares
what they compute (:mod:`exitcore.env.causality`). A factory that serves a table it computed on
an earlier build (a module-level cache keyed by the experiment or the data path) returns the
same table for the poisoned bars, so a leak inside it passes every comparison: a trial's feature
caching the next bar's move passed the audit and scored a Sharpe of 3.4 after one update.

This check builds each component again on bars whose second half is NaN and looks through what
the built function can reach (its closure, defaults, the globals its code names, bound
objects, containers) for arrays with one row per bar. An array of that length that the rebuilt
component shares with the original one, and that is not the engine's own market or trade
tensors, was computed before the bars changed: the component keeps per-bar state the audit
cannot see. A cache that hands out copies, or hides in ``functools.lru_cache``, is not found;
docs/plugins.md says to keep no state between builds.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

#: how deep the search follows references from a built function
MAX_DEPTH = 6
_ATOMS = (str, bytes, int, float, complex, bool, type(None), types.ModuleType, type)


def held_arrays(roots: Sequence[Any], n_bars: int, skip: set[int], slack: int = 2,
                lengths: Sequence[int] = (), keep: list[Any] | None = None) -> dict[int, tuple[str, tuple[int, ...]]]:
    """``{storage address: (where, shape)}`` of the per-bar arrays that any of ``roots`` (a
    built function, a FeatureSpec) can reach (``skip``: storage addresses to ignore, the
    engine's tensors); ``where`` is the path to it (``table``, ``self.cache['x']``). An array is
    per-bar when a dimension lies in ``[n_bars - slack, n_bars + 2]``: a table of moves
    (``np.diff``: ``n_bars - 1`` rows), of windows (``n_bars - w + 1``, within the experiment's
    longest lookback: the caller's ``slack``) or ``[F, n_bars]`` holds per-bar data as surely
    as one of ``n_bars`` rows; a constant table of another length (a lookup grid) is not one.
    ``lengths``: other first dimensions that count (an entry strategy's trade count: a kept
    trade list). pandas Series and DataFrames are looked into column by column. ``keep``
    collects the arrays found: the caller keeps them alive while it compares addresses (a freed
    array's address may be reused by a new one, which would look like the same array)."""
    found: dict[int, tuple[str, tuple[int, ...]]] = {}
    seen: set[int] = set()
    # also holds the temporaries the walk makes (a DataFrame's column Series): `seen` is by id,
    # and a freed temporary's id is reused, which would skip a later object
    alive = keep if keep is not None else []
    for root in roots:
        _walk(root, "", 0, seen, found, (n_bars, max(2, slack), tuple(lengths)), skip, alive)
    return found


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def storage_of(array: Any) -> int:
    """The address of the memory an array lives in (views and numpy/torch sharing agree); 0 for
    a tensor without one storage (sparse, nested)."""
    if isinstance(array, torch.Tensor):
        try:
            return array.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):
            return 0
    base = array
    while isinstance(base.base, np.ndarray):
        base = base.base
    return base.__array_interface__["data"][0]


def tensor_storages(obj: Any) -> set[int]:
    """Storage addresses of every tensor attribute of ``obj`` (a MarketTensors, a TradeTable)."""
    values = vars(obj).values() if hasattr(obj, "__dict__") else (getattr(obj, a.name) for a in obj.__attrs_attrs__)
    return {storage_of(v) for v in values if isinstance(v, torch.Tensor) and v.numel() > 0}


def _per_bar(shape: Sequence[int], bars: tuple[int, int, tuple[int, ...]]) -> bool:
    """Whether an array of ``shape`` holds per-bar data (see :func:`held_arrays`; ``bars``: the
    bar count, the slack below it and the other first dimensions that count)."""
    n_bars, slack, lengths = bars
    if len(shape) and int(shape[0]) in lengths:
        return True
    return n_bars > 1 and any(n_bars - slack <= int(d) <= n_bars + 2 for d in shape)


def _walk(obj: Any, path: str, depth: int, seen: set[int], found: dict[int, tuple[str, tuple[int, ...]]],
          bars: tuple[int, int, tuple[int, ...]], skip: set[int], keep: list[Any]) -> None:
    if depth > MAX_DEPTH or id(obj) in seen or isinstance(obj, _ATOMS):
        return
    seen.add(id(obj))

    def record(address: int, shape: tuple[int, ...], owner: Any) -> None:
        if address and address not in skip and _per_bar(shape, bars):
            found.setdefault(address, (path or "the function", shape))
            keep.append(owner)

    if isinstance(obj, (torch.Tensor, np.ndarray)):
        try:
            shape = tuple(int(d) for d in obj.shape)
        except (RuntimeError, TypeError, ValueError):  # a nested tensor has no one shape
            return
        if len(shape) >= 1 and getattr(obj, "device", None) != torch.device("meta"):
            record(storage_of(obj), shape, obj)
        return
    if type(obj).__name__ in ("MarketTensors", "TradeTable", "BuildContext"):
        return  # what the audit poisons and rebuilds itself
    if isinstance(obj, torch.nn.Module):
        return
    step = lambda child, where: _walk(child, where, depth + 1, seen, found, bars, skip, keep)  # noqa: E731
    if isinstance(obj, pd.MultiIndex):
        for i, level in enumerate(obj.levels):
            step(level, f"{path}.levels[{i}]")
        for i, codes in enumerate(obj.codes):
            step(codes, f"{path}.codes[{i}]")
        return
    if isinstance(obj, (pd.Series, pd.Index)):
        # the stored values, never a converted copy: a temporary's address is reused once it is
        # freed, so two unrelated conversions could look like one array held twice
        try:
            values = obj.array
        except (TypeError, ValueError, NotImplementedError):
            return
        keep.append(values)
        arrow = getattr(values, "_pa_array", None)  # pyarrow-backed (pandas 3's strings): its buffers
        if arrow is not None:
            for chunk in getattr(arrow, "chunks", ()):
                for buffer in chunk.buffers():
                    if buffer is not None and buffer.size:
                        record(buffer.address, (len(values),), chunk)
            return
        for name in ("_ndarray", "_data", "_codes", "sp_values"):  # numpy-backed, masked, categorical, sparse
            if isinstance(getattr(values, name, None), np.ndarray):
                step(getattr(values, name), path)
                break
        return
    if isinstance(obj, pd.DataFrame):
        for i in range(obj.shape[1]):  # by position: a repeated name would give a frame
            column = obj.iloc[:, i]
            keep.append(column)
            step(column, f"{path}[{obj.columns[i]!r}]")
        return
    if isinstance(obj, types.FunctionType):
        for name, cell in zip(obj.__code__.co_freevars, obj.__closure__ or ()):
            try:
                step(cell.cell_contents, _join(path, name))
            except ValueError:  # an empty cell
                continue
        for i, default in enumerate(obj.__defaults__ or ()):
            step(default, _join(path, f"default {i}"))
        for name in obj.__code__.co_names:  # the globals the code reads: where a module cache lives
            if name in obj.__globals__:
                step(obj.__globals__[name], _join(path, name))
    elif isinstance(obj, types.MethodType):
        step(obj.__self__, path)
        step(obj.__func__, path)
    elif isinstance(obj, functools.partial):
        step(obj.func, path)
        for i, arg in enumerate(obj.args):
            step(arg, _join(path, f"argument {i}"))
        for key, value in obj.keywords.items():
            step(value, _join(path, key))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            step(value, f"{path}[{key!r}]")
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, value in enumerate(obj):
            step(value, f"{path}[{i}]")
    else:
        attributes = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                attributes[name] = getattr(obj, name)
        for name, value in attributes.items():
            step(value, _join(path, name))
