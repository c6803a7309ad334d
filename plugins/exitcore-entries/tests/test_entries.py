"""Entry strategies: their rules, the timeline contract (decide at s with bars <= s, fill at s+1),
and the trades-from-CSV strategy's handling of good and bad rows."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pandas as pd
import pytest
import torch

import exitcore_entries
from exitcore.components import ComponentKind, EntryContext
from exitcore.config import CostConfig, EnvConfig, ExperimentConfig
from exitcore.costs import CostModel
from exitcore.data.bars import Bars
from exitcore.data.source_params import SynthParams
from exitcore.data.synth import generate
from exitcore.data.validate import DataValidationError
from exitcore.episodes import MarketTensors, TradeTable, wilder_atr
from exitcore.errors import DataError

CTX = EntryContext(experiment=ExperimentConfig(name="t"), env=EnvConfig(), costs=CostConfig())


@pytest.fixture(scope="module")
def bars() -> Bars:
    return generate(SynthParams(years=0.5, seed=11))


def _strategy(name: str, **params):
    from exitcore.plugins import PluginHost

    comp = PluginHost.create(autoload=False, plugins=[exitcore_entries]).get(ComponentKind.ENTRY, name)
    return comp.build(comp.params(**params), CTX)


def _bars(close: np.ndarray, spread: float = 2e-4) -> Bars:
    close = np.asarray(close, dtype=float)
    open_ = np.r_[close[0], close[:-1]]
    index = pd.date_range("2019-01-07", periods=len(close), freq="15min", tz="UTC").as_unit("ns")
    frame = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) + spread, "low": np.minimum(open_, close) - spread, "close": close},
        index=index.rename("ts"),
    )
    return Bars(frame=frame, timeframe="15min", pip_size=0.0001)


def test_registered_through_the_hook(make_host) -> None:
    host = make_host(exitcore_entries)
    assert set(host.components(ComponentKind.ENTRY)) == {"donchian", "ma_cross", "csv_trades"}


def test_donchian_signals_only_the_breakout_bar() -> None:
    close = np.r_[np.full(40, 1.1000), 1.1000 + 0.0010 * np.arange(1, 30)]  # flat, then a steady rise
    bars = _bars(close)
    trades = _strategy("donchian")(bars).frame
    assert trades["signal_bar"].tolist() == [40] and trades["direction"].tolist() == [1]
    atr = wilder_atr(*(bars.frame[c].to_numpy() for c in ("high", "low", "close")), 14)
    assert trades["stop_dist"].iloc[0] == pytest.approx(1.5 * atr[40])
    assert trades["target_dist"].iloc[0] == pytest.approx(3.0 * atr[40])
    short = _strategy("donchian")(_bars(2.2 - close)).frame
    assert short["signal_bar"].tolist() == [40] and short["direction"].tolist() == [-1]
    assert len(_strategy("donchian", direction="short")(bars)) == 0


def test_donchian_cooldown(bars: Bars) -> None:
    plain = _strategy("donchian")(bars).frame["signal_bar"].to_numpy()
    quiet = _strategy("donchian", cooldown=10)(bars).frame["signal_bar"].to_numpy()
    assert set(quiet) < set(plain)
    prev = plain[np.searchsorted(plain, quiet) - 1]
    first = np.searchsorted(plain, quiet) == 0
    assert ((quiet - prev > 10) | first).all()  # no breakout in the 10 bars before a kept signal


def test_ma_cross_matches_a_direct_computation(bars: Bars) -> None:
    trades = _strategy("ma_cross", fast=5, slow=20)(bars).frame
    c = bars.frame["close"].reset_index(drop=True)
    diff = (c.rolling(5).mean() - c.rolling(20).mean()).to_numpy()
    up = np.flatnonzero((diff[1:] > 0) & (diff[:-1] <= 0)) + 1
    down = np.flatnonzero((diff[1:] < 0) & (diff[:-1] >= 0)) + 1
    want = np.sort(np.r_[up, down])
    assert trades["signal_bar"].tolist() == want[want >= 20].tolist()
    assert (trades["direction"].to_numpy() == np.where(np.isin(trades["signal_bar"], up), 1, -1)).all()
    assert (np.diff(trades["direction"].to_numpy()) != 0).all()  # crosses alternate


@pytest.mark.parametrize(
    ("name", "params"),
    [("donchian", {}), ("donchian", {"cooldown": 8, "period": 30}), ("ma_cross", {}), ("ma_cross", {"kind": "ema", "fast": 8, "slow": 21})],
)
def test_decisions_use_only_bars_up_to_the_signal(bars: Bars, name: str, params: dict) -> None:
    """Truncating or poisoning the bars after s changes nothing at or before s."""
    strategy = _strategy(name, **params)
    full = strategy(bars).frame
    assert len(full) > 20
    for cut in np.random.default_rng(0).integers(50, len(bars), 12):
        want = full[full["signal_bar"] < cut].reset_index(drop=True)
        got = strategy(bars.head(int(cut))).frame
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
        poisoned = bars.frame.copy()
        poisoned.iloc[int(cut) :] = poisoned.iloc[int(cut) :] * 3.0  # wild but valid future bars
        got = strategy(attrs.evolve(bars, frame=poisoned)).frame
        pd.testing.assert_frame_equal(got[got["signal_bar"] < cut].reset_index(drop=True), want)


def test_fill_at_the_open_after_the_signal(bars: Bars) -> None:
    """The entry fills at the open of s+1 with costs; stop and target come from the signal bar."""
    trades = _strategy("donchian")(bars)
    market = MarketTensors.from_bars(bars)
    costs = CostModel.from_config(CostConfig(spread_pips=1.0, slippage_pips=0.5), bars.pip_size)
    table = TradeTable.build(trades, market, costs, max_bars=96)
    f = trades.frame
    s = f["signal_bar"].to_numpy()
    ok = table.valid.numpy()
    d = f["direction"].to_numpy()
    open_next = bars.frame["open"].to_numpy()[s[ok] + 1]
    np.testing.assert_array_equal(table.entry_bar.numpy()[ok], s[ok] + 1)
    np.testing.assert_array_equal(table.entry_open.numpy()[ok], open_next)
    entry = open_next + d[ok] * 1.0 * 0.0001  # half the 1-pip spread + 0.5 pip slippage
    np.testing.assert_allclose(table.entry_price.numpy()[ok], entry, rtol=0, atol=1e-12)
    np.testing.assert_allclose(table.stop0.numpy()[ok], entry - d[ok] * f["stop_dist"].to_numpy()[ok], atol=1e-12)
    np.testing.assert_allclose(table.target0.numpy()[ok], entry + d[ok] * f["target_dist"].to_numpy()[ok], atol=1e-12)
    # ATR at the signal bar, recomputed from bars <= s only, is what set the distances
    for k in np.flatnonzero(ok)[:: max(1, ok.sum() // 10)]:
        head = bars.head(int(s[k]) + 1).frame
        atr_s = wilder_atr(head["high"].to_numpy(), head["low"].to_numpy(), head["close"].to_numpy(), 14)[-1]
        assert f["stop_dist"].iloc[k] == pytest.approx(1.5 * atr_s, rel=1e-12)
        assert float(table.atr[k]) == pytest.approx(atr_s, rel=1e-12)


# --------------------------------------------------------------------------- csv_trades


def _csv(tmp_path: Path, body: str, name: str = "trades.csv") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_csv_trades_maps_rows_onto_bars(tmp_path: Path, bars: Bars) -> None:
    ts = bars.frame.index
    on_clock = lambda i: f"{ts[i] + pd.Timedelta(hours=2):%Y-%m-%d %H:%M}"  # noqa: E731 - a UTC+2 wall clock
    body = "time,direction,stop,target,tag\n" + "\n".join(
        [f"{on_clock(200)},long,10,20,a", f"{on_clock(100)},SELL,12.5,30,b", f"{on_clock(300)},-1,8,16,c", "2010-01-01 00:00,1,10,20,old"]
    )
    path = _csv(tmp_path, body)
    params = dict(path=str(path), stop_column="stop", target_column="target", distance_unit="pips")
    trades = _strategy("csv_trades", timezone="UTC+2", **params)(bars)
    f = trades.frame
    assert f["signal_bar"].tolist() == [100, 200, 300]  # sorted by signal bar
    assert f["direction"].tolist() == [-1, 1, -1]
    np.testing.assert_allclose(f["stop_dist"], [12.5e-4, 10e-4, 8e-4])
    np.testing.assert_allclose(f["target_dist"], [30e-4, 20e-4, 16e-4])
    assert f["csv_line"].tolist() == [3, 2, 4]
    assert "1 trade(s) lie outside the data" in trades.findings[0].message
    # read on the wrong clock the same times are 2 hours late: other bars, none off the grid
    assert _strategy("csv_trades", **params)(bars).frame["signal_bar"].tolist() == [108, 208, 308]
    # times that carry their offset need no clock
    iso = _csv(tmp_path, f"time,direction\n{ts[7]:%Y-%m-%dT%H:%M:%S}+00:00,1\n", "iso.csv")
    assert _strategy("csv_trades", path=str(iso), timezone="UTC+2")(bars).frame["signal_bar"].tolist() == [7]


def test_csv_trades_entry_times_and_atr_distances(tmp_path: Path, bars: Bars) -> None:
    ts = bars.frame.index
    path = _csv(tmp_path, f"when,side\n{ts[51]:%Y-%m-%d %H:%M},buy\n{ts[0]:%Y-%m-%d %H:%M},buy\n")
    trades = _strategy("csv_trades", path=str(path), time_column="when", direction_column="side", time_is="entry")(bars)
    assert trades.frame["signal_bar"].tolist() == [50]  # the entry bar's open -> the bar before signals
    atr = wilder_atr(*(bars.frame[c].to_numpy() for c in ("high", "low", "close")), 14)
    assert trades.frame["stop_dist"].iloc[0] == pytest.approx(1.5 * atr[50])
    assert "1 trade(s) lie outside" in trades.findings[0].message  # entry at bar 0 has no signal bar


def test_csv_trades_reports_every_bad_row(tmp_path: Path, bars: Bars) -> None:
    ts = bars.frame.index
    body = "time,direction,stop\n" + "\n".join(
        [
            f"{ts[10]:%Y-%m-%d %H:%M},long,0.001",
            f"{ts[11] + pd.Timedelta(minutes=7):%Y-%m-%d %H:%M},long,0.001",  # not a bar open
            f"{ts[12]:%Y-%m-%d %H:%M},up,0.001",  # unknown direction
            f"{ts[13]:%Y-%m-%d %H:%M},short,-0.001",  # negative distance
            "not a time,short,0.001",
        ]
    )
    strategy = _strategy("csv_trades", path=str(_csv(tmp_path, body)), stop_column="stop")
    with pytest.raises(DataValidationError) as info:
        strategy(bars)
    text = str(info.value)
    for line, phrase in [(3, "is not the open of a 15min bar"), (4, "direction 'up'"), (5, "stop distance '-0.001'"), (6, "unparseable time")]:
        assert f"trades.csv, line {line}: " in text and phrase in text
    assert "line 2:" not in text


def test_csv_trades_missing_column_and_file(tmp_path: Path, bars: Bars) -> None:
    path = _csv(tmp_path, "time,dir\n2019-01-07 00:00,1\n")
    with pytest.raises(DataError, match=r"no column 'direction' \(entry.params.direction_column\)"):
        _strategy("csv_trades", path=str(path))(bars)
    with pytest.raises(DataError, match="no such file"):
        _strategy("csv_trades", path=str(tmp_path / "nope.csv"))(bars)


def test_params_validation() -> None:
    from exitcore_entries import DonchianParams, MaCrossParams

    with pytest.raises(ValueError, match="fast < slow"):
        MaCrossParams(fast=50, slow=20)
    with pytest.raises(ValueError, match="period"):
        DonchianParams(period=1)
    assert torch.__version__  # the strategies run where the engine runs
