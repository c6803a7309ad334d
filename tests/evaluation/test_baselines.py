"""Baseline exits: the same trades, the same timeline rules and costs as the RL environment."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from evalkit import one_torch_thread, prepared, resolved  # noqa: F401 - autouse fixture
from ledgerkit import build_ledger

from exitcore.assembly import assemble
from exitcore.data.bars import Bars, Trades
from exitcore.evaluation.baselines import (
    DEFAULT_GRID,
    FIXED,
    Baseline,
    baseline_ledger,
    baseline_ledgers,
    choose_best,
    time_exit,
    trailing_stop,
    usable_grid,
)
from exitcore.evaluation.ledger import hold_actor, make_ledger
from exitcore.evaluation.ledger_schema import validate_ledger
from exitcore.timeline import EXIT_REASON_NAMES, ExitReason, bar_outcome

SAME = ["trade", "signal_time", "entry_time", "exit_time", "entry_price", "exit_price", "exit_reason", "bars_held",
        "pnl", "pnl_gross", "cost", "pnl_pips", "pnl_ccy", "ambiguous", "at_breakeven", "stop_moves"]


@pytest.mark.parametrize("holes", ["hold", "close"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_fixed_stop_target_equals_the_environment_always_holding(split, holes):
    _, asm, pools, _ = prepared("v4_no_lookahead", f"env.data_holes={holes}")
    env_ledger = make_ledger(asm, pools[split], split, hold_actor, "hold")
    fixed = baseline_ledger(asm, pools[split], split, FIXED)
    pd.testing.assert_frame_equal(fixed[SAME], env_ledger[SAME])
    # the comparison covers stops, targets and (closing at holes) the gap closes
    assert {"stop", "target"} <= set(fixed["exit_reason"])
    assert ("gap" in set(fixed["exit_reason"])) == (holes == "close")


def _reference(asm, trade: int, baseline: Baseline) -> tuple[int, float, int, bool, int]:
    """One trade, bar by bar, as a plain loop: (exit bar, level, reason, ambiguous, stop moves)."""
    t, m = asm.table, asm.market
    e = int(t.entry_bar[trade])
    if int(t.entry_reason[trade]) != ExitReason.OPEN:
        return e, float(t.entry_level[trade]), int(t.entry_reason[trade]), bool(t.entry_ambiguous[trade]), 0
    d, stop, target = t.direction[trade], t.stop0[trade], t.target0[trade]
    last, forced = int(t.last_bar[trade]), int(t.last_reason[trade])
    if baseline.kind == "time" and e + int(baseline.value) - 1 <= last:
        last, forced = e + int(baseline.value) - 1, int(ExitReason.TIME)
    moves, b = 0, e
    while True:
        if b == last:
            return b, float(m.close[b]), forced, False, moves
        if baseline.kind == "trailing":
            cand = m.close[b] - d * baseline.value * m.atr[b]
            if d * (cand - stop) > 0:
                stop, moves = cand, moves + 1
        reason, level, amb = bar_outcome(m.open[b + 1], m.high[b + 1], m.low[b + 1], stop, target, d)
        if int(reason) != ExitReason.OPEN:
            return b + 1, float(level), int(reason), bool(amb), moves
        b += 1


@pytest.mark.parametrize("baseline", [trailing_stop(1.0), trailing_stop(3.0), time_exit(4), time_exit(16)], ids=lambda b: b.name)
def test_vectorised_baselines_match_a_bar_by_bar_loop(baseline):
    _, asm, pools, _ = prepared("v4_no_lookahead")
    pool = pools["test"][:120]
    led = baseline_ledger(asm, pool, "test", baseline)
    tf = pd.Timedelta("15min")
    for row in led.itertuples():
        bar, level, reason, amb, moves = _reference(asm, row.trade, baseline)
        assert row.exit_time == pd.Timestamp(int(asm.market.ts[bar]), unit="ns", tz="UTC") + tf, row.trade
        assert row.exit_reason == EXIT_REASON_NAMES[reason] and row.ambiguous == amb and row.stop_moves == moves
        assert row.exit_price == pytest.approx(asm.costs.exit_fill(level, row.direction), abs=1e-12)
        entry = float(asm.table.entry_price[row.trade])
        gross = row.direction * (level - float(asm.table.entry_open[row.trade])) / entry
        assert row.pnl_gross == pytest.approx(gross, abs=1e-12)
        assert row.pnl == pytest.approx(gross - float(asm.costs.cost_per_unit(entry)), abs=1e-12)
    if baseline.kind == "time":
        assert led["bars_held"].max() <= baseline.value and (led["exit_reason"] == "time").any()
    else:
        assert (led["stop_moves"] > 0).any() and led["at_breakeven"].any()


def _bars(ohlc):
    idx = pd.date_range("2024-01-08", periods=len(ohlc), freq="15min", tz="UTC", name="ts")
    return Bars(pd.DataFrame(ohlc, columns=["open", "high", "low", "close"], index=idx), "15min", 0.0001, source="hand")


FLAT = (1.1000, 1.1004, 1.0996, 1.1000)


def _one_trade(ohlc, stop_dist=0.0030, target_dist=0.0100):
    """A long trade signalled at bar 19 (filled at the open of bar 20) on hand-made bars."""
    res = resolved("v4_no_lookahead")
    trades = Trades(pd.DataFrame([(19, 1, stop_dist, target_dist)], columns=["signal_bar", "direction", "stop_dist", "target_dist"]))
    return assemble(res, _bars(ohlc), trades=trades)


def _across_a_hole(ohlc, *overrides):
    """A long trade signalled at bar 19 on hand-made bars 0-23, a 6-hour hole, then bars 24-29."""
    res = resolved("v4_no_lookahead", *overrides)
    idx = pd.date_range("2024-01-08", periods=len(ohlc), freq="15min", tz="UTC", name="ts")
    idx = idx[:24].append(idx[24:] + pd.Timedelta("6h"))  # bars 0-23, then a 6-hour hole
    trades = Trades(pd.DataFrame([(19, 1, 0.0030, 0.0100)], columns=["signal_bar", "direction", "stop_dist", "target_dist"]))
    return assemble(res, Bars(pd.DataFrame(ohlc, columns=["open", "high", "low", "close"], index=idx), "15min", 0.0001,
                              source="hand"), trades=trades)


def test_a_time_exit_on_the_last_bar_before_a_data_hole_is_a_time_exit():
    """Closed at the close of its n-th bar, which is also the last bar before a hole: reason time, not gap."""
    asm = _across_a_hole([FLAT] * 30, "env.data_holes=close")
    assert int(asm.table.last_bar[0]) == 23 and int(asm.table.last_reason[0]) == ExitReason.GAP
    at_hole = baseline_ledger(asm, [0], "test", time_exit(4)).iloc[0]  # entry bar 20: its 4th bar is 23
    assert (at_hole.exit_reason, at_hole.bars_held) == ("time", 4)
    cut_by_hole = baseline_ledger(asm, [0], "test", time_exit(8)).iloc[0]  # the hole comes first
    assert (cut_by_hole.exit_reason, cut_by_hole.bars_held) == ("gap", 4)


def test_baselines_hold_across_a_hole_and_a_gap_through_the_stop_fills_at_the_open():
    """``env.data_holes = "hold"`` (the default): the baselines carry the trade over the hole; the
    bar after it opens below the stop, so the fixed stop fills at that open, as the env does."""
    asm = _across_a_hole([FLAT] * 24 + [(1.0950, 1.0955, 1.0940, 1.0945)] + [FLAT] * 5)
    assert int(asm.table.last_bar[0]) == 29 and int(asm.table.last_reason[0]) == ExitReason.END_OF_DATA
    env_row = make_ledger(asm, [0], "test", hold_actor, "hold").iloc[0]
    for baseline in (FIXED, time_exit(8), trailing_stop(1.0)):
        row = baseline_ledger(asm, [0], "test", baseline).iloc[0]
        assert (row.exit_reason, row.bars_held) == ("stop", 5), baseline
        assert row.exit_price == pytest.approx(1.0950 - 0.00005, abs=1e-12)  # the open, less half the spread
    assert (env_row.exit_reason, env_row.bars_held) == ("stop", 5)
    assert env_row.exit_price == pytest.approx(1.0950 - 0.00005, abs=1e-12)
    # a time exit ending at the last bar before the hole is not carried over
    assert baseline_ledger(asm, [0], "test", time_exit(4)).iloc[0].exit_reason == "time"


def test_trailing_stop_follows_closes_and_never_loosens():
    ohlc = [FLAT] * 21 + [
        (1.1000, 1.1022, 1.0999, 1.1020),  # 21: rally; at its close the stop moves to 1.1020 - ATR[21]
        (1.1020, 1.1024, 1.1015, 1.1016),  # 22: lower close: a looser candidate, the stop stays
        (1.1016, 1.1018, 1.1008, 1.1012),  # 23: the low reaches the stop set at bar 21's close
    ] + [FLAT] * 3
    asm = _one_trade(ohlc)
    row = baseline_ledger(asm, [0], "test", trailing_stop(1.0)).iloc[0]
    stop = 1.1020 - float(asm.market.atr[21])
    assert 1.1016 - float(asm.market.atr[22]) < stop < 1.1015  # bar 22's candidate is looser and not hit
    # moved at the closes of bars 20 (1.1000 - ATR) and 21; hit on bar 23 at that level
    assert (row.exit_reason, row.stop_moves, row.bars_held, bool(row.at_breakeven)) == ("stop", 2, 4, True)
    assert row.exit_price == pytest.approx(stop - 0.00005, abs=1e-12)


def test_a_gap_through_the_stop_fills_at_the_open():
    ohlc = [FLAT] * 21 + [(1.0980, 1.0985, 1.0970, 1.0975)] + [FLAT] * 3
    asm = _one_trade(ohlc)
    trailing = baseline_ledger(asm, [0], "test", trailing_stop(1.0)).iloc[0]  # stop ~1.0992: gapped through
    fixed = baseline_ledger(asm, [0], "test", FIXED).iloc[0]  # stop 1.09705: touched inside the bar
    assert trailing.exit_reason == fixed.exit_reason == "stop"
    assert trailing.exit_price == pytest.approx(1.0980 - 0.00005, abs=1e-12)
    assert fixed.exit_price == pytest.approx(1.1000 + 0.00005 - 0.0030 - 0.00005, abs=1e-12)


def test_ambiguous_bar_takes_the_stop_for_every_baseline():
    ohlc = [FLAT] * 21 + [(1.1000, 1.1060, 1.0940, 1.1000)] + [FLAT] * 3  # touches stop and target
    asm = _one_trade(ohlc, target_dist=0.0040)
    for b in (FIXED, trailing_stop(2.0), time_exit(4)):
        row = baseline_ledger(asm, [0], "test", b).iloc[0]
        assert (row.exit_reason, bool(row.ambiguous), row.bars_held) == ("stop", True, 2), b.name


def test_grid_names_and_validation():
    assert [b.name for b in DEFAULT_GRID] == [
        "fixed_stop_target", "trailing_1.0atr", "trailing_1.5atr", "trailing_2.0atr", "trailing_3.0atr",
        "time_4bars", "time_8bars", "time_16bars", "time_32bars",
    ]
    assert [b.name for b in usable_grid(DEFAULT_GRID, 16)][-2:] == ["time_4bars", "time_8bars"]
    for bad in (("trailing", None), ("trailing", -1.0), ("time", 2.5), ("fixed_stop_target", 3.0), ("martingale", 1.0)):
        with pytest.raises((ValueError, TypeError)):
            Baseline(*bad)


def test_baseline_ledgers_are_valid_and_take_no_decisions():
    _, asm, pools, _ = prepared("v4_no_lookahead")
    ledgers = baseline_ledgers(asm, pools["test"], "test")
    assert list(ledgers) == [b.name for b in DEFAULT_GRID]
    for name, led in ledgers.items():
        validate_ledger(led)
        assert (led["policy"] == name).all() and (led["n_decisions"] == 0).all() and (led["actions"] == "").all()
        assert sorted(led["trade"]) == sorted(pools["test"].tolist())


def test_best_baseline_is_the_highest_daily_sharpe_and_flat_curves_rank_last():
    start, end = pd.Timestamp("2024-01-08", tz="UTC"), pd.Timestamp("2024-01-20", tz="UTC")
    good = build_ledger([0.002, 0.001, 0.0015, -0.0005, 0.001], policy="good", split="train")
    bad = build_ledger([0.001, -0.002, 0.0005, -0.001, 0.0], policy="bad", split="train")
    flat = build_ledger([0.0] * 5, policy="flat", split="train")
    best, sharpes = choose_best({"flat": flat, "bad": bad, "good": good}, start, end)
    assert best == "good" and math.isnan(sharpes["flat"]) and sharpes["good"] > sharpes["bad"]
    tie, _ = choose_best({"a": good.assign(policy="a"), "b": good.assign(policy="b")}, start, end)
    assert tie == "a"


def test_baselines_refuse_unfillable_trades():
    _, asm, pools, _ = prepared("v4_no_lookahead", "env.data_holes=close")  # fills across weekends are refused
    invalid = torch.nonzero(~asm.table.valid).flatten()
    if invalid.numel() == 0:
        pytest.skip("no unfillable trade in this data")
    with pytest.raises(ValueError, match="valid"):
        baseline_ledger(asm, invalid[:1], "test", FIXED)
