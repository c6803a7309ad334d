"""The real data sets in ../shared/data (see its README): every one loads, validates, resamples to
M15, and yields trades and episodes; the HistData clocks agree with Dukascopy to a tenth of a pip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import exitcore.builtin.data_sources as builtin_data
import exitcore_entries
from exitcore.config import CostConfig, DataConfig
from exitcore.costs import CostModel
from exitcore.data.pipeline import data_config_from_spec, load_bars
from exitcore.data.resample import resample
from exitcore.episodes import MarketTensors, TradeTable

pytestmark = pytest.mark.needs_shared_data

#: the clock of each HistData year, as observed in ../shared/data/README.md
CLOCK = {2018: "America/New_York", 2019: "UTC-5,EU"}
PAIRS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")


@pytest.fixture(scope="module")
def host():
    from exitcore.plugins import PluginHost

    return PluginHost.create(autoload=False, plugins=[builtin_data, exitcore_entries])


@pytest.fixture(scope="module")
def duka2(shared_data: Path, host):
    return _load(str(shared_data / "eurusd_m15_dukascopy_2018_2020"), host)


def _load(spec: str, host, timeframe: str = "15min"):
    return load_bars(data_config_from_spec(spec, host, base=DataConfig(timeframe=timeframe)), host)


def _episodes(bars, host, data_holes: str = "hold"):
    from exitcore.components import ComponentKind, EntryContext
    from exitcore.config import EnvConfig, ExperimentConfig

    comp = host.get(ComponentKind.ENTRY, "donchian")
    trades = comp.build(comp.params(), EntryContext(ExperimentConfig(name="x"), EnvConfig(), CostConfig()))(bars)
    market = MarketTensors.from_bars(bars)
    table = TradeTable.build(trades, market, CostModel.from_config(CostConfig(), bars.pip_size), 96, data_holes)
    return trades, market, table


def test_dukascopy_2006_2010(shared_data: Path, host) -> None:
    from exitcore.data.validate import gap_report

    bars = _load(str(shared_data / "eurusd_m15_dukascopy_2006_2010"), host)
    assert len(bars) == 125_261 and bars.findings == ()
    assert (bars.start, bars.end) == (pd.Timestamp("2006-01-01 22:00", tz="UTC"), pd.Timestamp("2010-12-31 21:45", tz="UTC"))
    gaps = gap_report(bars, max_gap_bars=4)
    assert (gaps.count, gaps.weekend, gaps.over_limit_weekday) == (261, 260, 1)  # the 2009-08-19 outage
    trades, market, table = _episodes(bars, host)
    assert len(trades) > 5000 and int(table.decidable.sum()) > 4000
    # the 5-hour hole of 2009-08-18 22:00 -> 2009-08-19 03:00: trades are held across it by
    # default (env.data_holes = "hold"); with "close" no episode spans it
    hole = bars.frame.index.get_loc(pd.Timestamp("2009-08-18 22:00", tz="UTC"))

    def spanning(table):
        e, last, ok = table.entry_bar.numpy(), table.last_bar.numpy(), table.valid.numpy()
        return int(((e[ok] <= hole) & (last[ok] > hole)).sum())

    assert spanning(table) > 0 and bool(table.valid.all())
    _, _, closing = _episodes(bars, host, "close")
    assert spanning(closing) == 0 and not bool(closing.valid.all())
    raw = 40 * len(bars)  # int64 timestamp + four float64 prices
    assert market.nbytes() <= 2 * raw


def test_dukascopy_2018_2020_tickstory_layout(duka2, host) -> None:
    assert len(duka2) == 51_911 and duka2.symbol == "EURUSD"
    assert (duka2.start, duka2.end) == (pd.Timestamp("2018-01-15 14:00", tz="UTC"), pd.Timestamp("2020-02-14 14:45", tz="UTC"))
    _, _, table = _episodes(duka2, host)
    assert int(table.decidable.sum()) > 1500


@pytest.mark.parametrize("year", [2018, 2019])
def test_histdata_eurusd_agrees_with_dukascopy(shared_data: Path, host, duka2, year: int) -> None:
    path = shared_data / "histdata_m1_2018_2019" / f"HISTDATA_COM_ASCII_EURUSD_M1{year}.zip"
    m1 = _load(f"{path}?timezone={CLOCK[year]}", host, timeframe="1min")
    m15 = resample(m1, "15min")
    assert len(m15) == {2018: 24_904, 2019: 24_849}[year]
    dups = [f for f in m1.findings if "repeat an earlier row" in f.message]
    if year == 2019:  # the EU-DST-switch evening hour, written twice
        assert len(dups) == 1 and dups[0].message.startswith("60 row(s)") and "2019-10-28 00:00 UTC" in dups[0].message
    else:
        assert dups == []
    common = duka2.frame.join(m15.frame, how="inner", suffixes=("_d", ""))
    diff = (common["close_d"] - common["close"]).abs() / 0.0001
    assert len(common) > 23_000
    assert diff.median() <= 0.1 + 1e-9
    assert diff.quantile(0.99) <= 1.0 + 1e-9


def test_histdata_2019_on_the_new_york_clock_is_visibly_wrong(shared_data: Path, host, duka2) -> None:
    path = shared_data / "histdata_m1_2018_2019" / "HISTDATA_COM_ASCII_EURUSD_M12019.zip"
    m15 = _load(f"{path}?timezone=America/New_York", host)
    common = duka2.frame.join(m15.frame, how="inner", suffixes=("_d", ""))
    assert ((common["close_d"] - common["close"]).abs() / 0.0001).quantile(0.99) > 5  # README: 9.7 pips


@pytest.mark.parametrize("pair", PAIRS)
def test_every_histdata_file_loads_with_its_clock(shared_data: Path, host, pair: str) -> None:
    folder = shared_data / "histdata_m1_2018_2019"
    spec = f"{folder}/*{pair}*.zip?timezone=America/New_York;2019-01-01=UTC-5,EU"
    bars = _load(spec, host)
    assert bars.symbol == pair and bars.timeframe == "15min"
    assert bars.start.year == 2018 and bars.end.year == 2019
    assert bars.pip_size == (0.01 if pair in ("USDJPY", "XAUUSD") else 0.0001)
    assert sum("repeat an earlier row" in f.message for f in bars.findings) == 1  # the 2019 file's hour
    trades, _, table = _episodes(bars, host)
    assert int(table.decidable.sum()) > 1000
    if pair == "XAUUSD":  # a daily 17:00-18:00 New York break: about 200 weekday gaps a year
        from exitcore.data.validate import gap_report

        assert gap_report(bars, max_gap_bars=2).over_limit_weekday > 300


def test_no_fabricated_bars_in_histdata_resampling(shared_data: Path, host) -> None:
    path = shared_data / "histdata_m1_2018_2019" / "HISTDATA_COM_ASCII_EURUSD_M12018.zip"
    m1 = _load(f"{path}?timezone=America/New_York", host, timeframe="1min")
    m15 = resample(m1, "15min")
    bins = np.unique(m1.frame.index.asi8 // (900 * 10**9))
    assert len(m15) == len(bins)
    assert not (m15.frame.index.day_of_week == 5).any()  # Saturday stays empty
