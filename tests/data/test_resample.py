"""Resampling: correct OHLC aggregation, no bar fabricated, composable, refuses impossible targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exitcore.data.resample import resample
from exitcore.errors import DataError
from .helpers import MIN_NS, bars_from, grid_times, random_ohlc

series = st.builds(
    lambda n, seed, hole: (n, seed, hole),
    st.integers(1, 400),
    st.integers(0, 2**31),
    st.sampled_from([0.0, 0.3, 0.9]),
)


def _bars(n: int, seed: int, hole: float, volume: bool = True):
    rng = np.random.default_rng(seed)
    ts = grid_times(n, rng, hole_p=hole)
    values = random_ohlc(n, rng)
    if volume:
        values["volume"] = rng.integers(0, 50, n).astype(float)
        values["spread"] = rng.uniform(0.1, 2.0, n)
    return bars_from(ts, values)


@settings(max_examples=60, deadline=None)
@given(series, st.sampled_from(["5min", "15min", "1h"]))
def test_matches_a_reference_groupby_and_fabricates_nothing(s, target: str) -> None:
    bars = _bars(*s)
    out = resample(bars, target)
    f = bars.frame
    ref = f.groupby(f.index.floor(target)).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"), spread=("spread", "mean"),
    )
    # exactly one output bar per non-empty bin: holes stay holes
    assert list(out.frame.index.asi8) == list(ref.index.as_unit("ns").asi8)
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(out.frame[col].to_numpy(), ref[col].to_numpy())
    np.testing.assert_allclose(out.frame["spread"].to_numpy(), ref["spread"].to_numpy(), rtol=1e-12)
    o, h, l, c = (out.frame[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (h >= np.maximum(o, c)).all() and (l <= np.minimum(o, c)).all()
    assert out.timeframe == target and (np.diff(out.frame.index.asi8) > 0).all()


@settings(max_examples=40, deadline=None)
@given(series)
def test_resampling_composes(s) -> None:
    bars = _bars(*s)
    direct = resample(bars, "15min").frame
    staged = resample(resample(bars, "5min"), "15min").frame
    pd.testing.assert_frame_equal(direct.drop(columns="spread"), staged.drop(columns="spread"))


def test_same_timeframe_is_identity() -> None:
    bars = _bars(50, 1, 0.2)
    assert resample(bars, "1min") is bars


@pytest.mark.parametrize(
    ("src", "target", "phrase"),
    [("15min", "1min", "whole multiple"), ("15min", "20min", "whole multiple"), ("15min", "fortnight", "expected a timeframe")],
)
def test_impossible_targets_name_the_key(src: str, target: str, phrase: str) -> None:
    rng = np.random.default_rng(0)
    bars = bars_from(grid_times(20, rng, step_ns=15 * MIN_NS), random_ohlc(20, rng), timeframe=src)
    with pytest.raises(DataError, match=phrase) as info:
        resample(bars, target)
    assert str(info.value).startswith("data.timeframe:")


def test_bars_off_the_utc_grid_cannot_be_resampled() -> None:
    rng = np.random.default_rng(0)
    ts = grid_times(20, rng, step_ns=60 * MIN_NS) + 30 * MIN_NS  # hourly bars at :30 (an offset clock)
    bars = bars_from(ts, random_ohlc(20, rng), timeframe="1h")
    with pytest.raises(DataError, match="not on the UTC 1h grid"):
        resample(bars, "4h")


def test_partial_bins_are_reported() -> None:
    rng = np.random.default_rng(3)
    ts = np.r_[np.arange(15), np.arange(15, 30)[::2]] * MIN_NS + grid_times(1, rng)[0] // (15 * MIN_NS) * 15 * MIN_NS
    out = resample(bars_from(ts, random_ohlc(len(ts), rng)), "15min")
    assert len(out) == 2
    assert "1 of 2 bars were built from fewer than 15 source bars" in out.findings[-1].message
