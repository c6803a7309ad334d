"""Is the result real? Bootstrap intervals, probabilistic and deflated Sharpe ratios, paired tests.

All methods work on the **daily** PnL series of :func:`exitcore.evaluation.metrics.daily_pnl`
(every trading day of the evaluated span, zero days included), because days, not trades, are
the units that are roughly independent: trades cluster in time and overlap.

* **Block bootstrap over days.** Resampling single days would destroy volatility clustering and
  understate the uncertainty; resampling *blocks* of consecutive days keeps it. The default is
  the stationary bootstrap (Politis & Romano 1994: blocks of geometric length with mean ``L``,
  wrapping around the end) with ``L = round(T^(1/3))`` for ``T`` days, the rate that minimises
  the error of bootstrap variance estimates (Hall, Horowitz & Jing 1995), e.g. 8 days for two
  years of data. ``method="circular"`` uses fixed-length blocks instead (Politis & Romano 1992).
  Per-trade statistics (mean return, win rate) are bootstrapped by resampling days and taking
  the trades of those days. Intervals are percentile intervals.
* **Probabilistic Sharpe ratio** (Bailey & López de Prado 2012): the probability that the true
  Sharpe exceeds a benchmark, given the estimate's length, skewness and kurtosis.
* **Deflated Sharpe ratio** (Bailey & López de Prado 2014): the PSR against the Sharpe ratio
  the best of ``N`` worthless trials would show by luck. ``N`` comes from the run registry
  (:meth:`exitcore.registry.Registry.trial_count`), never typed by hand.
* **Paired differences** RL − baseline on the same days, with the same bootstrap resamples.

numpy only (no scipy): the normal CDF is :func:`normal_cdf` (``math.erfc``), its inverse
:class:`statistics.NormalDist`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from exitcore.evaluation.ledger_schema import LedgerError, validate_ledger
from exitcore.evaluation.metrics import TRADING_DAYS_PER_YEAR, annualised_sharpe, daily_table, is_flat, single_value

_NORMAL = NormalDist()
#: Euler–Mascheroni constant, in the expected maximum of N normal draws
EULER_GAMMA = 0.5772156649015329
#: a daily Sharpe times this is annualised
ANNUALISATION = math.sqrt(TRADING_DAYS_PER_YEAR)
#: where a figure came from when the caller gave it (``variance_source``, ``n_trials_source``)
GIVEN_BY_CALLER = "given by the caller"

Seed = int | np.random.Generator | None


# --------------------------------------------------------------------------- resampling


#: the resampling seed of a run's intervals (the significance evaluator's and walk-forward's),
#: not its training seed: runs on the same days then draw the same resampled days, so the same
#: baseline gets the same interval in every run (with the training seed, one unchanged baseline
#: read [-3.84, 0.00] in one run and [-3.81, -0.09] in the next)
BOOTSTRAP_SEED = 0


def default_block_length(n_days: int) -> int:
    """Mean block length for ``n_days`` days: ``max(1, round(n_days ** (1/3)))``."""
    return max(1, round(n_days ** (1 / 3)))


def checked_block_length(block_length: int | None, n_days: int) -> int:
    """The mean block length to use for ``n_days`` days: ``block_length``, or the default for None.

    ValueError unless it is an integer with ``1 <= block_length <= n_days``: a longer block
    is the whole series (every resample a rotation of it, so the interval collapses onto the
    estimate: with 10,000 days over 313 it did).
    """
    if block_length is None:
        return default_block_length(n_days)
    if isinstance(block_length, bool) or not isinstance(block_length, (int, np.integer)):
        raise ValueError(f"block_length must be an integer number of days, got {block_length!r}")
    if not 1 <= block_length <= n_days:
        raise ValueError(f"block_length must lie in [1, {n_days}] (the days of the series), got {block_length}")
    return int(block_length)


def block_bootstrap_indices(
    n: int, n_samples: int, block_length: int, rng: np.random.Generator, method: str = "stationary"
) -> np.ndarray:
    """Day indices of ``n_samples`` block-bootstrap resamples of a series of length ``n``.

    Returns an int array ``(n_samples, n)``; row ``b`` lists the days of resample ``b``.
    ``stationary``: each position starts a new block with probability ``1 / block_length``
    (always at position 0) at a uniformly drawn day, otherwise continues the previous day + 1;
    blocks wrap around the end. ``circular``: blocks of exactly ``block_length`` days starting
    at uniformly drawn days, wrapping around, concatenated and cut to ``n``. Fully vectorised.
    """
    if n < 1 or n_samples < 1 or block_length < 1:
        raise ValueError(f"need n, n_samples, block_length >= 1, got {n}, {n_samples}, {block_length}")
    t = np.arange(n)
    if method == "circular":
        n_blocks = -(-n // block_length)
        starts = rng.integers(0, n, size=(n_samples, n_blocks, 1))
        return ((starts + np.arange(block_length)) % n).reshape(n_samples, -1)[:, :n]
    if method != "stationary":
        raise ValueError(f"unknown bootstrap method {method!r}; expected 'stationary' or 'circular'")
    new_block = rng.random((n_samples, n)) < 1.0 / block_length
    new_block[:, 0] = True
    starts = rng.integers(0, n, size=(n_samples, n))
    # the position where the block covering t began, and how far t is into it
    block_begin = np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
    first_day = np.take_along_axis(starts, block_begin, axis=1)
    return (first_day + (t - block_begin)) % n


def _one_series(ledger: pd.DataFrame) -> None:
    """A valid ledger of one policy on one split: summing several policies' PnL per day means nothing."""
    validate_ledger(ledger)
    if len(ledger):
        single_value(ledger, "split")
        single_value(ledger, "policy")


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _sharpe_rows(x: np.ndarray) -> np.ndarray:
    """Annualised Sharpe of each row (NaN where the std is zero, :func:`is_flat`), as in ``annualised_sharpe``."""
    sd = x.std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(is_flat(sd, x, axis=1), np.nan, x.mean(axis=1) / sd * ANNUALISATION)


