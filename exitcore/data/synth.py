"""The seeded synthetic generator: EURUSD-like bars, the data ``exitcore run`` uses by default.

The model, per bar ``t`` of the trading week (Sunday 17:00 to Friday 17:00 New York time, so
the week opens at 21:00 or 22:00 UTC like real FX and there are no Saturday bars):

* **volatility clustering**: ``log sigma_t`` is the sum of AR(1) components with half-lives of
  half a day and ten days (a two-factor stochastic-volatility model). Each AR(1) is run by
  pandas' exponentially weighted mean, which is exactly that linear recursion, in C;
* **intraday seasonality**: a smooth multiplicative profile by UTC hour (quiet late New York and
  Asian hours, a London open bump, the London/New York overlap the busiest);
* **fat tails**: Student-t shocks (``tail_df`` = 4 by default), scaled to unit variance;
* **weekend gaps**: the first bar of a week opens away from the last close by a fat-tailed jump;
* **OHLC**: the close follows the log-return; high and low are the extremes of a Brownian
  bridge between the open and the close with the bar's volatility, drawn exactly by inversion,
  so ``high >= max(open, close)`` and ``low <= min(open, close)`` by construction;
* prices are rounded to a tenth of a pip (5 decimals for EURUSD), the level starts at
  ``start_price`` and the annualised volatility is ``annual_vol``; a tick-volume column follows
  the volatility.

Everything is vectorised and drawn from one ``numpy`` PCG64 generator seeded with ``seed``:
same parameters and numpy version, same bars. Three years of M15 take well under a second.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from exitcore.config import timeframe_seconds
from exitcore.data.bars import Bars
from exitcore.data.source_params import SynthParams

_NS = 1_000_000_000
_DAY_NS = 86400 * _NS
#: (centre hour UTC, width in hours, weight) of the intraday volatility profile's bumps
_SEASON = ((1.0, 1.5, 0.25), (7.5, 1.2, 0.55), (13.5, 1.8, 0.8), (15.5, 1.5, 0.35))


def generate(params: SynthParams) -> Bars:
    """Generate bars from ``params`` (see the module docstring)."""
    rng = np.random.default_rng(params.seed)
    tf_s = timeframe_seconds(params.timeframe)
    ts = trading_grid(params.start, params.years, tf_s)
    n = len(ts)
    bars_per_year = 52 * 5 * 86400 / tf_s

    season = seasonality(ts)
    logvol = np.zeros(n)
    for halflife, vov in zip(params.vol_halflife_days, params.vol_of_vol):
        logvol += ar1(rng, n, phi=0.5 ** (tf_s / (halflife * 86400)), sd=vov)
    # E[exp(x)^2] = exp(2 var) for x ~ N(0, var): divide it out so annual_vol is the long-run level
    var_total = sum(v * v for v in params.vol_of_vol)
    sigma = params.annual_vol / math.sqrt(bars_per_year) * season * np.exp(logvol - var_total)

    nu = params.tail_df
    shocks = rng.standard_t(nu, size=n) / math.sqrt(nu / (nu - 2))
    r = sigma * shocks
    gap = np.zeros(n)
    week_start = np.r_[False, np.diff(ts) > _DAY_NS]
    gap[week_start] = 4.0 * sigma[week_start] * rng.standard_t(nu, size=int(week_start.sum())) / math.sqrt(nu / (nu - 2))

    log_close = math.log(params.start_price) + np.cumsum(gap + r)
    log_open = log_close - r
    # Brownian-bridge extremes of a path from 0 to r with variance sigma^2 over the bar:
    # P(max > m) = exp(-2 m (m - r) / sigma^2), inverted with one uniform each for max and min
    u_hi, u_lo = rng.random(n), rng.random(n)
    root_hi = np.sqrt(r * r - 2.0 * sigma * sigma * np.log1p(-u_hi))
    root_lo = np.sqrt(r * r - 2.0 * sigma * sigma * np.log1p(-u_lo))
    log_high = log_open + (r + root_hi) / 2.0
    log_low = log_open + (r - root_lo) / 2.0

    decimals = int(round(-math.log10(params.pip_size))) + 1
    frame = pd.DataFrame(
        {
            "open": np.round(np.exp(log_open), decimals),
            "high": np.round(np.exp(log_high), decimals),
            "low": np.round(np.exp(log_low), decimals),
            "close": np.round(np.exp(log_close), decimals),
        },
        index=pd.DatetimeIndex(ts.astype("datetime64[ns]"), name="ts").tz_localize("UTC"),
    )
    if params.tick_volume > 0:
        lam = params.tick_volume * sigma / sigma.mean()
        frame["volume"] = rng.poisson(lam).astype(np.float64)
    return Bars(
        frame=frame,
        timeframe=params.timeframe,
        pip_size=params.pip_size,
        symbol=params.symbol,
        source=f"synthetic: years={params.years:g}, seed={params.seed}, start={params.start}",
    )


def trading_grid(start: str, years: float, tf_s: int) -> np.ndarray:
    """Bar opens (int64 ns UTC) of the FX week from ``start`` for ``years``.

    The market is open from Sunday 17:00 to Friday 17:00 New York time (DST included).
    """
    tf_ns = tf_s * _NS
    t0 = pd.Timestamp(start, tz="UTC").as_unit("ns").value
    t0 = -(-t0 // tf_ns) * tf_ns
    t1 = t0 + int(years * 365.25 * _DAY_NS)
    grid = np.arange(t0, t1, tf_ns, dtype=np.int64)
    ny = pd.DatetimeIndex(grid.astype("datetime64[ns]")).tz_localize("UTC").tz_convert("America/New_York")
    dow, hour = ny.day_of_week.to_numpy(), ny.hour.to_numpy()
    closed = (dow == 5) | ((dow == 4) & (hour >= 17)) | ((dow == 6) & (hour < 17))
    return grid[~closed]


def seasonality(ts_ns: np.ndarray) -> np.ndarray:
    """Multiplicative intraday volatility profile (mean 1 over the given bars)."""
    hour = (ts_ns % _DAY_NS) / (3600 * _NS)
    prof = np.full(len(ts_ns), 0.45)
    for centre, width, weight in _SEASON:
        dist = np.abs(hour - centre)
        dist = np.minimum(dist, 24 - dist)  # the profile wraps around midnight
        prof += weight * np.exp(-0.5 * (dist / width) ** 2)
    return prof / prof.mean() if len(prof) else prof


def ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary Gaussian AR(1) series ``x_t = phi x_{t-1} + e_t`` with standard deviation ``sd``.

    ``ewm(alpha=1-phi, adjust=False)`` computes ``y_t = phi y_{t-1} + (1-phi) x_t``, so feeding it
    ``e_t / (1 - phi)`` runs the recursion in C; the first value is drawn from the stationary law.
    """
    if n == 0 or sd == 0:
        return np.zeros(n)
    alpha = 1.0 - phi
    e = rng.normal(0.0, sd * math.sqrt(1.0 - phi * phi), size=n) / alpha
    e[0] = rng.normal(0.0, sd)
    return pd.Series(e).ewm(alpha=alpha, adjust=False).mean().to_numpy()
