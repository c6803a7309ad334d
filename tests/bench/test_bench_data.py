"""Benchmarks: loading + validating real data, building episodes, generating synthetic data.

Run timed with ``python -m pytest tests/bench/test_bench_data.py --benchmark-enable``; in the
normal test run (``--benchmark-disable``) each runs once as a test. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import exitcore.builtin.data_sources as builtin_data
import exitcore_entries
from exitcore.components import ComponentKind, EntryContext
from exitcore.config import CostConfig, DataConfig, EnvConfig, ExperimentConfig, SplitConfig
from exitcore.costs import CostModel
from exitcore.data.pipeline import load_bars, load_source_bars
from exitcore.data.source_params import SynthParams
from exitcore.data.splits import assign_trades, make_splits
from exitcore.data.synth import generate
from exitcore.episodes import MarketTensors, TradeTable


@pytest.fixture(scope="module")
def host():
    from exitcore.plugins import PluginHost

    return PluginHost.create(autoload=False, plugins=[builtin_data, exitcore_entries])


def _duka(shared_data: Path) -> DataConfig:
    return DataConfig(source="dukascopy", params={"path": str(shared_data / "eurusd_m15_dukascopy_2006_2010")})


@pytest.mark.needs_shared_data
def test_bench_load_validate_2006_2010(benchmark, shared_data: Path, host) -> None:
    """Read 5 gzip CSVs (125,261 M15 bars), parse, validate, build canonical bars."""
    bars = benchmark(load_source_bars, _duka(shared_data), host)
    assert len(bars) == 125_261
    benchmark.extra_info["bars"] = len(bars)


@pytest.mark.needs_shared_data
def test_bench_build_episodes_2006_2010(benchmark, shared_data: Path, host) -> None:
    """Market tensors + donchian entries + trade table + split assignment for 2006-2010."""
    bars = load_bars(_duka(shared_data), host)
    comp = host.get(ComponentKind.ENTRY, "donchian")
    ctx = EntryContext(ExperimentConfig(name="bench"), EnvConfig(), CostConfig())

    def build():
        market = MarketTensors.from_bars(bars, atr_period=14, max_gap_bars=4)
        trades = comp.build(comp.params(), ctx)(bars)
        table = TradeTable.build(trades, market, CostModel.from_config(CostConfig(), bars.pip_size), 96)
        splits = make_splits(bars.frame.index, SplitConfig(), 96 + 16)
        return market, table, assign_trades(splits, table, 16)

    market, table, per_split = benchmark(build)
    raw = len(bars) * 40  # int64 timestamp + four float64 prices per bar
    benchmark.extra_info.update(
        bars=len(bars), trades=table.n, market_bytes=market.nbytes(), raw_bytes=raw, ratio=market.nbytes() / raw
    )
    assert market.nbytes() <= 2 * raw  # design.md §8: episode tensors <= 2x the raw bar data
    assert sum(len(v) for v in per_split.values()) > 4000


@pytest.mark.needs_shared_data
def test_bench_histdata_year_m1_to_m15(benchmark, shared_data: Path, host) -> None:
    """One HistData year (372,530 M1 rows in a zip, EU-DST clock, 60 duplicates) to M15."""
    path = shared_data / "histdata_m1_2018_2019" / "HISTDATA_COM_ASCII_EURUSD_M12019.zip"
    cfg = DataConfig(source="histdata", params={"path": str(path), "timezone": "UTC-5,EU"})
    bars = benchmark(load_bars, cfg, host)
    assert len(bars) == 24_849


def test_bench_synthetic_three_years(benchmark) -> None:
    """The default synthetic data set: 3 years of M15."""
    bars = benchmark(generate, SynthParams())
    assert len(bars) > 70_000
