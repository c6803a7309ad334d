"""Metrics against hand-computed ledgers and against direct pandas computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from exitcore.evaluation import jsonable
from exitcore.evaluation.ledger_schema import LedgerError
from exitcore.evaluation.metrics import (
    HEADLINE_KEYS,
    action_distribution,
    annualised_sharpe,
    annualised_sortino,
    compute_metrics,
    daily_pnl,
    daily_table,
    format_table,
    headline,
    max_drawdown,
    metrics_by_policy,
    per_trade_stats,
    profit_factor,
    scratch_rate,
    split_label,
    win_rate,
    trading_day,
    trading_days,
)

from ledgerkit import NOTIONAL, build_ledger

# Monday 2024-01-08 .. Friday 2024-01-19: ten trading days
START, END = "2024-01-08 00:00", "2024-01-19 23:45"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# --------------------------------------------------------------------------- a hand-computed ledger


@pytest.fixture
def five():
    """Five trades, listed out of exit order; two exit on the same day, one on a Sunday."""
    return build_ledger(
        [0.002, 0.010, -0.003, 0.0, -0.005],
        exit_time=[
            "2024-01-10 09:00",  # Wed, third in exit order
            "2024-01-08 12:00",  # Mon, first
            "2024-01-14 21:00",  # Sunday -> counted on Monday 2024-01-15, fifth
            "2024-01-10 15:00",  # Wed, fourth
            "2024-01-09 23:59",  # Tue, second
        ],
        bars_held=[2, 5, 3, 4, 1],
        actions=["HE", "HHTHE", "BHB", "HHHE", ""],
        exit_reason=["agent", "target", "stop", "time", "stop"],
    )


def test_per_trade_statistics_by_hand(five):
    m = compute_metrics(five, start=START, end=END)
    r = [0.002, 0.010, -0.003, 0.0, -0.005]
    mean = sum(r) / 5  # 0.0008
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 4)
    assert m["n_trades"] == 5
    assert m["mean_return"] == pytest.approx(0.0008)
    assert m["std_return"] == pytest.approx(std)
    assert m["per_trade_sharpe"] == pytest.approx(mean / std)
    assert m["win_rate"] == pytest.approx(2 / 5)  # the zero trade is not a win
    assert m["profit_factor"] == pytest.approx(0.012 / 0.008)
    assert m["total_pnl"] == pytest.approx(0.004)
    assert m["total_pnl_ccy"] == pytest.approx(0.004 * NOTIONAL)
    assert (m["avg_bars"], m["min_bars"], m["max_bars"]) == (3.0, 1, 5)
    assert m["quick_exit_rate"] == pytest.approx(3 / 5)  # bars 2, 3, 1


def test_drawdown_follows_exit_order_not_row_order(five):
    # exit order: +0.010, -0.005, +0.002, 0.0, -0.003 -> equity 0 .010 .005 .007 .007 .004
    m = compute_metrics(five, start=START, end=END)
    assert m["max_drawdown"] == pytest.approx(0.006)
    assert m["max_drawdown_ccy"] == pytest.approx(0.006 * NOTIONAL)
    # in row order the curve would be .002 .012 .009 .009 .004 -> 0.008
    assert max_drawdown(five["pnl"]) == pytest.approx(0.008)


def test_daily_pnl_includes_zero_days_and_rolls_weekends_to_monday(five):
    d = daily_pnl(five, START, END)
    assert len(d) == 10 and all(day.day_of_week < 5 for day in d.index)
    assert d[ts("2024-01-08")] == pytest.approx(0.010)
    assert d[ts("2024-01-09")] == pytest.approx(-0.005)
    assert d[ts("2024-01-10")] == pytest.approx(0.002)  # two trades, +0.002 and 0.0
    assert d[ts("2024-01-15")] == pytest.approx(-0.003)  # the Sunday exit
    assert (d.drop([ts("2024-01-08"), ts("2024-01-09"), ts("2024-01-10"), ts("2024-01-15")]) == 0).all()
    assert d.sum() == pytest.approx(five["pnl"].sum())


def test_sharpe_matches_a_direct_pandas_computation(five):
    m = compute_metrics(five, start=START, end=END)
    # independent: calendar-day resample, weekend PnL moved to Monday by hand, weekdays kept
    s = five.set_index("exit_time")["pnl"].copy()
    s.index = [t + pd.Timedelta(days=1) if t.day_of_week == 6 else t for t in s.index]
    cal = s.resample("D").sum().reindex(pd.date_range("2024-01-08", "2024-01-19", freq="D", tz="UTC"), fill_value=0.0)
    weekdays = cal[cal.index.day_of_week < 5]
    expected = weekdays.mean() / weekdays.std() * np.sqrt(252)
    assert m["sharpe"] == pytest.approx(expected)
    assert m["mean_daily_pnl"] == pytest.approx(0.004 / 10)
    assert m["n_days"] == 10 and m["active_days"] == 4


def test_sortino_by_hand(five):
    m = compute_metrics(five, start=START, end=END)
    daily = [0.010, -0.005, 0.002, 0, 0, -0.003, 0, 0, 0, 0]
    downside = math.sqrt((0.005**2 + 0.003**2) / 10)
    assert m["sortino"] == pytest.approx(np.mean(daily) / downside * math.sqrt(252))


def test_action_distribution_and_exit_mix(five):
    m = compute_metrics(five, start=START, end=END)
    # HE HHTHE BHB HHHE "" -> H 8, E 3, T 1, B 2, P 0 of 14
    assert m["n_decisions"] == 14
    counts = m["action_counts"]
    assert counts == {"HOLD": 8, "EXIT": 3, "TIGHTEN_SL": 1, "TRAIL_BE": 2, "PARTIAL_EXIT": 0}
    assert m["action_distribution"]["HOLD"] == pytest.approx(8 / 14)
    assert sum(m["action_distribution"].values()) == pytest.approx(1.0)
    assert m["exit_reason_counts"] == {"agent": 1, "stop": 2, "target": 1, "time": 1, "end_of_data": 0, "gap": 0}
    assert m["exit_reasons"]["stop"] == pytest.approx(0.4)


def test_blocked_rate_overall_and_per_action():
    ledger = build_ledger(
        [0.01, 0.02],
        actions=["EEHE", "PHH"],
        executed=["HHHE", "HHH"],
        blocked=[2, 1],
    )
    m = compute_metrics(ledger, start=START, end=END)
    assert m["blocked_rate"] == pytest.approx(3 / 7)
    per = m["blocked_rate_per_action"]
    assert per["EXIT"] == pytest.approx(2 / 3)
    assert per["PARTIAL_EXIT"] == pytest.approx(1.0)
    assert per["HOLD"] == 0.0
    assert math.isnan(per["TRAIL_BE"])  # never sampled
    # without the `executed` column only the overall rate is derivable
    m2 = compute_metrics(ledger.drop(columns=["executed"]), start=START, end=END)
    assert m2["blocked_rate"] == pytest.approx(3 / 7)
    assert m2["blocked_rate_per_action"] is None


# --------------------------------------------------------------------------- edge cases


def test_no_losses():
    m = compute_metrics(build_ledger([0.01, 0.002, 0.0]), start=START, end=END)
    assert m["profit_factor"] == math.inf
    assert m["max_drawdown"] == 0.0
    assert m["sortino"] == math.inf
    assert m["win_rate"] == pytest.approx(2 / 3)


def test_all_losses():
    m = compute_metrics(build_ledger([-0.01, -0.002]), start=START, end=END)
    assert m["profit_factor"] == 0.0
    assert m["win_rate"] == 0.0
    assert m["max_drawdown"] == pytest.approx(0.012)
    assert m["sharpe"] < 0 and m["sortino"] < 0


def test_single_trade():
    m = compute_metrics(build_ledger([0.004]), start=START, end=END)
    assert m["n_trades"] == 1
    assert m["mean_return"] == pytest.approx(0.004)
    assert math.isnan(m["std_return"]) and math.isnan(m["per_trade_sharpe"])
    assert m["win_rate"] == 1.0 and m["profit_factor"] == math.inf
    # one active day among ten: the daily Sharpe is defined (mean/std over the ten days)
    d = np.array([0.004] + [0.0] * 9)
    assert m["sharpe"] == pytest.approx(d.mean() / d.std(ddof=1) * math.sqrt(252))


def test_all_zero_trades_have_undefined_ratios():
    m = compute_metrics(build_ledger([0.0, 0.0]), start=START, end=END)
    assert math.isnan(m["profit_factor"])
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"])
    assert m["win_rate"] == 0.0


def test_a_constant_series_is_flat_despite_float_rounding():
    """np.std of a constant 0.1 series is 1.4e-17, not 0: the Sharpe read 1.1e17 (the docs say
    NaN), the per-trade Sharpe 5.9e15, and the PSR failed on a "degenerate variance factor"."""
    from exitcore.evaluation.significance import _sharpe_rows, probabilistic_sharpe_ratio

    constant = np.full(313, 0.1)
    assert constant.std(ddof=1) > 0  # the rounding this is about
    assert math.isnan(annualised_sharpe(constant))
    assert math.isnan(per_trade_stats([0.1, 0.1, 0.1])["per_trade_sharpe"])
    assert np.isnan(_sharpe_rows(np.vstack([constant, constant]))).all()
    with pytest.raises(ValueError, match="zero variance"):
        probabilistic_sharpe_ratio(constant, active_days=313)
    # a real, small dispersion is not flat
    varied = constant + 1e-9 * np.arange(313)
    assert math.isfinite(annualised_sharpe(varied)) and math.isfinite(_sharpe_rows(varied[None])[0])
    assert math.isfinite(per_trade_stats([0.1, 0.1 + 1e-9])["per_trade_sharpe"])
    from exitcore.evaluation.metrics import is_flat

    assert is_flat(0.0, np.zeros(3)) and is_flat(math.nan, np.ones(3)) and not is_flat(1e-9, np.ones(3))


@pytest.mark.parametrize("fn", [win_rate, scratch_rate, profit_factor, per_trade_stats])
def test_per_trade_statistics_refuse_nan_pnl(fn):
    """win_rate([nan, 1]) was 0.5 (NaN counted as a zero trade), scratch_rate counted NaN as a
    scratch and profit_factor left it out; compute_metrics refuses such ledgers already."""
    with pytest.raises(ValueError, match=r"pnl must be finite: 2 NaN values \(the first at index 1\)"):
        fn([0.01, math.nan, -0.02, math.nan])
    with pytest.raises(ValueError, match=r"1 NaN value and 1 infinite value \(the first at index 0\)"):
        fn(pd.Series([math.inf, 0.01, math.nan]))


def test_empty_ledger_needs_labels_and_yields_nans():
    empty = build_ledger([])
    with pytest.raises(LedgerError, match="pass split="):
        compute_metrics(empty, start=START, end=END)
    m = compute_metrics(empty, start=START, end=END, split="test", policy="rl")
    assert m["n_trades"] == 0
    for key in ("mean_return", "win_rate", "profit_factor", "avg_bars", "quick_exit_rate", "sharpe", "blocked_rate"):
        assert math.isnan(m[key]), key
    assert m["min_bars"] is None and m["max_drawdown"] == 0.0
    assert m["mean_daily_pnl"] == 0.0


def test_short_spans():
    assert math.isnan(annualised_sharpe([0.01]))
    assert math.isnan(annualised_sortino([]))
    assert math.isnan(annualised_sharpe([0.01, 0.01]))  # zero std: undefined, not infinite
    assert profit_factor([]) != profit_factor([])  # NaN


def test_trades_outside_the_span_are_an_error(five):
    with pytest.raises(LedgerError, match="exit outside the evaluated span"):
        compute_metrics(five, start="2024-01-09", end=END)


def test_trading_days_and_weekend_rule():
    days = trading_days("2024-01-06 10:00", "2024-01-14 10:00")  # Saturday .. Sunday
    assert [d.strftime("%a %d") for d in days] == ["Mon 08", "Tue 09", "Wed 10", "Thu 11", "Fri 12", "Mon 15"]
    mapped = trading_day(pd.DatetimeIndex([ts("2024-01-13 03:00"), ts("2024-01-12 23:59")]))
    assert list(mapped) == [ts("2024-01-15"), ts("2024-01-12")]
    with pytest.raises(ValueError, match="precedes"):
        trading_days("2024-01-10", "2024-01-08")


def test_a_close_at_midnight_belongs_to_the_day_that_ends_then():
    """Exit times and a span's end are bar closes: Friday's last 15-minute bar closes at
    Saturday 00:00, which was rolled to the following Monday, a day beyond the data."""
    days = trading_days("2017-01-02 00:00", "2017-01-07 00:00")  # Monday's first open .. Friday's last close
    assert [d.strftime("%a %d") for d in days] == ["Mon 02", "Tue 03", "Wed 04", "Thu 05", "Fri 06"]
    closes = pd.DatetimeIndex([ts("2017-01-07 00:00"), ts("2017-01-04 00:00"), ts("2017-01-04 00:15"),
                               ts("2017-01-09 00:00")])  # Sat, Wed, Wed, Mon midnight
    assert list(trading_day(closes, closes=True)) == [ts("2017-01-06"), ts("2017-01-03"), ts("2017-01-04"),
                                                       ts("2017-01-09")]  # Sunday's last bar is Monday's
    # an open at midnight starts its day, as before
    assert list(trading_day(closes)) == [ts("2017-01-09"), ts("2017-01-04"), ts("2017-01-04"), ts("2017-01-09")]
    ledger = build_ledger([0.01, -0.02], exit_time=["2017-01-04 00:00", "2017-01-07 00:00"])
    d = daily_pnl(ledger, "2017-01-02 00:00", "2017-01-07 00:00")
    assert len(d) == 5 and d[ts("2017-01-03")] == 0.01 and d[ts("2017-01-06")] == -0.02


def test_action_distribution_without_decisions_is_nan():
    assert all(math.isnan(v) for v in action_distribution(["", ""]).values())


# --------------------------------------------------------------------------- labels and output


def test_every_result_is_labelled_and_training_is_marked_in_sample():
    train = compute_metrics(build_ledger([0.01, -0.01], split="train"), start=START, end=END)
    test = compute_metrics(build_ledger([0.01, -0.01]), start=START, end=END)
    assert (train["split"], train["in_sample"], train["label"]) == ("train", True, "TRAIN (in-sample)")
    assert (test["split"], test["in_sample"], test["label"]) == ("test", False, "TEST (out-of-sample)")
    assert split_label("validation") == "VALIDATION (out-of-sample)"
    assert headline(train)["in_sample"] is True and headline(train)["label"] == "TRAIN (in-sample)"
    assert set(headline(train)) == set(HEADLINE_KEYS)
    text = format_table([train])
    assert "TRAIN (in-sample)" in text and "IN-SAMPLE" in text
    assert "IN-SAMPLE" not in format_table([test])


def test_given_split_must_match_the_rows():
    with pytest.raises(LedgerError, match="expected only 'train'"):
        compute_metrics(build_ledger([0.01]), start=START, end=END, split="train")


def test_mixed_policies_need_metrics_by_policy():
    a = build_ledger([0.01, -0.002])
    b = build_ledger([0.003, 0.001], policy="fixed_stop_target")
    both = pd.concat([b, a], ignore_index=True)
    with pytest.raises(LedgerError, match="metrics_by_policy"):
        compute_metrics(both, start=START, end=END)
    results = metrics_by_policy(both, start=START, end=END)
    assert list(results) == ["rl", "fixed_stop_target"]
    assert results["rl"]["mean_return"] == pytest.approx(0.004)
    assert results["fixed_stop_target"]["win_rate"] == 1.0
    table = format_table(results)
    lines = table.splitlines()
    assert lines[0] == "metrics on TEST (out-of-sample)"
    assert "rl" in lines[1] and "fixed_stop_target" in lines[1]
    assert any(line.startswith("win rate") and "50.0%" in line and "100.0%" in line for line in lines)


def test_metrics_are_strict_json_with_explicit_non_finite_values():
    m = compute_metrics(build_ledger([0.01]), start=START, end=END)
    text = jsonable.dumps(m)

    def refuse(token):
        raise AssertionError(f"bare {token} in JSON")

    plain = json.loads(text, parse_constant=refuse)
    assert plain["profit_factor"] == "Infinity" and plain["std_return"] == "NaN"
    back = jsonable.loads(text)
    assert back["profit_factor"] == math.inf and math.isnan(back["std_return"])
    assert back["n_trades"] == 1 and back["label"] == "TEST (out-of-sample)"


def test_a_pandas_series_or_frame_keeps_its_labels_in_json():
    """Trial Y: an evaluator's `ledger.groupby("exit_reason")["pnl"].mean()` was written as a bare
    list (tolist), its numbers no longer matched to their exit reasons."""
    by_reason = pd.Series([0.5, -0.25], index=pd.Index(["stop", "agent"], name="exit_reason"))
    assert json.loads(jsonable.dumps({"by_reason": by_reason})) == {"by_reason": {"stop": 0.5, "agent": -0.25}}
    frame = pd.DataFrame({"n": [3, 1], "pnl": [math.nan, 1.0]}, index=["stop", "agent"])
    assert json.loads(jsonable.dumps(frame)) == {"n": {"stop": 3, "agent": 1}, "pnl": {"stop": "NaN", "agent": 1.0}}
    assert json.loads(jsonable.dumps(np.array([1.5, 2.0]))) == [1.5, 2.0]  # arrays have no labels: lists


def test_jsonable_default_and_iso_time():
    """``default`` converts what JSON has no type for (the CLI's ``plugins --json`` writes its
    text), inside containers too; :func:`jsonable.iso_time` is the CLI's one time format."""
    import datetime as dt

    import pandas as pd

    class Odd:
        def __str__(self):
            return "odd"

    with pytest.raises(TypeError):
        jsonable.dumps({"a": Odd()})
    assert json.loads(jsonable.dumps({"a": [Odd(), math.nan]}, default=str)) == {"a": ["odd", "NaN"]}
    ms = "2015-01-05T00:15:00.000+00:00"
    assert jsonable.iso_time(pd.Timestamp("2015-01-05 00:15", tz="UTC")) == ms
    assert jsonable.iso_time("2015-01-05T00:15:00+00:00") == ms
    assert jsonable.iso_time("2015-01-05 00:15") == ms  # no offset: UTC
    assert jsonable.iso_time(dt.datetime(2015, 1, 5, 1, 15, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == ms
    assert jsonable.iso_time(pd.Timestamp("2015-01-05 00:15:00.123456789", tz="UTC")) == "2015-01-05T00:15:00.123+00:00"
    assert jsonable.iso_time(None) is None


def test_breakeven_rounding_is_neither_a_win_nor_a_loss():
    # what a breakeven stop nets in float64 (either sign), beside one real win and one real loss
    noise = [1.7763568394002505e-16, -2.2e-16, 3e-13, -1e-12]
    ledger = build_ledger([*noise, 0.0005, -0.0004], exit_time=["2024-01-09 10:00"] * 6)
    m = compute_metrics(ledger, start=START, end=END)
    assert m["win_rate"] == pytest.approx(1 / 6)
    assert m["profit_factor"] == pytest.approx(0.0005 / 0.0004)
    assert daily_table(ledger, START, END)["wins"].sum() == 1
    assert math.isnan(profit_factor(noise))  # neither profit nor loss
    assert compute_metrics(build_ledger([2e-9]), start=START, end=END)["win_rate"] == 1.0  # a real (tiny) win


def test_scratch_rate_counts_trades_closed_at_zero_with_the_win_rate_tolerance(five):
    # breakeven rounding (either sign) is a scratch, as it is not a win; 2e-9 is a real (tiny) win
    noise = [1.7763568394002505e-16, -2.2e-16, 0.0]
    ledger = build_ledger([*noise, 0.0005, -0.0004, 2e-9], exit_time=["2024-01-09 10:00"] * 6)
    m = compute_metrics(ledger, start=START, end=END)
    assert m["scratch_rate"] == pytest.approx(3 / 6)
    assert m["win_rate"] == pytest.approx(2 / 6)  # wins + scratches + losses = 1
    assert compute_metrics(five, start=START, end=END)["scratch_rate"] == pytest.approx(1 / 5)
    assert math.isnan(scratch_rate([]))
    assert headline(m)["scratch_rate"] == m["scratch_rate"]  # recorded in the registry, shown by `show`
    assert any(line.startswith("scratch (PnL = 0)") and "50.0%" in line for line in format_table([m]).splitlines())


def test_the_table_names_the_currency_of_the_ccy_rows(five):
    m = compute_metrics(five, start=START, end=END)
    rows = format_table([m], currency="EUR").splitlines()
    assert any(line.startswith("total PnL, EUR ") for line in rows)
    assert any(line.startswith("max drawdown, fraction (EUR) ") for line in rows)
    assert any(line.startswith("total PnL, account ccy ") for line in format_table([m]).splitlines())


def test_an_exit_at_the_spans_first_open_is_outside_it(make_ledger):
    """A close at exactly the span's start (midnight) was counted on the day before and dropped
    with it: the daily PnL summed to less than the ledger's."""
    ledger = make_ledger([0.01, -0.02], exit_time=["2017-01-03 00:00", "2017-01-05 12:00"])
    with pytest.raises(LedgerError, match="exit outside the evaluated span"):
        daily_table(ledger, "2017-01-03 00:00", "2017-01-07 00:00")
    assert daily_table(ledger, "2017-01-02 23:45", "2017-01-07 00:00")["pnl"].sum() == pytest.approx(-0.01)


def test_a_share_too_small_for_a_tenth_of_a_percent_is_not_shown_as_zero():
    """One time exit in 2,366 trades read `Ti0.0` in compare while v4's exact zeros were left
    out, and `show` said `time 0.0 %` (trial W): below 0.05 % a share reads `<0.1`."""
    from exitcore.evaluation.metrics import format_value
    from exitcore.words import share_percent

    assert [share_percent(v) for v in (1 / 2366, 0.0005, 0.883, 0.0)] == ["<0.1", "0.1", "88.3", "0.0"]
    assert format_value("exit_reasons", {"agent": 0.5, "stop": 0.4996, "time": 1 / 2366, "gap": 0.0}) == "A50.0 S50.0 Ti<0.1"
