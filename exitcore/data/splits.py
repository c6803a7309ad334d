"""Time splits: train / validation / test by timestamp, with a purge gap (design.md §2).

The bars are cut into consecutive, non-overlapping ranges of bar positions. Between two
splits lie ``purge`` bars that belong to neither, at least ``max_bars + feature lookback`` (the
longest an episode's window can reach back and forward), so no bar feeds both a training
episode and an evaluation episode.

* **Fractions** (``split.train``, ``split.validation``, ``split.test``) are fractions of the
  number of bars: train takes the first ``round(train * n)`` bars, validation the next
  ``round(validation * n)``, test the next ``round(test * n)`` (all the rest when the fractions
  sum to 1); each later split loses its first ``purge`` bars to the gap.
* **Dates** (``split.train_end``, ``split.validation_end``; ISO, UTC, exclusive) win when given:
  train is every bar before ``train_end``, validation (only with ``validation_end``) the bars
  from ``train_end`` to ``validation_end``, test the rest; again each later split starts
  ``purge`` bars late.

A trade belongs to a split only if its whole window ``[signal_bar - lookback, last_bar]`` lies
inside it (:func:`assign_trades`); trades straddling a boundary or the gap are used by none.
Windows and the purge are counted in bars, not hours, so a trade held across a hole in the data
(``env.data_holes = "hold"``) still reaches at most ``max_bars`` bars past its signal.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pandas as pd

from exitcore.config import SplitConfig, SplitOrigins, parse_split_time, split_origin, split_origin_of
from exitcore.errors import ConfigError, DataError
from exitcore.words import plural

SPLIT_NAMES = ("train", "validation", "test")


@attrs.frozen
class Split:
    """Bars ``[start_bar, end_bar)`` (``end_bar`` exclusive) of one split, by position in the bars."""

    name: str
    start_bar: int
    end_bar: int

    @property
    def n_bars(self) -> int:
        """Number of bars in the split."""
        return self.end_bar - self.start_bar

    @property
    def bars(self) -> slice:
        """The split as a slice of bar positions."""
        return slice(self.start_bar, self.end_bar)


def split_names(cfg: SplitConfig) -> tuple[str, ...]:
    """The splits ``cfg`` cuts the bars into: train and test, and validation only when
    ``validation`` > 0 (fractions) or ``validation_end`` is set (dates), as :func:`make_splits`."""
    dates = bool(cfg.train_end or cfg.validation_end)
    has_validation = bool(cfg.validation_end) if dates else cfg.validation > 0
    return SPLIT_NAMES if has_validation else ("train", "test")


def purge_gap(cfg: SplitConfig, min_purge_bars: int, where: str = "split", origins: SplitOrigins | None = None) -> int:
    """The purge gap to use: ``cfg.purge_bars``, or the minimum when it is 0.

    A non-zero ``purge_bars`` below the minimum (``max_bars + feature lookback``) is an error
    naming the key where it was written (``origins``: ``ResolvedExperiment.split_origins``): it
    would let one bar feed episodes of two splits.
    """
    if cfg.purge_bars == 0:
        return min_purge_bars
    if cfg.purge_bars < min_purge_bars:
        path, file = split_origin_of("purge_bars", origins, where)
        raise ConfigError(
            [
                (
                    path,
                    f"{cfg.purge_bars} is below the minimum max_bars + feature lookback = {min_purge_bars} "
                    "(0 uses the minimum)",
                )
            ],
            file,
        )
    return cfg.purge_bars


def make_splits(index: pd.DatetimeIndex, cfg: SplitConfig, min_purge_bars: int, where: str = "split",
                origins: SplitOrigins | None = None) -> list[Split]:
    """Cut the bars indexed by ``index`` into train / (validation) / test (see the module docstring).

    ``min_purge_bars`` is the contract's minimum gap, ``max_bars + feature lookback``. The
    validation split exists only when ``cfg.validation > 0`` (fractions) or
    ``cfg.validation_end`` is set (dates). An empty split is a :class:`DataError` naming its key
    where it was written (``origins``: ``ResolvedExperiment.split_origins``; ``split.KEY`` without
    them), and, for a date, how it lies against the data (after its last bar, before its first,
    too close to the end for the purge gap).
    """
    n = len(index)
    purge = purge_gap(cfg, min_purge_bars, where, origins)
    dates = bool(cfg.train_end or cfg.validation_end)
    if dates:
        bounds, keys = _date_bounds(index, cfg, where, origins)
    else:
        a = int(round(cfg.train * n))
        b = a + int(round(cfg.validation * n))
        total = cfg.train + cfg.validation + cfg.test
        c = n if abs(total - 1.0) < 1e-9 else min(n, b + int(round(cfg.test * n)))
        bounds = [a, b, c] if cfg.validation > 0 else [a, c]
        keys = ["train", "validation", "test"] if cfg.validation > 0 else ["train", "test"]
    names = ["train", "validation", "test"] if len(bounds) == 3 else ["train", "test"]
    splits = []
    start = 0
    for k, (name, end) in enumerate(zip(names, bounds)):
        first = start if k == 0 else start + purge
        if end - first <= 0:
            gap = f" after the purge gap of {purge} bars" if k and start < n else ""
            if dates:
                key, why = _date_problem(index, cfg, keys, bounds, k)
            else:
                key = keys[k]
                why = (f"the data has {n:,} bars from {_fmt(index, 0)} to {_fmt(index, n - 1)} UTC, and split.{key} = "
                       f"{getattr(cfg, key):g} gives it {end - start:,} of them{', all in the gap' if k else ''}; "
                       "use more data or move the split")
            raise DataError(f"{split_origin(key, origins, where)}: the {name} split is empty{gap}: {why}")
        splits.append(Split(name, first, end))
        start = end
    return splits


def _date_bounds(index: pd.DatetimeIndex, cfg: SplitConfig, where: str,
                 origins: SplitOrigins | None) -> tuple[list[int], list[str]]:
    # SplitConfig's validators have checked the dates parse, that validation_end comes with
    # train_end and after it (blamed where they were written)
    train_end = _date(cfg.train_end, split_origin_of("train_end", origins, where))
    a = int(index.searchsorted(train_end))
    keys = ["train_end"]
    bounds = [a]
    if cfg.validation_end:
        val_end = _date(cfg.validation_end, split_origin_of("validation_end", origins, where))
        bounds.append(int(index.searchsorted(val_end)))
        keys.append("validation_end")
    bounds.append(len(index))
    keys.append(keys[-1])  # the test split is whatever the last date leaves
    return bounds, keys


def _date_problem(index: pd.DatetimeIndex, cfg: SplitConfig, keys: list[str], bounds: list[int], k: int) -> tuple[str, str]:
    """``(key, why)`` for split ``k``, empty when cut by dates: the date to blame and how it lies
    against the bars (``2030-01-01 is after the last bar (2020-02-14 14:45 UTC)``)."""
    n = len(index)
    if n == 0:
        return keys[k], "the data has no bars; use more data"
    first, last = _fmt(index, 0), _fmt(index, n - 1)
    if k == 0:  # nothing before train_end
        return keys[0], (f"{cfg.train_end} is before the first bar ({first} UTC; the data has {n:,} bars, to "
                         f"{last}); use a later date or more data")
    start = bounds[k - 1]  # where the previous split ends: the date that starts this one
    # the first date at or after the end of the data is to blame (train_end after the last bar
    # empties validation and test both)
    blamed = next((keys[i] for i in range(k) if bounds[i] >= n), keys[k - 1])
    if start >= n:
        return blamed, (f"{getattr(cfg, blamed)} is after the last bar ({last} UTC; the data has {n:,} bars, from "
                        f"{first}); use an earlier date or more data")
    if k == len(bounds) - 1:
        return blamed, (f"{getattr(cfg, blamed)} leaves {n - start:,} bars after it (to the last bar, {last} UTC), "
                        "not more than the purge gap; use an earlier date or more data")
    # validation: between train_end and validation_end
    return keys[k], (f"{cfg.validation_end} is {bounds[k] - start:,} bars after split.train_end {cfg.train_end}, "
                     "not more than the purge gap; use a later validation_end")


def _date(text: str, origin: tuple[str, str | None]) -> pd.Timestamp:
    try:
        return pd.Timestamp(parse_split_time(text)).tz_convert("UTC")  # the config's parser: one reading
    except ValueError as exc:
        raise ConfigError([(origin[0], str(exc))], origin[1]) from None


def _fmt(index: pd.DatetimeIndex, i: int) -> str:
    return f"{index[i]:%Y-%m-%d %H:%M}" if len(index) else "-"


def assign_trades(splits: list[Split], table: Any, lookback: int) -> dict[str, np.ndarray]:
    """Trade rows of ``table`` (a :class:`exitcore.episodes.TradeTable`) per split.

    A valid trade belongs to a split when its window ``[signal_bar - lookback, last_bar]`` lies
    wholly inside it. Returns ``{split name: int64 array of trade rows}`` (sorted).
    """
    s = table.signal_bar.cpu().numpy()
    last = table.last_bar.cpu().numpy()
    valid = table.valid.cpu().numpy()
    out = {}
    for sp in splits:
        inside = valid & (s - lookback >= sp.start_bar) & (last < sp.end_bar)
        out[sp.name] = np.flatnonzero(inside).astype(np.int64)
    return out


def require_trades(
    counts: dict[str, int], minimum: dict[str, int], what: dict[str, str] | None = None, strategy: str = "",
    ppo: Any = None,
) -> None:
    """Raise a :class:`DataError` for every split with fewer trades than ``minimum[name]``.

    ``counts`` are the usable (decidable) trades per split; ``what`` optionally explains each
    minimum (``"ppo.n_envs = 64"``); ``strategy`` names the entry strategy that gave the trades
    (``"entry strategy 'donchian' from exitcore-entries 0.1.0"``), so the advice names it.
    """
    problems = []
    fewer_envs = ""
    for name, need in minimum.items():
        have = counts.get(name)
        if have is not None and have < need:
            why = f" ({what[name]})" if what and name in what else ""
            problems.append(f"split.{name}: {plural(have, 'usable trade')}, but at least {need:,} "
                            f"{'is' if need == 1 else 'are'} needed{why}")
            if "ppo.n_envs" in why and have >= 1:  # each training environment plays a trade of its own
                fewer_envs = f"fewer environments ({_fewer_envs(have, ppo)}), "
    if problems:
        raise DataError(
            "\n".join(problems)
            + f"\nuse more data, give the split a larger share, {fewer_envs}or an entry strategy that trades more often"
            + (f" than {strategy}" if strategy else "")
        )


def _fewer_envs(have: int, ppo: Any) -> str:
    """The ``--set`` that trains on ``have`` trades: a power of two of environments at most,
    with the minibatch cut to fit where ``ppo`` needs it (batch_size <= n_envs x n_steps;
    review AJ: the smoke budget's batch refused the n_envs suggested alone)."""
    n_envs = 1 << (have.bit_length() - 1)
    words = f"--set ppo.n_envs={n_envs}"
    if ppo is not None and ppo.batch_size > n_envs * ppo.n_steps:
        words += f" --set ppo.batch_size={n_envs * ppo.n_steps}"
    return words


def minimum_trades(cfg: Any, names: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """How many usable trades each split needs, and why.

    Training needs one distinct trade per environment at reset (``ppo.n_envs``); validation
    and test need at least one trade to evaluate.
    """
    minimum = {name: (cfg.ppo.n_envs if name == "train" else 1) for name in names}
    why = {name: (f"ppo.n_envs = {cfg.ppo.n_envs}" if name == "train" else "nothing to evaluate") for name in names}
    return minimum, why
