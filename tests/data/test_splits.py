"""Time splits with a purge gap; a trade belongs to the split holding its whole window."""

from __future__ import annotations

import attrs
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from exitcore.config import SplitConfig
from exitcore.data.splits import assign_trades, make_splits, purge_gap, require_trades
from exitcore.errors import ConfigError, DataError


def _index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2019-01-07", periods=n, freq="15min", tz="UTC")


def test_fractions_with_purge() -> None:
    splits = make_splits(_index(1000), SplitConfig(train=0.6, validation=0.2, test=0.2), 50)
    assert [(s.name, s.start_bar, s.end_bar) for s in splits] == [
        ("train", 0, 600),
        ("validation", 650, 800),
        ("test", 850, 1000),
    ]


def test_default_has_no_validation_split() -> None:
    splits = make_splits(_index(1000), SplitConfig(), 10)
    assert [(s.name, s.start_bar, s.end_bar) for s in splits] == [("train", 0, 600), ("test", 610, 1000)]


def test_fractions_summing_below_one_leave_the_end_unused() -> None:
    splits = make_splits(_index(1000), SplitConfig(train=0.5, test=0.3), 0)
    assert splits[-1].end_bar == 800


def test_dates_win_over_fractions() -> None:
    idx = _index(4 * 96 * 10)  # ten days of M15
    cfg = SplitConfig(train=0.9, test=0.1, train_end="2019-01-10", validation_end="2019-01-13 12:00")
    splits = make_splits(idx, cfg, 8)
    train, val, test = splits
    assert idx[train.end_bar - 1] < pd.Timestamp("2019-01-10", tz="UTC") <= idx[train.end_bar]
    assert val.start_bar == train.end_bar + 8 and test.start_bar == val.end_bar + 8
    assert idx[val.end_bar] == pd.Timestamp("2019-01-13 12:00", tz="UTC") and test.end_bar == len(idx)


def test_purge_bars_below_the_minimum_is_an_error() -> None:
    assert purge_gap(SplitConfig(), 112) == 112
    assert purge_gap(attrs.evolve(SplitConfig(), purge_bars=200), 112) == 200
    with pytest.raises(ConfigError) as info:
        make_splits(_index(1000), attrs.evolve(SplitConfig(), purge_bars=50), 112)
    assert info.value.problems[0][0] == "split.purge_bars" and "minimum" in info.value.problems[0][1]


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        (SplitConfig(train=0.9, test=0.1), "split.test"),  # 10 bars, eaten by the purge gap
        (SplitConfig(train_end="2030-01-01"), "split.train_end"),  # test after the data
        (SplitConfig(train_end="2000-01-01"), "split.train_end"),  # nothing before train_end
    ],
)
def test_empty_split_names_its_key(cfg: SplitConfig, key: str) -> None:
    with pytest.raises(DataError) as info:
        make_splits(_index(100), cfg, 20)
    assert str(info.value).startswith(f"{key}: the ") and "split is empty" in str(info.value)


def test_date_errors() -> None:
    # SplitConfig rejects these itself (a FieldError or RuleError, both ValueErrors), so that
    # `experiments check` reports them at their TOML path (tests/test_experiments.py)
    with pytest.raises(ValueError, match="train_end"):
        make_splits(_index(100), SplitConfig(validation_end="2019-01-08"), 0)
    with pytest.raises(ValueError, match="expected validation_end after train_end"):
        make_splits(_index(100), SplitConfig(train_end="2019-01-08", validation_end="2019-01-07"), 0)
    with pytest.raises(ValueError, match="expected an ISO date"):
        make_splits(_index(100), SplitConfig(train_end="soon"), 0)


class _Table:
    """The three TradeTable fields assign_trades reads."""

    def __init__(self, signal, last, valid):
        self.signal_bar = torch.as_tensor(signal, dtype=torch.int64)
        self.last_bar = torch.as_tensor(last, dtype=torch.int64)
        self.valid = torch.as_tensor(valid, dtype=torch.bool)


