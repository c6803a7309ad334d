"""How well exitcore's significance tests hold up on simulated daily PnL (T = 313 days).

Measured with exitcore's own functions (:mod:`exitcore.evaluation.significance`), seeded, for
four kinds of daily series: independent normal days, t(3) tails, GARCH(1, 1) volatility
clustering, and AR(1) autocorrelation ρ = 0.3 (each scaled to unit variance):

* **bootstrap coverage**: how often the 95 % stationary block-bootstrap interval of the
  annualised Sharpe (``sharpe_interval``, mean block length ``L = 7``, the default for 313
  days) contains the true Sharpe (annualised 1.0);
* **PSR false positives**: how often ``PSR > 0.95`` when the true Sharpe is 0;
* **PSR with few active days**: the same with only ``k`` nonzero days among the 313, without
  the PSR's ``MIN_ACTIVE_DAYS`` gate (the gated PSR is NaN below 30 active days).

Each figure comes with its binomial standard error. docs/evaluation.md quotes the results.
Run: ``python benchmarks/sim_significance.py`` (``--help``); about 3 minutes on one core with
the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable

import numpy as np

from exitcore.evaluation import significance as sig

T = 313
#: the true annualised Sharpe of the coverage runs
TRUE_SHARPE = 1.0
AR_RHO = 0.3
GARCH_ALPHA, GARCH_BETA = 0.10, 0.85


def iid_normal(rng: np.random.Generator, reps: int) -> np.ndarray:
    """Independent standard normal days."""
    return rng.standard_normal((reps, T))


def student_t3(rng: np.random.Generator, reps: int) -> np.ndarray:
    """Independent t(3) days scaled to unit variance (fat tails, kurtosis infinite)."""
    return rng.standard_t(3, (reps, T)) / math.sqrt(3)


def garch(rng: np.random.Generator, reps: int, burn: int = 200) -> np.ndarray:
    """GARCH(1, 1) days with unit unconditional variance (volatility clustering)."""
    omega = 1 - GARCH_ALPHA - GARCH_BETA
    var = np.ones(reps)
    prev = np.zeros(reps)
    out = np.empty((reps, T))
    for t in range(-burn, T):
        var = omega + GARCH_ALPHA * prev**2 + GARCH_BETA * var
        prev = np.sqrt(var) * rng.standard_normal(reps)
        if t >= 0:
            out[:, t] = prev
    return out


def ar1(rng: np.random.Generator, reps: int) -> np.ndarray:
    """AR(1) days with ρ = 0.3 and unit variance, started from the stationary distribution."""
    out = np.empty((reps, T))
    out[:, 0] = rng.standard_normal(reps)
    innovation = math.sqrt(1 - AR_RHO**2)
    for t in range(1, T):
        out[:, t] = AR_RHO * out[:, t - 1] + innovation * rng.standard_normal(reps)
    return out


MODELS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "iid normal": iid_normal,
    "t(3)": student_t3,
    "GARCH(1,1)": garch,
    "AR(1) rho=0.3": ar1,
}


#: the span lengths (days) of the coverage-by-length figures: a short test split or walk-forward span
SPANS = (8, 15, 20, 30, 45, 60, 120, 313)


def coverage(noise: np.ndarray, boot: int, seed: int) -> float:
    """Share of series whose bootstrap Sharpe interval contains the true Sharpe."""
    mean = TRUE_SHARPE / math.sqrt(sig.TRADING_DAYS_PER_YEAR)  # unit variance: the daily Sharpe
    rng = np.random.default_rng(seed)
    hits = 0
    for row in noise:
        iv = sig.sharpe_interval(row + mean, n_samples=boot, seed=rng)
        hits += iv["low"] <= TRUE_SHARPE <= iv["high"]
    return hits / len(noise)


def psr_passes(noise: np.ndarray) -> float:
    """Share of zero-mean series with PSR > 0.95, by the PSR formula without the active-day gate."""
    passed = 0
    for row in noise:
        sharpe, skew, kurt = sig._moments(row)  # the PSR's own moments
        passed += sig.psr_from_moments(sharpe, len(row), skew, kurt) > 0.95
    return passed / len(noise)


def sparse(rng: np.random.Generator, reps: int, active: int) -> np.ndarray:
    """Zero-mean normal PnL on ``active`` random days of each series, zero elsewhere."""
    out = np.zeros((reps, T))
    days = np.argsort(rng.random((reps, T)), axis=1)[:, :active]
    np.put_along_axis(out, days, rng.standard_normal((reps, active)), axis=1)
    return out


def se(p: float, n: int) -> float:
    """Binomial standard error of a share ``p`` measured over ``n`` series."""
    return math.sqrt(p * (1 - p) / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="simulated series per bootstrap-coverage figure (default 2000)")
    parser.add_argument("--psr-reps", type=int, default=None, help="series per PSR figure (default 10 x --reps)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples per interval (default 1000)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the simulations (default 2024)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    psr_reps = args.psr_reps or 10 * args.reps
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()

    rows = []
    for name, model in MODELS.items():
        cov = coverage(model(rng, args.reps), args.boot, int(rng.integers(2**31)))
        fp = psr_passes(model(rng, psr_reps))
        rows.append({"model": name, "coverage": cov, "coverage_se": se(cov, args.reps),
                     "psr_false_positive": fp, "psr_false_positive_se": se(fp, psr_reps)})
    spans = []
    for days in SPANS:  # iid normal days over shorter spans: the percentile interval's small-sample shortfall
        cov = coverage(rng.standard_normal((args.reps, days)), args.boot, int(rng.integers(2**31)))
        spans.append({"days": days, "coverage": cov, "coverage_se": se(cov, args.reps)})
    active = []
    for k in (1, 2, 5, 20, 30, 100):
        fp = psr_passes(sparse(rng, psr_reps, k))
        active.append({"active_days": k, "psr_false_positive": fp, "psr_false_positive_se": se(fp, psr_reps)})

    print(f"T = {T} days; coverage of the 95 % stationary-bootstrap Sharpe interval (L = "
          f"{sig.default_block_length(T)}, {args.boot} resamples, true Sharpe {TRUE_SHARPE} annualised) over "
          f"{args.reps} series; P(PSR > 0.95) at a true Sharpe of 0 over {psr_reps} series")
    print(f"{'model':<16}{'coverage':>18}{'P(PSR > 0.95)':>20}")
    for r in rows:
        print(f"{r['model']:<16}{r['coverage']:>10.3f} ± {r['coverage_se']:.3f}"
              f"{100 * r['psr_false_positive']:>12.1f} % ± {100 * r['psr_false_positive_se']:.1f}")
    print(f"\ncoverage of the same interval over shorter spans of iid normal days (L = round(T^(1/3)))")
    for r in spans:
        print(f"  T = {r['days']:>3} days (L = {sig.default_block_length(r['days'])}): {r['coverage']:.3f} ± {r['coverage_se']:.3f}")
    print(f"\nP(PSR > 0.95) at a true Sharpe of 0 with k active days (normal PnL), without the {sig.MIN_ACTIVE_DAYS}-day gate")
    for a in active:
        print(f"  k = {a['active_days']:>3}: {100 * a['psr_false_positive']:5.1f} % ± {100 * a['psr_false_positive_se']:.1f}")
    elapsed = time.perf_counter() - start
    print(f"({elapsed:.0f} s, seed {args.seed})")
    if args.json:
        print(json.dumps({"reps": args.reps, "psr_reps": psr_reps, "boot": args.boot, "seed": args.seed,
                          "models": rows, "spans": spans, "active_days": active, "seconds": elapsed}))


if __name__ == "__main__":
    main()
