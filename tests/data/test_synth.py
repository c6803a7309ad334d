"""The synthetic generator: deterministic, valid, and with the stylised facts of FX returns."""

from __future__ import annotations

import attrs
import numpy as np
import pandas as pd
import pytest

from exitcore.data.clocks import parse_clock
from exitcore.data.source_params import SynthParams
from exitcore.data.synth import generate
from exitcore.data.validate import assemble_bars
from .helpers import chunk


@pytest.fixture(scope="module")
def three_years():
    return generate(SynthParams())


def test_deterministic_per_seed() -> None:
    a = generate(SynthParams(years=0.2, seed=5))
    b = generate(SynthParams(years=0.2, seed=5))
    c = generate(SynthParams(years=0.2, seed=6))
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert not a.frame["close"].equals(c.frame["close"])
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_column_hashes_see_the_columns_the_content_hash_leaves_out() -> None:
    """The content hash covers timestamps and OHLC only: a feature reading volume trains on
    other data when volume differs, which resume, audit and compare see by these hashes."""
    from exitcore.data.bars import column_differences

    a = generate(SynthParams(years=0.1, seed=5))
    frame = a.frame.copy()
    frame.loc[frame.index[7], "volume"] += 1
    other = attrs.evolve(a, frame=frame)
    assert other.content_hash() == a.content_hash()
    then, now = a.column_hashes(), other.column_hashes()
    assert set(then) == {"volume"} and then["volume"] != now["volume"]
    assert column_differences(then, now) == "'volume' differs"
    assert column_differences(then, then) == "" and column_differences(None, now) == ""
    tagged = attrs.evolve(a, frame=a.frame.assign(session=["asia"] * len(a)).drop(columns="volume"))
    assert column_differences(then, tagged.column_hashes()) == "'volume' is gone, 'session' is new"
    # the same values under another name, or another dtype, are other data
    renamed = attrs.evolve(a, frame=a.frame.rename(columns={"volume": "spread"}))
    assert column_differences(then, renamed.column_hashes()) == "'volume' is gone, 'spread' is new"
    # values, not how pandas stores them: one file read by another pandas or format hashes the same
    as_int = attrs.evolve(a, frame=a.frame.astype({"volume": "int64"}))
    assert as_int.column_hashes() == then
    text = tagged.column_hashes()["session"]
    for dtype in ("category", "string"):
        assert attrs.evolve(tagged, frame=tagged.frame.astype({"session": dtype})).column_hashes()["session"] == text
    with pytest.raises(ValueError, match=r"columns named twice: \['volume'\]"):
        attrs.evolve(a, frame=pd.concat([a.frame, a.frame[["volume"]]], axis=1))
    from exitcore.data.bars import columns_digest

    assert columns_digest({}) == "" and columns_digest(then) != columns_digest(now)


def test_passes_validation(three_years) -> None:
    f = three_years.frame
    rebuilt = assemble_bars(
        [chunk(f.index.asi8, {k: f[k].to_numpy() for k in ("open", "high", "low", "close")})],
        clock=parse_clock("UTC"),
        source="synthetic",
    )
    assert rebuilt.timeframe == "15min" and len(rebuilt) == len(f) and rebuilt.findings == ()


def test_fx_week_and_weekend_gaps(three_years) -> None:
    idx = three_years.frame.index
    assert (idx.day_of_week != 5).all()  # no Saturday bars
    week_open = idx[np.r_[False, np.diff(idx.asi8) > 86400e9]]
    assert set(week_open.day_of_week) == {6} and set(week_open.hour) == {21, 22}  # Sunday 17:00 New York
    assert 150 <= len(week_open) <= 160  # one per week over three years


def test_level_pip_and_range_are_eurusd_like(three_years) -> None:
    f = three_years.frame
    assert three_years.pip_size == 0.0001 and three_years.symbol == "EURUSD"
    assert 0.8 < f["close"].min() and f["close"].max() < 1.5
    median_range = ((f["high"] - f["low"]) / 0.0001).median()
    assert 3 < median_range < 12  # real EURUSD M15: about 5 to 15 pips
    assert (f.round(5) == f).all().all()  # quoted in tenths of a pip


def test_stylised_facts(three_years) -> None:
    r = np.log(three_years.frame["close"]).diff().dropna()
    assert r.kurt() > 5  # fat tails
    a = np.abs(r.to_numpy())
    for lag in (1, 10, 100):
        assert np.corrcoef(a[:-lag], a[lag:])[0, 1] > 0.05  # volatility clustering
    by_hour = r.groupby(r.index.hour).std()
    assert by_hour.loc[[13, 14, 15]].mean() > 1.8 * by_hour.loc[[3, 4, 20]].mean()  # intraday seasonality
    annual = r.std() * np.sqrt(len(r) / 3.0)
    assert 0.05 < annual < 0.12


def test_other_timeframe_and_params() -> None:
    b = generate(attrs.evolve(SynthParams(years=0.1), timeframe="1h", start_price=140.0, pip_size=0.01, tick_volume=0))
    assert b.timeframe == "1h" and (b.frame.index.minute == 0).all()
    assert "volume" not in b.frame and 100 < b.frame["close"].iloc[0] < 180
    assert (b.frame.round(3) == b.frame).all().all()


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="tail_df"):
        SynthParams(tail_df=2.0)
    with pytest.raises(ValueError, match="start"):
        SynthParams(start="2015-13-01")
    with pytest.raises(ValueError, match="vol_of_vol"):
        SynthParams(vol_halflife_days=[1.0], vol_of_vol=[0.1, 0.2])
