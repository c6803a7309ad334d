"""Block bootstrap, PSR/DSR against the paper's formulas computed independently, paired tests."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from exitcore.evaluation.ledger_schema import LedgerError
from exitcore.evaluation.metrics import compute_metrics, daily_pnl
from exitcore.evaluation.significance import (
    block_bootstrap_indices,
    bootstrap_metrics,
    default_block_length,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    paired_difference,
    probabilistic_sharpe_ratio,
    psr_from_moments,
    rl_vs_best_baseline,
)

from ledgerkit import MONDAY, build_ledger


def random_ledger(n_days: int, seed: int, mean: float = 0.0005, sd: float = 0.004, policy: str = "rl", noise=None):
    """One trade per trading day, normal PnL."""
    rng = np.random.default_rng(seed)
    pnl = mean + sd * rng.standard_normal(n_days) if noise is None else mean + noise
    return build_ledger(list(pnl), policy=policy)


def span(n_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    last = pd.bdate_range(MONDAY, periods=n_days, tz="UTC")[-1]
    return MONDAY, last + pd.Timedelta(hours=23)


# --------------------------------------------------------------------------- independent normal CDF


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def phi_inv(p: float) -> float:
    lo, hi = -40.0, 40.0
    for _ in range(200):  # bisection on the erf-based CDF
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if phi(mid) < p else (lo, mid)
    return (lo + hi) / 2


# --------------------------------------------------------------------------- resampling


def test_block_length_rule():
    assert default_block_length(1) == 1
    assert default_block_length(500) == 8
    assert default_block_length(27) == 3


def test_circular_blocks_are_runs_of_consecutive_days():
    idx = block_bootstrap_indices(10, 50, 4, np.random.default_rng(1), "circular")
    assert idx.shape == (50, 10) and idx.min() >= 0 and idx.max() <= 9
    steps = (np.diff(idx, axis=1) % 10) == 1
    # positions 4 and 8 start new blocks; inside a block the next day follows (wrapping)
    inside = np.delete(steps, [3, 7], axis=1)
    assert inside.all()


def test_stationary_blocks_have_the_requested_mean_length():
    n, length = 400, 8
    idx = block_bootstrap_indices(n, 300, length, np.random.default_rng(2))
    assert idx.shape == (300, n) and idx.min() >= 0 and idx.max() < n
    continues = (np.diff(idx, axis=1) % n) == 1
    # a block continues with probability 1 - 1/L (a new block may also land on day+1 by chance)
    assert continues.mean() == pytest.approx(1 - 1 / length + 1 / (length * n), abs=0.01)


def test_resampling_is_seeded():
    a = block_bootstrap_indices(30, 5, 3, np.random.default_rng(7))
    b = block_bootstrap_indices(30, 5, 3, np.random.default_rng(7))
    c = block_bootstrap_indices(30, 5, 3, np.random.default_rng(8))
    assert (a == b).all() and not (a == c).all()
    with pytest.raises(ValueError, match="unknown bootstrap method"):
        block_bootstrap_indices(30, 5, 3, np.random.default_rng(7), "moving")


def test_bootstrap_estimates_match_the_metrics_and_intervals_contain_them():
    ledger = random_ledger(120, seed=3)
    start, end = span(120)
    m = compute_metrics(ledger, start=start, end=end)
    b = bootstrap_metrics(ledger, start=start, end=end, n_samples=500, seed=11)
    for key in ("sharpe", "mean_daily_pnl", "mean_return", "win_rate"):
        assert b[key]["estimate"] == pytest.approx(m[key]), key
        assert b[key]["low"] < b[key]["estimate"] < b[key]["high"], key
    assert b["block_length"] == default_block_length(120) and b["n_days"] == 120
    again = bootstrap_metrics(ledger, start=start, end=end, n_samples=500, seed=11)
    assert again["sharpe"] == b["sharpe"]
    other = bootstrap_metrics(ledger, start=start, end=end, n_samples=500, seed=12)
    assert other["sharpe"]["low"] != b["sharpe"]["low"]


def test_the_sharpe_interval_of_a_daily_series_is_the_ledgers():
    from exitcore.evaluation.significance import sharpe_interval

    ledger = random_ledger(120, seed=3)
    start, end = span(120)
    b = bootstrap_metrics(ledger, start=start, end=end, n_samples=500, seed=11)
    assert sharpe_interval(daily_pnl(ledger, start, end), n_samples=500, seed=11) == b["sharpe"]


def test_iid_bootstrap_standard_error_matches_the_textbook_formula():
    # block length 1 is the ordinary bootstrap: se(mean) ~ sd / sqrt(n)
    ledger = random_ledger(250, seed=4)
    start, end = span(250)
    b = bootstrap_metrics(ledger, start=start, end=end, n_samples=2000, block_length=1, seed=5)
    d = daily_pnl(ledger, start, end)
    assert b["mean_daily_pnl"]["se"] == pytest.approx(d.std(ddof=0) / math.sqrt(len(d)), rel=0.08)
    # and the Sharpe's se ~ sqrt((1 + SR^2 / 2) / n) per day (Lo 2002), annualised
    sr = d.mean() / d.std()
    assert b["sharpe"]["se"] == pytest.approx(math.sqrt((1 + sr**2 / 2) / len(d)) * math.sqrt(252), rel=0.12)


def test_per_trade_statistics_resample_the_trades_of_drawn_days():
    # two trades on day 0 (both wins), one loss on each other day: every resample draws trades
    # (a resample without any would leave the interval undefined)
    times = [MONDAY + pd.Timedelta(hours=10), MONDAY + pd.Timedelta(hours=14),
             *(MONDAY + pd.Timedelta(days=d, hours=12) for d in range(1, 5))]
    ledger = build_ledger([0.01, 0.02, -0.01, -0.01, -0.01, -0.01], exit_time=times)
    start, end = span(5)
    b = bootstrap_metrics(ledger, start=start, end=end, n_samples=400, seed=0)
    assert b["win_rate"]["estimate"] == pytest.approx(2 / 6)
    assert b["mean_return"]["estimate"] == pytest.approx(-0.01 / 6)
    # any resample's win rate is a ratio of wins to trades over whole days
    assert b["win_rate"]["undefined"] == 0 and 0 <= b["win_rate"]["low"] < b["win_rate"]["high"] <= 1


def test_bootstrap_of_2000_samples_is_fast():
    ledger = random_ledger(750, seed=6)
    start, end = span(750)
    t0 = time.perf_counter()
    bootstrap_metrics(ledger, start=start, end=end, n_samples=2000, seed=0)
    assert time.perf_counter() - t0 < 2.0


def one_winning_trade(n_days: int = 313) -> tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """A ledger with a single winning trade in ``n_days`` trading days, and its span."""
    start, end = span(n_days)
    return build_ledger([0.01], exit_time=[MONDAY + pd.Timedelta(days=14, hours=12)]), start, end


def test_a_resample_without_a_defined_statistic_leaves_the_interval_undefined():
    """One winning trade in 313 days: the resamples that miss it are flat (no Sharpe) and have
    no trade (no mean return). Dropping them gave the Sharpe interval [0.897, 1.559], its lower
    bound the estimate itself, excluding 0."""
    ledger, start, end = one_winning_trade()
    b = bootstrap_metrics(ledger, start=start, end=end, n_samples=2000, seed=0)
    assert b["sharpe"]["estimate"] == pytest.approx(0.897, abs=1e-3)
    for key in ("sharpe", "mean_return", "win_rate"):
        iv = b[key]
        assert iv["undefined"] > 0.2 * 2000, key  # ~ e^-1 of the resamples miss the one active day
        assert math.isnan(iv["low"]) and math.isnan(iv["high"]) and math.isnan(iv["se"]), key
    # the mean daily PnL is defined in every resample
    assert b["mean_daily_pnl"]["undefined"] == 0 and b["mean_daily_pnl"]["low"] == 0.0
    d = paired_difference(ledger, random_ledger(313, seed=1, policy="fixed_stop_target"), start=start, end=end,
                          n_samples=500, seed=0)
    assert d["sharpe"]["undefined"] > 0 and math.isnan(d["sharpe"]["low"]) and math.isnan(d["sharpe"]["p_le_zero"])
    assert d["mean_daily_pnl"]["undefined"] == 0 and 0 <= d["mean_daily_pnl"]["p_le_zero"] <= 1


def test_psr_and_dsr_need_thirty_active_days():
    """With one winning trade in 313 days the PSR and DSR were 0.977; under a true Sharpe of 0,
    PSR > 0.95 passed half the time with one active day."""
    from exitcore.evaluation.significance import MIN_ACTIVE_DAYS

    ledger, start, end = one_winning_trade()
    daily = daily_pnl(ledger, start, end).to_numpy()
    assert math.isnan(probabilistic_sharpe_ratio(daily))
    res = deflated_sharpe_ratio(daily, n_trials=1)
    assert math.isnan(res["dsr"]) and math.isnan(res["psr"]) and res["active_days"] == 1
    assert res["undefined"] == ("1 active day (days with an exit) < MIN_ACTIVE_DAYS = 30: too few for a probabilistic "
                                "Sharpe ratio")
    assert res["sharpe_annualised"] == pytest.approx(0.897, abs=1e-3)  # the Sharpe itself is still given
    # the count given wins over the nonzero days (a day of exits netting exactly 0 is active)
    rng = np.random.default_rng(3)
    r = np.zeros(313)
    r[:MIN_ACTIVE_DAYS - 1] = 0.001 + 0.004 * rng.standard_normal(MIN_ACTIVE_DAYS - 1)
    assert math.isnan(probabilistic_sharpe_ratio(r))
    assert 0 < probabilistic_sharpe_ratio(r, active_days=MIN_ACTIVE_DAYS) < 1
    given = deflated_sharpe_ratio(r, n_trials=2, active_days=MIN_ACTIVE_DAYS)
    assert given["undefined"] is None and 0 < given["dsr"] < given["psr"] < 1


def test_bad_arguments():
    ledger = random_ledger(20, seed=1)
    start, end = span(20)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_metrics(ledger, start=start, end=end, confidence=1.0)
    with pytest.raises(ValueError, match="n_samples"):
        bootstrap_metrics(ledger, start=start, end=end, n_samples=1)


@pytest.mark.parametrize(("length", "message"), [
    (10_000, r"block_length must lie in \[1, 20\] \(the days of the series\), got 10000"),
    (0, r"block_length must lie in \[1, 20\]"),
    (21, r"got 21"),
    (2.5, r"block_length must be an integer number of days, got 2.5"),
    (True, r"integer number of days, got True"),
])
def test_a_block_length_outside_the_series_is_refused(length, message):
    """With a block of 10,000 days over 313 every resample is a rotation of the series and the
    interval collapsed onto the estimate."""
    from exitcore.evaluation.significance import sharpe_interval

    ledger = random_ledger(20, seed=1)
    start, end = span(20)
    for fn in (lambda: bootstrap_metrics(ledger, start=start, end=end, block_length=length),
               lambda: paired_difference(ledger, ledger, start=start, end=end, block_length=length),
               lambda: sharpe_interval(daily_pnl(ledger, start, end), block_length=length)):
        with pytest.raises(ValueError, match=message):
            fn()
    assert bootstrap_metrics(ledger, start=start, end=end, block_length=20, n_samples=50)["block_length"] == 20


# --------------------------------------------------------------------------- PSR and DSR


def test_psr_equals_the_paper_formula_computed_by_hand():
    base = [0.010, -0.004, 0.007, 0.002, -0.012, 0.015, 0.001, -0.003, 0.006, 0.004]
    r = [x + k * 1e-4 for k in range(4) for x in base]  # 40 active days: the PSR needs 30
    n = len(r)
    mean = sum(r) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1))
    m2 = sum((x - mean) ** 2 for x in r) / n
    skew = sum((x - mean) ** 3 for x in r) / n / m2**1.5
    kurt = sum((x - mean) ** 4 for x in r) / n / m2**2
    sr = mean / sd
    for bench in (0.0, 0.1):
        z = (sr - bench) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
        assert probabilistic_sharpe_ratio(r, bench) == pytest.approx(phi(z), rel=1e-12)


def test_psr_basic_behaviour():
    assert psr_from_moments(0.0, 100, 0.0, 3.0) == pytest.approx(0.5)
    # negative skew and fat tails make the same Sharpe less convincing
    assert psr_from_moments(0.1, 250, -1.0, 8.0) < psr_from_moments(0.1, 250, 0.0, 3.0)
    assert psr_from_moments(0.1, 1000, 0.0, 3.0) > psr_from_moments(0.1, 100, 0.0, 3.0)
    with pytest.raises(ValueError, match="zero variance"):
        probabilistic_sharpe_ratio([0.01] * 5)


def test_the_normal_cdf_keeps_its_precision_in_the_lower_tail():
    # a clearly losing series has a tiny PSR, not exactly 0 (1 + erf(z/√2) lost every digit)
    z = -0.6 * math.sqrt(312) / math.sqrt(1 + 2 / 4 * 0.36)
    assert psr_from_moments(-0.6, 313, 0.0, 3.0) == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), rel=1e-12, abs=0)
    assert 0 < psr_from_moments(-0.6, 313, 0.0, 3.0) < 1e-21
    from exitcore.evaluation.significance import normal_cdf

    assert normal_cdf(-10) == pytest.approx(7.619853024160527e-24, rel=1e-12, abs=0)  # 1 + erf gave 0.0
    assert normal_cdf(-8) == pytest.approx(6.220960574271785e-16, rel=1e-12, abs=0)  # 1 + erf: 6.1e-16
    assert normal_cdf(0) == 0.5 and normal_cdf(1.96) == pytest.approx(0.9750021048517795, rel=1e-14)


def test_expected_max_sharpe_by_hand():
    v, n = 0.04, 20
    expected = math.sqrt(v) * ((1 - 0.5772156649) * phi_inv(1 - 1 / n) + 0.5772156649 * phi_inv(1 - 1 / (n * math.e)))
    assert expected_max_sharpe(n, v) == pytest.approx(expected, rel=1e-8)
    assert expected_max_sharpe(1, v) == 0.0
    assert expected_max_sharpe(100, v) > expected_max_sharpe(10, v)
    with pytest.raises(ValueError, match="at least 1"):
        expected_max_sharpe(0, v)


def test_dsr_reproduces_the_papers_numerical_example():
    # Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example: N = 100
    # trials, V[SR] = 1/2 annualised, T = 1250 daily returns, skew -3, kurtosis 10, annualised
    # SR 2.5, 250 days a year -> SR0 = 0.1132 per day and DSR = 0.9004.
    days = 250
    sr0 = expected_max_sharpe(100, 0.5 / days)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert psr_from_moments(2.5 / math.sqrt(days), 1250, -3.0, 10.0, sr0) == pytest.approx(0.9004, abs=5e-5)


def test_dsr_from_returns_and_its_default_trial_variance():
    rng = np.random.default_rng(9)
    r = 0.0004 + 0.004 * rng.standard_normal(500)
    one = deflated_sharpe_ratio(r, n_trials=1)
    many = deflated_sharpe_ratio(r, n_trials=50)
    assert one["dsr"] == pytest.approx(one["psr"])  # a single trial is not deflated
    assert many["dsr"] < one["dsr"]
    assert many["variance_default"] and many["trials_sharpe_variance"] == pytest.approx(1 / 499)
    assert many["sr0"] == pytest.approx(expected_max_sharpe(50, 1 / 499))
    assert many["sharpe_annualised"] == pytest.approx(many["sharpe"] * math.sqrt(252))
    given = deflated_sharpe_ratio(r, n_trials=50, trials_sharpe_variance=0.01)
    assert not given["variance_default"] and given["sr0"] == pytest.approx(expected_max_sharpe(50, 0.01))


def series_with_sharpe(annualised: float, n_days: int = 313, seed: int = 0) -> np.ndarray:
    """Normal daily returns rescaled to an exact annualised Sharpe."""
    z = np.random.default_rng(seed).standard_normal(n_days)
    z = (z - z.mean()) / z.std(ddof=1)
    return 0.004 * (z + annualised / math.sqrt(252))


#: three v4 seeds at the quick budget (annualised): their dispersion is 8.4 times the null's
QUICK_SEEDS = (-2.38, -6.63, -1.90)


def test_the_run_time_dsr_variance_is_the_larger_of_the_null_and_the_recorded_trials():
    """With V = 1/(T-1) alone, three dispersed seeds put SR0 at 0.95 instead of 2.74 (annualised)
    and a Sharpe of 2.0 got a DSR of 0.88: the default erred for the result, not against it."""
    r = series_with_sharpe(2.0)
    seeds = [s / math.sqrt(252) for s in QUICK_SEEDS]
    null = deflated_sharpe_ratio(r, n_trials=4)
    assert null["variance_source"] == "null 1/(T-1)" and null["variance_default"] and null["recorded_trials"] == 0
    assert null["sr0_annualised"] == pytest.approx(0.95, abs=0.01) and null["dsr"] == pytest.approx(0.88, abs=0.01)
    assert np.var(seeds, ddof=1) == pytest.approx(0.0269, abs=1e-4)  # 8.4 x the null 1/312
    run = deflated_sharpe_ratio(r, n_trials=4, recorded_sharpes=seeds)
    expected = np.var([*seeds, 2.0 / math.sqrt(252)], ddof=1)  # this run's own Sharpe included
    assert run["variance_source"] == "recorded: 4 trials" and not run["variance_default"]
    assert run["trials_sharpe_variance"] == pytest.approx(expected) == run["recorded_variance"]
    assert run["sr0"] == pytest.approx(expected_max_sharpe(4, expected))
    assert run["sr0_annualised"] > 2.74 and run["dsr"] < 0.21
    # seeds that agree (correlated trials) disperse less than the null: the null is kept
    close = deflated_sharpe_ratio(r, n_trials=4, recorded_sharpes=[2.0 / math.sqrt(252), 2.01 / math.sqrt(252)])
    assert close["variance_source"] == "null 1/(T-1)" and close["trials_sharpe_variance"] == pytest.approx(1 / 312)
    assert close["recorded_trials"] == 3 and close["recorded_variance"] < 1 / 312 and close["dsr"] == null["dsr"]
    # no other trial: one Sharpe has no dispersion, the null it is
    alone = deflated_sharpe_ratio(r, n_trials=1, recorded_sharpes=[])
    assert alone["variance_source"] == "null 1/(T-1)" and math.isnan(alone["recorded_variance"])
    with pytest.raises(ValueError, match="not both"):
        deflated_sharpe_ratio(r, 4, 0.01, recorded_sharpes=seeds)


def _record(reg, config: str, seed: int, metrics: dict, status: str = "done") -> str:
    run = reg.create_run("exp", config, "data", seed=seed)
    reg.mark_running(run)
    if status == "done":
        reg.mark_done(run, metrics)
    else:
        reg.mark_failed(run)
        reg.set_metrics(run, metrics)
    return run


def test_recorded_trial_sharpes_take_one_run_per_trial_and_leave_out_audit_failures(tmp_path):
    from exitcore.evaluation.significance import recorded_trial_sharpes
    from exitcore.registry import Registry
    from exitcore.runner import other_trials_sharpes

    reg = Registry(tmp_path)
    _record(reg, "c1", 0, {"split": "test", "sharpe": 5.0})
    _record(reg, "c1", 0, {"split": "test", "sharpe": 0.5})  # the same trial again: its latest run speaks
    _record(reg, "c1", 1, {"split": "test", "sharpe": 1.5})  # another seed: another trial
    _record(reg, "c2", 0, {"split": "test", "sharpe": 9.0, "audit_verdict": "FAIL"})  # look-ahead
    _record(reg, "c3", 0, {"split": "test", "sharpe": -1.0, "audit_verdict": "SUSPECT"})
    _record(reg, "c4", 0, {"split": "train", "sharpe": 7.0})  # in-sample
    _record(reg, "c5", 0, {"split": "test", "sharpe": float("nan")})
    _record(reg, "c6", 0, {"split": "test", "sharpe": 3.0}, status="failed")  # never finished
    records = reg.list(data_hash="data")
    daily = [s / math.sqrt(252) for s in (0.5, 1.5, -1.0)]
    assert recorded_trial_sharpes(records) == pytest.approx(daily)
    assert recorded_trial_sharpes(records, exclude=("c1", 0, "")) == pytest.approx(daily[1:])
    assert other_trials_sharpes(reg, "data", ("c1", 1, "")) == pytest.approx([daily[0], daily[2]])
    assert reg.trial_count("data") == 7  # every trial still counts in N, the FAIL and the unfinished included


# --------------------------------------------------------------------------- paired differences


def test_paired_difference_of_a_policy_with_itself_is_exactly_zero():
    ledger = random_ledger(100, seed=2)
    start, end = span(100)
    d = paired_difference(ledger, ledger, start=start, end=end, n_samples=300, seed=1)
    for key in ("sharpe", "mean_daily_pnl"):
        assert d[key]["estimate"] == 0 and d[key]["low"] == 0 and d[key]["high"] == 0


def test_pairing_cancels_the_shared_noise():
    # both policies see the same market noise; one adds a small constant edge per trade
    rng = np.random.default_rng(3)
    noise = 0.004 * rng.standard_normal(200)
    a = random_ledger(200, seed=0, mean=0.0006, noise=noise, policy="rl")
    b = random_ledger(200, seed=0, mean=0.0002, noise=noise, policy="fixed_stop_target")
    start, end = span(200)
    d = paired_difference(a, b, start=start, end=end, n_samples=500, seed=4)
    assert d["mean_daily_pnl"]["estimate"] == pytest.approx(0.0004)
    # identical noise: every resample's mean difference is the constant edge
    assert d["mean_daily_pnl"]["low"] == pytest.approx(0.0004) and d["mean_daily_pnl"]["high"] == pytest.approx(0.0004)
    assert d["sharpe"]["low"] > 0 and d["sharpe"]["p_le_zero"] == 0.0


def test_rl_against_the_best_baseline():
    rng = np.random.default_rng(5)
    noise = 0.004 * rng.standard_normal(150)
    start, end = span(150)
    ledger = pd.concat(
        [
            random_ledger(150, 0, mean=0.0005, noise=noise, policy="rl"),
            random_ledger(150, 0, mean=0.0001, noise=noise, policy="fixed_stop_target"),
            random_ledger(150, 0, mean=0.0003, noise=noise, policy="trailing_stop_2.0atr"),
            random_ledger(150, 0, mean=0.0009, noise=noise, policy="rl_sample_1"),  # not a baseline
        ],
        ignore_index=True,
    )
    res = rl_vs_best_baseline(ledger, start=start, end=end, n_samples=300, seed=0)
    assert res["baseline"] == "trailing_stop_2.0atr"
    assert set(res["baseline_sharpes"]) == {"fixed_stop_target", "trailing_stop_2.0atr"}
    assert res["mean_daily_pnl"]["estimate"] == pytest.approx(0.0002)
    with pytest.raises(LedgerError, match="no policy 'rl_x'"):
        rl_vs_best_baseline(ledger, start=start, end=end, rl_policy="rl_x")
    with pytest.raises(LedgerError, match="no baseline"):
        rl_vs_best_baseline(ledger[ledger["policy"] == "rl"], start=start, end=end)


def test_dsr_takes_its_number_of_trials_from_the_registry(tmp_path):
    from exitcore.evaluation.significance import deflated_sharpe_from_registry
    from exitcore.registry import Registry

    rng = np.random.default_rng(12)
    r = 0.0004 + 0.004 * rng.standard_normal(300)
    reg = Registry(tmp_path)
    with pytest.raises(ValueError, match="no run is recorded for data hash 'data'"):
        deflated_sharpe_from_registry(r, reg, "data")
    sharpes = {"c1": 0.5, "c2": 1.5, "c3": -0.2}
    for cfg, sharpe in sharpes.items():
        run = reg.create_run("exp", cfg, "data")
        reg.mark_running(run)
        reg.mark_done(run, {"split": "test", "sharpe": sharpe})
    train = reg.create_run("exp", "c4", "data")
    reg.mark_failed(train)
    reg.set_metrics(train, {"split": "train", "sharpe": 9.0})  # in-sample: not a test-split Sharpe
    reg.create_run("exp", "c1", "other")

    res = deflated_sharpe_from_registry(r, reg, "data")
    assert res["n_trials"] == 4 and res["variance_default"] and res["recorded_sharpes"] == 0
    assert res["dsr"] == pytest.approx(deflated_sharpe_ratio(r, n_trials=4)["dsr"])
    rec = deflated_sharpe_from_registry(r, reg, "data", recorded_variance=True)
    expected_var = np.var([s / math.sqrt(252) for s in sharpes.values()], ddof=1)
    assert rec["recorded_sharpes"] == 3 and rec["trials_sharpe_variance"] == pytest.approx(expected_var)
    assert rec["dsr"] == pytest.approx(deflated_sharpe_ratio(r, 4, expected_var)["dsr"])
    assert rec["variance_source"] == "recorded: 3 trials"
    # "max": what a run uses, the recorded trials with this series' own Sharpe, never below the null
    run = deflated_sharpe_from_registry(r, reg, "data", recorded_variance="max")
    own = run["sharpe"]
    assert run["trials_sharpe_variance"] == pytest.approx(max(1 / 299, np.var([*(s / math.sqrt(252) for s in sharpes.values()), own], ddof=1)))
    assert run["dsr"] == pytest.approx(deflated_sharpe_ratio(r, 4, recorded_sharpes=[s / math.sqrt(252) for s in sharpes.values()])["dsr"])
    # how many recorded Sharpes were used: the registry's 3 in both modes (the series' own is not recorded)
    assert not run["variance_default"] and run["recorded_sharpes"] == 3, run
    with pytest.raises(ValueError, match="False, True or 'max'"):
        deflated_sharpe_from_registry(r, reg, "data", recorded_variance="yes")


def test_a_ledger_mixing_policies_or_splits_is_refused():
    start, end = span(10)
    mixed = pd.concat([random_ledger(10, 1), random_ledger(10, 2, policy="time_exit")], ignore_index=True)
    with pytest.raises(LedgerError, match="mixes several policy values"):
        bootstrap_metrics(mixed, start=start, end=end)
    train = build_ledger([0.01] * 3, split="train")
    with pytest.raises(LedgerError, match="same split"):
        paired_difference(random_ledger(10, 1), train, start=start, end=end)