def _interval(estimate: float, samples: np.ndarray, confidence: float) -> dict[str, Any]:
    """``{estimate, low, high, se, undefined}``: the percentile interval of ``samples``.

    A resample whose statistic is undefined (NaN: no trade drawn, a flat series) makes the whole
    interval NaN. Dropping such resamples would condition on the defined ones: with one winning
    trade in 313 days every resample that missed the trade was dropped, and the 95 % Sharpe
    interval's lower bound was the estimate itself (0.90). ``undefined`` counts them.
    """
    undefined = int(np.count_nonzero(~np.isfinite(samples)))
    if undefined:
        return {"estimate": estimate, "low": math.nan, "high": math.nan, "se": math.nan, "undefined": undefined}
    alpha = (1 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return {
        "estimate": estimate,
        "low": float(low),
        "high": float(high),
        "se": float(samples.std(ddof=1)) if samples.size > 1 else math.nan,
        "undefined": 0,
    }


def _resampled_days(n: int, n_samples: int, block_length: int | None, method: str, seed: Seed) -> tuple[int, np.ndarray]:
    """``(L, idx)``: the checked mean block length and ``n_samples`` resamples of ``n`` days'
    indices, as every interval of this module draws them."""
    length = checked_block_length(block_length, n)
    return length, block_bootstrap_indices(n, n_samples, length, _rng(seed), method)


def _check_confidence(confidence: float, n_samples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2, got {n_samples}")


def bootstrap_metrics(
    ledger: pd.DataFrame,
    *,
    start: Any,
    end: Any,
    n_samples: int = 2000,
    confidence: float = 0.95,
    block_length: int | None = None,
    method: str = "stationary",
    seed: Seed = 0,
) -> dict[str, Any]:
    """Point estimates and block-bootstrap percentile intervals for one policy's ledger.

    Statistics: ``sharpe`` (annualised, daily), ``mean_daily_pnl``, ``mean_return`` (per trade:
    ``Σ pnl / Σ trades`` over the resampled days) and ``win_rate`` (``Σ wins / Σ trades``). Each
    maps to ``{estimate, low, high, se, undefined}``; ``se`` is the bootstrap standard error.
    ``undefined`` counts the resamples where the statistic is undefined (no trade drawn, zero
    std); when any is, ``low``, ``high`` and ``se`` are NaN rather than conditioned on the rest.
    ``block_length`` (mean, in days) defaults to ``round(T^(1/3))`` and must lie in ``[1, T]``
    (:func:`checked_block_length`). The result also records ``confidence``, ``n_samples``,
    ``block_length``, ``method``, ``n_days`` and the seed, so the interval can be reproduced.
    """
    _check_confidence(confidence, n_samples)
    _one_series(ledger)
    days = daily_table(ledger, start, end)
    n = len(days)
    length, idx = _resampled_days(n, n_samples, block_length, method, seed)
    pnl = days["pnl"].to_numpy()
    trades = days["n_trades"].to_numpy()
    wins = days["wins"].to_numpy()
    boot_pnl = pnl[idx]
    boot_trades = trades[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_mean_return = np.where(boot_trades > 0, boot_pnl.sum(axis=1) / boot_trades, np.nan)
        boot_win_rate = np.where(boot_trades > 0, wins[idx].sum(axis=1) / boot_trades, np.nan)
    n_trades = int(trades.sum())
    return {
        "sharpe": _interval(annualised_sharpe(pnl), _sharpe_rows(boot_pnl), confidence),
        "mean_daily_pnl": _interval(float(pnl.mean()), boot_pnl.mean(axis=1), confidence),
        "mean_return": _interval(float(pnl.sum() / n_trades) if n_trades else math.nan, boot_mean_return, confidence),
        "win_rate": _interval(float(wins.sum() / n_trades) if n_trades else math.nan, boot_win_rate, confidence),
        "confidence": confidence,
        "n_samples": n_samples,
        "block_length": length,
        "method": method,
        "n_days": n,
        "seed": seed if isinstance(seed, int) else None,
    }


def sharpe_interval(
    daily: Any,
    *,
    n_samples: int = 2000,
    confidence: float = 0.95,
    block_length: int | None = None,
    method: str = "stationary",
    seed: Seed = 0,
) -> dict[str, Any]:
    """The block-bootstrap interval of the annualised Sharpe of a daily PnL series.

    What :func:`bootstrap_metrics` reports as ``sharpe``, from the daily series itself rather
    than a ledger (for simulations: ``benchmarks/sim_significance.py``):
    ``{estimate, low, high, se, undefined}``.
    """
    _check_confidence(confidence, n_samples)
    d = np.asarray(daily, dtype=float)
    _, idx = _resampled_days(len(d), n_samples, block_length, method, seed)
    return _interval(annualised_sharpe(d), _sharpe_rows(d[idx]), confidence)


# --------------------------------------------------------------------------- PSR and DSR

#: fewer active days (days with at least one exit) than this leave the PSR and DSR undefined
#: (NaN): with few nonzero days the moments are dominated by them and the PSR is far too
#: confident (a true Sharpe of 0 passed PSR > 0.95 half the time with 1 active day, 28 % with
#: 2, 15 % with 5, 7.4 % with 20: benchmarks/sim_significance.py). The same 30 as the audit's
#: ``MIN_TRADES_FOR_RULES``.
MIN_ACTIVE_DAYS = 30


#: fewer days than this in an evaluated span: the percentile intervals cover clearly less than
#: their level, and the summary and report say so. A nominal 95 % Sharpe interval covered the
#: true Sharpe of iid normal days 0.84 of the time over 8 days, 0.88 over 20, 0.905 over 30,
#: 0.92 over 60, 0.93 over 120 and 0.94 over 313 (benchmarks/sim_significance.py, 2,000 series each).
SHORT_SPAN_DAYS = 60


def short_span_words(n_days: Any) -> str | None:
    """Why the intervals of a span of ``n_days`` days cover less than their level, or None
    from :data:`SHORT_SPAN_DAYS` days on (or when ``n_days`` is not a count)."""
    if not isinstance(n_days, int) or isinstance(n_days, bool) or n_days >= SHORT_SPAN_DAYS:
        return None
    return (f"only {n_days} day{'' if n_days == 1 else 's'} evaluated: on fewer than {SHORT_SPAN_DAYS} days the "
            "bootstrap intervals cover less than their level (a 95% Sharpe interval covered the true Sharpe 84% of "
            "the time over 8 days, 88% over 20, 90.5% over 30 in simulation; docs/evaluation.md), so read them and "
            "their p-values as rough: a longer test split gives intervals worth their level")


def too_few_active_days(returns: Any, active_days: int | None = None) -> str | None:
    """Why a PSR of ``returns`` is undefined for lack of active days, or None when it is not.

    ``active_days`` is the number of days with at least one exit; by default the days with a
    nonzero return (a day whose exits net exactly 0 is then not counted: erring against the
    result).
    """
    active = int(np.count_nonzero(np.asarray(returns, dtype=float))) if active_days is None else int(active_days)
    if active >= MIN_ACTIVE_DAYS:
        return None
    return (f"{active} active day{'' if active == 1 else 's'} (days with an exit) < MIN_ACTIVE_DAYS = "
            f"{MIN_ACTIVE_DAYS}: too few for a probabilistic Sharpe ratio")


def _moments(returns: np.ndarray) -> tuple[float, float, float]:
    """Per-period Sharpe ``mean / std`` (ddof=1), skewness and (non-excess) kurtosis.

    Skewness ``γ3 = m3 / m2^(3/2)`` and kurtosis ``γ4 = m4 / m2²`` use the central moments
    ``m_k = mean((r − mean)^k)``, as in the paper (a normal series has ``γ3 = 0``, ``γ4 = 3``).
    """
    r = np.asarray(returns, dtype=float)
    if r.size < 3:
        raise ValueError(f"need at least 3 returns for a probabilistic Sharpe ratio, got {r.size}")
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    if is_flat(math.sqrt(m2), r):
        raise ValueError("returns have zero variance: the Sharpe ratio is undefined")
    skew = float(np.mean(centred**3)) / m2**1.5
    kurt = float(np.mean(centred**4)) / m2**2
    return float(r.mean() / r.std(ddof=1)), skew, kurt


def normal_cdf(z: float) -> float:
    """``Φ(z)`` as ``erfc(−z / √2) / 2``, accurate in the lower tail.

    ``(1 + erf(z / √2)) / 2`` (what :class:`statistics.NormalDist` computes) subtracts two
    numbers close to 1 there and loses every digit: it gives ``Φ(−10) = 0`` instead of 7.6e-24.
    """
    return 0.5 * math.erfc(-z / math.sqrt(2))


def psr_from_moments(sharpe: float, n: int, skew: float, kurtosis: float, benchmark_sharpe: float = 0.0) -> float:
    """PSR from the statistics of a return series (Bailey & López de Prado 2012)::

        PSR(SR*) = Φ( (SR − SR*) √(n − 1) / √(1 − γ3·SR + (γ4 − 1)/4 · SR²) )

    ``sharpe`` (``SR``) and ``benchmark_sharpe`` (``SR*``) are per period (*not* annualised),
    ``n`` the number of returns, ``skew`` ``γ3`` and ``kurtosis`` ``γ4`` (non-excess: 3 for a
    normal series).
    """
    if n < 2:
        raise ValueError(f"need at least 2 returns, got {n}")
    denom = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    # the denominator is a variance factor; it is positive except for degenerate samples
    if denom <= 0:
        raise ValueError(f"degenerate return distribution (variance factor {denom:.3g} <= 0)")
    return normal_cdf((sharpe - benchmark_sharpe) * math.sqrt(n - 1) / math.sqrt(denom))


def probabilistic_sharpe_ratio(returns: Any, benchmark_sharpe: float = 0.0, *, active_days: int | None = None) -> float:
    """PSR: the probability that the true per-period Sharpe of ``returns`` exceeds ``benchmark_sharpe``.

    :func:`psr_from_moments` with the Sharpe (``mean / std``, ``ddof = 1``), skewness and
    kurtosis of ``returns`` (daily PnL: the Sharpe is daily, divide an annual benchmark by √252).
    NaN with fewer than :data:`MIN_ACTIVE_DAYS` active days (:func:`too_few_active_days` says
    why; ``active_days`` defaults to the days with a nonzero return).
    """
    r = np.asarray(returns, dtype=float)
    sr, skew, kurt = _moments(r)
    if too_few_active_days(r, active_days):
        return math.nan
    return psr_from_moments(sr, len(r), skew, kurt, benchmark_sharpe)


def expected_max_sharpe(n_trials: int, trials_sharpe_variance: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` independent trials whose true Sharpe is zero.

    Bailey & López de Prado (2014), with ``V`` the variance of the trials' Sharpe estimates and
    ``γ`` the Euler–Mascheroni constant::

        SR0 = √V · ( (1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e)) )

    For ``N = 1`` there is no selection and ``SR0 = 0``.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1 (it counts this run), got {n_trials}")
    if trials_sharpe_variance < 0:
        raise ValueError(f"trials_sharpe_variance must be >= 0, got {trials_sharpe_variance}")
    if n_trials == 1:
        return 0.0
    z = (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n_trials) + EULER_GAMMA * _NORMAL.inv_cdf(
        1 - 1 / (n_trials * math.e)
    )
    return math.sqrt(trials_sharpe_variance) * z


#: ``variance_source`` of a DSR whose trials' variance is the null ``1 / (T − 1)``
NULL_VARIANCE_SOURCE = "null 1/(T-1)"


def null_sharpe_variance(n_days: int) -> float:
    """``1 / (T − 1)``: the sampling variance of a per-day Sharpe estimate over ``T`` days when
    the true Sharpe is zero (Lo 2002), the dispersion independent worthless trials would show."""
    if n_days < 2:
        raise ValueError(f"need at least 2 days for a Sharpe variance, got {n_days}")
    return 1.0 / (n_days - 1)


def recorded_trial_sharpes(records: Any, split: str = "test", *, exclude: tuple[str, int, str] | None = None) -> list[float]:
    """Per-day headline Sharpes (annualised / √252) of the trials recorded in ``records``.

    ``records`` are registry rows (:class:`exitcore.registry.RunRecord`) of one dataset. A trial
    is a distinct ``record.trial`` (configuration hash, seed and plugin code), as in
    :meth:`~exitcore.registry.Registry.trial_count`;
    the latest finished (``done``) run speaks for it. Left out: trials measured on another
    ``split`` or without a finite Sharpe, and those whose audit verdict is ``FAIL`` (their
    Sharpe comes from look-ahead; they still count in ``N``). ``exclude`` is a
    trial to leave out: the run being evaluated, whose own Sharpe the caller
    adds from its returns.
    """
    latest: dict[tuple[str, int, str], tuple[tuple[str, int], Any]] = {}
    for order, record in enumerate(records):
        key = record.trial
        if record.status != "done" or key == exclude:
            continue
        rank = (record.ended_at or "", order)
        if key not in latest or rank > latest[key][0]:
            latest[key] = (rank, record)
    out = []
    for _, record in latest.values():
        metrics = record.metrics
        sharpe = metrics.get("sharpe")
        if (metrics.get("split") == split and metrics.get("audit_verdict") != "FAIL"
                and isinstance(sharpe, (int, float)) and not isinstance(sharpe, bool) and math.isfinite(sharpe)):
            out.append(float(sharpe) / ANNUALISATION)
    return out


def conservative_trials_variance(n_days: int, trial_sharpes: Any) -> dict[str, Any]:
    """The trials' Sharpe variance a run's DSR uses: ``V = max(1 / (T − 1), V_rec)``.

    ``V_rec`` is the sample variance (``ddof = 1``) of ``trial_sharpes`` (per-day Sharpes, one per
    trial, this run's included) when there are at least two, else only the null is used. The
    null is what independent worthless trials would show; seeds of a short training can disperse
    more than that, and taking the larger keeps the DSR erring against the result. Returns
    ``trials_sharpe_variance`` (the ``V`` used), ``variance_source`` (``"null 1/(T-1)"`` or
    ``"recorded: k trials"``), ``recorded_variance`` (``V_rec``, NaN with fewer than two) and
    ``recorded_trials`` (``k``).
    """
    sharpes = np.asarray(list(trial_sharpes), dtype=float)
    null = null_sharpe_variance(n_days)
    recorded = float(np.var(sharpes, ddof=1)) if sharpes.size >= 2 else math.nan
    use_recorded = recorded > null  # False for NaN
    return {
        "trials_sharpe_variance": recorded if use_recorded else null,
        "variance_source": f"recorded: {sharpes.size} trials" if use_recorded else NULL_VARIANCE_SOURCE,
        "recorded_variance": recorded,
        "recorded_trials": int(sharpes.size),
    }


def deflated_sharpe_ratio(
    returns: Any,
    n_trials: int,
    trials_sharpe_variance: float | None = None,
    *,
    recorded_sharpes: Any = None,
    active_days: int | None = None,
) -> dict[str, Any]:
    """DSR: the PSR of ``returns`` against the expected best Sharpe of ``n_trials`` trials.

    ``DSR = PSR(SR0)`` with ``SR0 = expected_max_sharpe(N, V)`` (per period). ``n_trials`` is
    the number of runs recorded for the dataset (``Registry.trial_count(data_hash)``), this one
    included. ``V``, the variance of the trials' per-period Sharpe ratios, is one of:

    * ``trials_sharpe_variance``, when the caller gives it;
    * with ``recorded_sharpes`` (the per-period Sharpes of the *other* recorded trials, see
      :func:`recorded_trial_sharpes`): :func:`conservative_trials_variance` of those and this
      series' own Sharpe, ``max(1 / (T − 1), their sample variance)``: what a run uses;
    * by default ``1 / (T − 1)``, the sampling variance of a Sharpe estimate over ``T`` days
      when the true Sharpe is zero (Lo 2002): the dispersion worthless trials on the same days
      would show by luck alone.

    Returns ``dsr``, ``psr`` (against 0), ``sharpe`` (per period), ``sharpe_annualised``,
    ``sr0`` and ``sr0_annualised``, ``n_trials``, ``trials_sharpe_variance`` (the ``V`` used),
    whether it was the null (``variance_default``), ``variance_source`` (``"null 1/(T-1)"``,
    ``"recorded: k trials"`` or ``"given by the caller"``), ``recorded_variance`` and
    ``recorded_trials`` (NaN and 0 unless ``recorded_sharpes`` was given), ``skew``,
    ``kurtosis``, ``n_days``, ``active_days`` and ``undefined``: None, or why ``dsr`` and ``psr``
    are NaN (fewer than :data:`MIN_ACTIVE_DAYS` active days; ``active_days`` defaults to the
    days with a nonzero return).
    """
    if trials_sharpe_variance is not None and recorded_sharpes is not None:
        raise ValueError("give trials_sharpe_variance or recorded_sharpes, not both")
    r = np.asarray(returns, dtype=float)
    sr, skew, kurt = _moments(r)
    if trials_sharpe_variance is not None:
        choice = {"trials_sharpe_variance": float(trials_sharpe_variance), "variance_source": GIVEN_BY_CALLER,
                  "recorded_variance": math.nan, "recorded_trials": 0}
    else:
        # without recorded trials there is no dispersion to measure: the null alone
        trials = [] if recorded_sharpes is None else [*recorded_sharpes, sr]
        choice = conservative_trials_variance(len(r), trials)
    variance = choice["trials_sharpe_variance"]
    sr0 = expected_max_sharpe(n_trials, variance)
    active = int(np.count_nonzero(r)) if active_days is None else int(active_days)
    return {
        "dsr": probabilistic_sharpe_ratio(r, sr0, active_days=active),
        "psr": probabilistic_sharpe_ratio(r, 0.0, active_days=active),
        "sharpe": sr,
        "sharpe_annualised": sr * ANNUALISATION,
        "sr0": sr0,
        "sr0_annualised": sr0 * ANNUALISATION,
        "n_trials": n_trials,
        **choice,
        "variance_default": choice["variance_source"] == NULL_VARIANCE_SOURCE,
        "skew": skew,
        "kurtosis": kurt,
        "n_days": len(r),
        "active_days": active,
        "undefined": too_few_active_days(r, active),
    }


def ledger_dsr(ledger: pd.DataFrame, start: Any, end: Any, n_trials: int,
               recorded_sharpes: Sequence[float] | None = None) -> dict[str, Any]:
    """:func:`deflated_sharpe_ratio` of a ledger's daily PnL over ``[start, end]``, its active
    days being the days with an exit in the ledger (a day whose trades net exactly zero is
    active: a flat day without trades is not)."""
    days = daily_table(ledger, start, end)
    return deflated_sharpe_ratio(days["pnl"].to_numpy(), n_trials, recorded_sharpes=recorded_sharpes,
                                 active_days=int((days["n_trades"] > 0).sum()))


def or_error(fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``{"error": message}`` when the statistic is undefined for the data (too few
    days, a flat series: ``fn`` raised ``ValueError``), so one undefined figure does not end an
    evaluation."""
    try:
        return fn()
    except ValueError as exc:
        return {"error": str(exc)}


def deflated_sharpe_from_registry(
    returns: Any,
    registry: Any,
    data_hash: str,
    *,
    split: str = "test",
    recorded_variance: bool | str = False,
    trial: tuple[str, int] | None = None,
    active_days: int | None = None,
) -> dict[str, Any]:
    """:func:`deflated_sharpe_ratio` with ``N`` taken from the run registry, so it is never typed by hand.

    ``N = registry.trial_count(data_hash)`` (every configuration, seed and plugin code tried on the dataset;
    see :meth:`exitcore.registry.Registry.trial_count`). The trials' Sharpe variance ``V``:

    * ``recorded_variance=False``: the null ``1 / (T − 1)``;
    * ``True``: the sample variance of the recorded trials' headline Sharpes on ``split``
      (:func:`recorded_trial_sharpes`, annualised values converted to daily), when at least two
      are finite; otherwise the null;
    * ``"max"``: what a run uses, ``max(1 / (T − 1), V_rec)`` with ``V_rec`` over the recorded
      trials and this series' own Sharpe (:func:`conservative_trials_variance`). Pass ``trial``
      = the run's ``RunRecord.trial`` when ``returns`` are a recorded run's, so it is not counted twice.

    ``active_days`` is passed on (see :func:`deflated_sharpe_ratio`).
    The result adds ``data_hash`` and ``recorded_sharpes`` (how many recorded Sharpes were
    used, 0 for the null).
    """
    if recorded_variance not in (False, True, "max"):
        raise ValueError(f"recorded_variance must be False, True or 'max', got {recorded_variance!r}")
    n_trials = registry.trial_count(data_hash)
    if n_trials < 1:
        raise ValueError(
            f"no run is recorded for data hash {data_hash!r}: record the run in the registry before "
            "evaluating it, so the deflated Sharpe ratio counts it"
        )
    sharpes = recorded_trial_sharpes(registry.list(data_hash=data_hash), split, exclude=trial) if recorded_variance else []
    if recorded_variance == "max":
        result = deflated_sharpe_ratio(returns, n_trials, recorded_sharpes=sharpes, active_days=active_days)
        used = 0 if result["variance_default"] else len(sharpes)  # the recorded ones, as in the True mode
    elif len(sharpes) >= 2:
        result = deflated_sharpe_ratio(returns, n_trials, float(np.var(sharpes, ddof=1)), active_days=active_days)
        result["variance_source"] = f"recorded: {len(sharpes)} trials"
        used = len(sharpes)
    else:
        result, used = deflated_sharpe_ratio(returns, n_trials, active_days=active_days), 0
    result.update(data_hash=data_hash, recorded_sharpes=used)
    return result


# --------------------------------------------------------------------------- paired comparison


def paired_difference(
    ledger_a: pd.DataFrame,
    ledger_b: pd.DataFrame,
    *,
    start: Any,
    end: Any,
    n_samples: int = 2000,
    confidence: float = 0.95,
    block_length: int | None = None,
    method: str = "stationary",
    seed: Seed = 0,
) -> dict[str, Any]:
    """Difference a − b of annualised Sharpe and mean daily PnL, paired on the same days.

    Both ledgers are turned into daily series over the same trading days; every bootstrap
    resample draws the *same* days for both, so what the two policies share (the trades, the
    market) cancels and the interval measures the difference alone. Each of ``sharpe`` and
    ``mean_daily_pnl`` maps to ``{estimate, low, high, se, undefined, p_le_zero}`` where
    ``p_le_zero`` is the share of resamples with a difference ≤ 0 (a one-sided bootstrap p-value
    for "a beats b"); all NaN when a resample's difference is undefined (either series flat).
    """
    _check_confidence(confidence, n_samples)
    _one_series(ledger_a)
    _one_series(ledger_b)
    if len(ledger_a) and len(ledger_b) and single_value(ledger_a, "split") != single_value(ledger_b, "split"):
        raise LedgerError("paired ledgers must come from the same split")
    a = daily_table(ledger_a, start, end)["pnl"].to_numpy()
    b = daily_table(ledger_b, start, end)["pnl"].to_numpy()
    n = len(a)
    length, idx = _resampled_days(n, n_samples, block_length, method, seed)
    boot_sharpe = _sharpe_rows(a[idx]) - _sharpe_rows(b[idx])
    boot_mean = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    out: dict[str, Any] = {}
    for name, estimate, samples in (
        ("sharpe", annualised_sharpe(a) - annualised_sharpe(b), boot_sharpe),
        ("mean_daily_pnl", float(a.mean() - b.mean()), boot_mean),
    ):
        interval = _interval(estimate, samples, confidence)
        interval["p_le_zero"] = math.nan if interval["undefined"] else float(np.mean(samples <= 0))
        out[name] = interval
    out.update(confidence=confidence, n_samples=n_samples, block_length=length, method=method, n_days=n)
    return out


def is_rl_policy(policy: str) -> bool:
    """Whether a ledger ``policy`` name is the RL agent (``rl``, ``rl_sample_3``) rather than a baseline."""
    return policy == "rl" or policy.startswith("rl_")


def rl_vs_best_baseline(
    ledger: pd.DataFrame, *, start: Any, end: Any, rl_policy: str = "rl", **bootstrap: Any
) -> dict[str, Any]:
    """:func:`paired_difference` of ``rl_policy`` against the best baseline in the same ledger.

    The best baseline is the non-RL policy with the highest annualised daily Sharpe on the same
    split (ties: alphabetical). Choosing it on the evaluated data favours the baseline, so the
    comparison errs against RL. (A run's headline comparison is not this one: the
    ``significance`` evaluator pairs RL with the baseline chosen on the *training* split, by
    :func:`paired_difference`, and records this one beside it as ``rl_vs_best_on_split``.) ``bootstrap`` takes the keyword arguments of
    :func:`paired_difference`. The result adds ``rl_policy``, ``baseline`` and
    ``baseline_sharpes`` (every baseline's Sharpe, for the report).
    """
    validate_ledger(ledger)
    if len(ledger):
        single_value(ledger, "split")
    policies = sorted(set(ledger["policy"].unique()))
    if rl_policy not in policies:
        raise LedgerError(f"ledger has no policy {rl_policy!r} (policies: {', '.join(policies)})")
    baselines = [p for p in policies if not is_rl_policy(p)]
    if not baselines:
        raise LedgerError(
            f"ledger has no baseline policy to compare {rl_policy!r} with (policies: {', '.join(policies)})"
        )
    sharpes: Mapping[str, float] = {
        p: annualised_sharpe(daily_table(ledger[ledger["policy"] == p], start, end)["pnl"]) for p in baselines
    }
    # NaN Sharpes (flat curves) rank last
    best = max(baselines, key=lambda p: (sharpes[p] if math.isfinite(sharpes[p]) else -math.inf, -baselines.index(p)))
    result = paired_difference(
        ledger[ledger["policy"] == rl_policy], ledger[ledger["policy"] == best], start=start, end=end, **bootstrap
    )
    result.update(rl_policy=rl_policy, baseline=best, baseline_sharpes=dict(sharpes))
    return result