def test_trade_windows_must_lie_inside() -> None:
    splits = make_splits(_index(1000), SplitConfig(train=0.6, test=0.4), 100)  # train [0, 600), test [700, 1000)
    lookback = 16
    table = _Table(
        signal=[16, 15, 500, 590, 716, 715, 900, 950, 300],
        last=[100, 100, 599, 600, 800, 800, 999, 1000, 400],
        valid=[True, True, True, True, True, True, True, True, False],
    )
    got = assign_trades(splits, table, lookback)
    assert got["train"].tolist() == [0, 2]  # 1 reaches before bar 0; 3 ends in the purge gap
    assert got["test"].tolist() == [4, 6]  # 5 reaches into the gap; 7 ends after the data; 8 invalid


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(300, 3000),
    train=st.floats(0.2, 0.7),
    val=st.sampled_from([0.0, 0.1, 0.2]),
    purge=st.integers(1, 60),
    lookback=st.integers(0, 30),
    seed=st.integers(0, 2**31),
)
def test_splits_and_assignment_properties(n, train, val, purge, lookback, seed) -> None:
    cfg = SplitConfig(train=train, validation=val, test=round(1.0 - train - val, 9))
    try:
        splits = make_splits(_index(n), cfg, purge)
    except DataError:
        return  # a split too small for the purge gap: reported, tested above
    for a, b in zip(splits, splits[1:]):
        assert b.start_bar - a.end_bar == purge  # exactly the gap, no overlap
    assert splits[0].start_bar == 0 and splits[-1].end_bar == n
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n, 400)
    last = s + 1 + rng.integers(0, 96, 400)
    table = _Table(s, last, rng.random(400) < 0.9)
    got = assign_trades(splits, table, lookback)
    seen = np.concatenate(list(got.values()))
    assert len(seen) == len(set(seen.tolist()))  # no trade in two splits
    for sp in splits:
        rows = got[sp.name]
        assert (s[rows] - lookback >= sp.start_bar).all() and (last[rows] < sp.end_bar).all()
        inside = (s - lookback >= sp.start_bar) & (last < sp.end_bar) & table.valid.numpy()
        assert set(rows.tolist()) == set(np.flatnonzero(inside).tolist())


def test_require_trades_names_every_short_split() -> None:
    require_trades({"train": 64, "test": 1}, {"train": 64, "test": 1})
    with pytest.raises(DataError) as info:
        require_trades({"train": 10, "test": 0}, {"train": 64, "test": 1}, {"train": "ppo.n_envs = 64"})
    text = str(info.value)
    assert "split.train: 10 usable trades, but at least 64 are needed (ppo.n_envs = 64)" in text
    assert "split.test: 0 usable trades, but at least 1 is needed" in text
    with pytest.raises(DataError, match="an entry strategy that trades more often than entry strategy 'quiet' from q 1.0$"):
        require_trades({"train": 0}, {"train": 1}, strategy="entry strategy 'quiet' from q 1.0")


@pytest.mark.parametrize(("text", "first"), [("2019-01-09", "2019-01-09"), ("2019/01/09", "2019-01-09"),
                                              ("2019-01-09T12:00+01:00", "2019-01-09 11:00")])
def test_split_dates_are_read_by_the_config_s_parser(text: str, first: str) -> None:
    """One reading of a split date: what `experiments check` accepts is what the splits use
    (slashes as earlier versions took them; an offset converted to UTC)."""
    idx = _index(4 * 96 * 10)  # from 2019-01-07, M15
    train, _test = make_splits(idx, SplitConfig(train_end=text), 8)
    assert idx[train.end_bar] == pd.Timestamp(first, tz="UTC")


def test_a_bare_year_or_year_month_is_its_first_day() -> None:
    from exitcore.config import parse_split_time

    assert pd.Timestamp(parse_split_time("2016")) == pd.Timestamp("2016-01-01", tz="UTC")
    assert pd.Timestamp(parse_split_time("2016-07")) == pd.Timestamp("2016-07-01", tz="UTC")
    # slashes for dashes, as in a full date (2016/07/01 was taken, 2016/07 refused)
    assert pd.Timestamp(parse_split_time("2016/07")) == pd.Timestamp("2016-07-01", tz="UTC")
    assert pd.Timestamp(parse_split_time("2016/07/01")) == pd.Timestamp("2016-07-01", tz="UTC")
    for bad in ("2016-13", "2016/13", "2016-/07"):
        with pytest.raises(ValueError, match="expected an ISO date"):
            parse_split_time(bad)
