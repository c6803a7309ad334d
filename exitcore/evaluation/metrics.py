"""Every evaluation metric, defined once (design.md §7).

Input is a trade ledger (:mod:`exitcore.evaluation.ledger_schema`) for one policy on one split,
plus that split's calendar span ``[start, end]``. Notation: ``r_i`` is the net ``pnl`` of trade
``i`` (a fraction of its entry fill), ``n`` the number of trades, ``D_t`` the daily PnL of
trading day ``t`` (:func:`daily_pnl`), ``T`` the number of trading days in the span.

Two families of statistics are kept apart on purpose:

* **per trade** — mean, std, win rate, profit factor, per-trade Sharpe ``mean / std``. They
  describe one trade and are *never annualised*: multiplying by ``sqrt(trades per year)`` treats
  overlapping, clustered trades as independent draws and produced the research log's
  fantasy Sharpe ratios;
* **time series** — the annualised Sharpe and Sortino of the *daily* equity curve over every
  trading day of the span, days without a trade counted as zero.

Every result says which split it was computed on (``split``, ``label``); training-split results
carry ``in_sample: True`` and the label ``"TRAIN (in-sample)"`` so no table can show in-sample
numbers unlabelled. Results are plain JSON-ready dicts (NaN and infinity are kept as floats;
:mod:`exitcore.evaluation.jsonable` writes them as strict JSON).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from exitcore.actions import Action
from exitcore.evaluation.ledger_schema import (
    ACTION_LETTERS,
    LEDGER_EXIT_REASONS,
    LedgerError,
    pnl_sign,
    validate_ledger,
)
from exitcore.words import share_percent, statistic

#: annualisation of daily statistics, √252 for a Sharpe ratio as design.md §7 specifies (the
#: equity-market convention). The daily series has a row for every weekday, ~261 a year in FX,
#: so a √261 convention would read ~1.8 % higher (docs/evaluation.md)
TRADING_DAYS_PER_YEAR = 252
#: a trade held at most this many bars is a "quick exit" (the research log's ≤ 3 bars)
QUICK_EXIT_BARS = 3

_LABELS = {"train": "TRAIN (in-sample)", "validation": "VALIDATION (out-of-sample)", "test": "TEST (out-of-sample)"}


def split_label(split: str) -> str:
    """The label every report shows for a split: ``"TEST (out-of-sample)"``, ``"TRAIN (in-sample)"``, …"""
    try:
        return _LABELS[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(_LABELS)}") from None


# --------------------------------------------------------------------------- days


def _utc(ts: Any) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def trading_day(times: pd.Series | pd.DatetimeIndex, *, closes: bool = False) -> pd.DatetimeIndex:
    """The FX trading day each UTC time belongs to: its UTC date, weekends rolled to Monday.

    FX trades Monday to Friday; the market reopens on Sunday evening (UTC), which is the start of
    Monday's session, so a Saturday or Sunday time belongs to the following Monday. A time of
    exactly midnight belongs to the day that **ends** then when ``closes`` (the times are bar
    closes: an exit time, a span's end; the 23:45 bar closing at 00:00 is the old day's), else
    to the day that starts then (bar opens: a span's start). Without this, Friday's last bar,
    closing at Saturday 00:00, was put on the following Monday. The result is tz-aware (UTC
    midnight). This is the one rule by which PnL is attributed to days.
    """
    idx = pd.DatetimeIndex(times)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    days = idx.normalize()
    if closes:
        # a close at exactly midnight ends the previous day
        days = days - pd.to_timedelta(np.where(idx == days, 1, 0), unit="D")
    weekday = days.day_of_week  # Monday = 0 … Sunday = 6
    shift = np.where(weekday == 5, 2, np.where(weekday == 6, 1, 0))
    return days + pd.to_timedelta(shift, unit="D")


def trading_days(start: Any, end: Any) -> pd.DatetimeIndex:
    """Every FX trading day (Monday–Friday, UTC midnight) from ``start``'s day to ``end``'s day.

    Both ends are inclusive and mapped by :func:`trading_day`: ``start`` as the open of the
    span's first bar, ``end`` as the close of its last (``closes``), so a span ending at Saturday
    00:00 ends on Friday. Holidays are *not* removed: a Monday–Friday day with no trade is a
    zero-PnL day, which is what an account holding this strategy would have seen.
    """
    first = trading_day(pd.DatetimeIndex([_utc(start)]))[0]
    last = trading_day(pd.DatetimeIndex([_utc(end)]), closes=True)[0]
    if last < first:
        raise ValueError(f"span end {end} precedes its start {start}")
    return pd.bdate_range(first, last, tz="UTC", name="day")


def daily_table(ledger: pd.DataFrame, start: Any, end: Any) -> pd.DataFrame:
    """Per trading day of the span: ``pnl`` (sum of net pnl), ``pnl_ccy``, ``n_trades`` and ``wins``.

    A trade belongs to the trading day of its ``exit_time`` (when its PnL is known; a bar close,
    so an exit at exactly midnight belongs to the day that ends then). Days
    without a trade are present with zeros. Trades exiting outside ``[start, end]`` are an
    error, not silently dropped.
    """
    days = trading_days(start, end)
    exit_times = pd.DatetimeIndex(ledger["exit_time"])
    # an exit is a bar's close, after the span's first open: one at the start itself would be
    # counted on the day before it and dropped with that day
    outside = (exit_times <= _utc(start)) | (exit_times > _utc(end))
    if outside.any():
        trades = list(ledger.loc[np.asarray(outside), "trade"][:5])
        raise LedgerError(
            f"{int(outside.sum())} trades exit outside the evaluated span {_utc(start)} .. {_utc(end)} "
            f"(trades {trades}); pass the span of the split the ledger was produced on"
        )
    frame = pd.DataFrame(
        {
            "day": trading_day(exit_times, closes=True),
            "pnl": ledger["pnl"].to_numpy(dtype=float),
            "pnl_ccy": ledger["pnl_ccy"].to_numpy(dtype=float),
            "n_trades": 1,
            "wins": (pnl_sign(ledger["pnl"]) > 0).astype(int),
        }
    )
    table = frame.groupby("day").sum().reindex(days, fill_value=0)
    table.index.name = "day"
    return table.astype({"pnl": float, "pnl_ccy": float, "n_trades": int, "wins": int})


def daily_pnl(ledger: pd.DataFrame, start: Any, end: Any) -> pd.Series:
    """Daily net PnL ``D_t``: the sum of ``pnl`` of trades exiting on trading day ``t``.

    Indexed by every trading day of ``[start, end]`` (:func:`trading_days`), zero-PnL days
    included. Units: PnL fractions summed over trades, i.e. the return of an account that
    commits one entry-price notional to each trade, without compounding.
    """
    return daily_table(ledger, start, end)["pnl"].rename("pnl")


# --------------------------------------------------------------------------- time-series statistics

#: a std at most this fraction of the largest |value| is zero: float rounding, not dispersion
#: (a constant daily series of 0.1 has np.std 1.4e-17, which made its Sharpe 1.1e17)
FLAT_STD_RTOL = 1e-12


def is_flat(std: float | np.ndarray, values: np.ndarray, axis: int | None = None) -> bool | np.ndarray:
    """Whether ``std`` of ``values`` is zero up to float rounding: ``std <= FLAT_STD_RTOL × max|values|``.

    With ``axis``, ``values`` is a 2-D array and ``std`` holds one std per row (``axis=1``); the
    result is then a boolean array. A NaN std counts as flat (nothing to divide by). The one test
    of a zero std for every Sharpe ratio (daily, per trade, bootstrapped) and the PSR.
    """
    v = np.asarray(values, dtype=float)
    scale = np.max(np.abs(v), axis=axis) if v.size else 0.0
    flat = ~(np.asarray(std) > FLAT_STD_RTOL * scale)
    return flat if axis is not None else bool(flat)



def annualised_sharpe(daily: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Annualised Sharpe ratio of a daily PnL series.

    ``sharpe = mean(D) / std(D) × √252`` with the sample std (``ddof = 1``) and a zero risk-free
    rate (the PnL is already an excess return: a trade's capital is not invested otherwise).
    NaN with fewer than two days or a zero std (undefined, not infinite; zero up to float
    rounding, :func:`is_flat`).
    """
    d = np.asarray(daily, dtype=float)
    if d.size < 2:
        return math.nan
    sd = d.std(ddof=1)
    if is_flat(sd, d):
        return math.nan
    return float(d.mean() / sd * math.sqrt(TRADING_DAYS_PER_YEAR))


def annualised_sortino(daily: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Annualised Sortino ratio of a daily PnL series (target 0).

    ``sortino = mean(D) / DD × √252`` where the downside deviation
    ``DD = sqrt( (1/T) Σ_t min(D_t, 0)² )`` runs over *all* ``T`` days (Sortino & Price), so
    days without losses pull it down rather than being dropped. It divides by ``T`` where the
    Sharpe's std divides by ``T − 1`` (``ddof = 1``). Edge cases: fewer than two days
    → NaN; no losing day → ``inf`` if the mean is positive, NaN if it is zero.
    """
    d = np.asarray(daily, dtype=float)
    if d.size < 2:
        return math.nan
    dd = math.sqrt(float(np.mean(np.minimum(d, 0.0) ** 2)))
    mean = float(d.mean())
    if dd == 0:
        return math.inf if mean > 0 else math.nan
    return mean / dd * math.sqrt(TRADING_DAYS_PER_YEAR)


def max_drawdown(pnl_in_exit_order: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Largest peak-to-trough fall of the cumulative PnL curve, as a positive number.

    ``E_0 = 0``, ``E_k = r_1 + … + r_k`` (trades in exit order); ``MDD = max_k (max_{j≤k} E_j − E_k)``.
    The curve starts at 0, so a first losing trade is a drawdown. 0 for no trades or a curve
    that never falls.
    """
    r = np.asarray(pnl_in_exit_order, dtype=float)
    if r.size == 0:
        return 0.0
    equity = np.concatenate([[0.0], np.cumsum(r)])
    return float(np.max(np.maximum.accumulate(equity) - equity))


def exit_order(ledger: pd.DataFrame) -> pd.DataFrame:
    """The ledger sorted by ``exit_time`` (ties by ``trade``): the order PnL reaches the account."""
    return ledger.sort_values(["exit_time", "trade"], kind="stable")


# --------------------------------------------------------------------------- per-trade statistics


def finite_pnl(pnl: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    """``pnl`` as a float array; ValueError when any value is NaN or infinite.

    A NaN used to count as a zero trade (a scratch, not a win) or vanish from a sum, so a
    broken PnL changed the rates silently; :func:`compute_metrics` refuses such ledgers too.
    """
    r = np.asarray(pnl, dtype=float)
    bad = ~np.isfinite(r)
    if bad.any():
        n_nan = int(np.isnan(r).sum())
        n_inf = int(bad.sum()) - n_nan
        what = " and ".join(f"{n} {kind} value{'s' if n > 1 else ''}" for n, kind in ((n_nan, "NaN"), (n_inf, "infinite")) if n)
        first = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(f"pnl must be finite: {what} (the first at index {first})")
    return r


def win_rate(pnl: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Share of trades with net ``pnl > 0`` (a zero-PnL trade, e.g. a breakeven stop, is not a
    win; zero within :data:`~exitcore.evaluation.ledger_schema.PNL_ZERO_TOLERANCE`). NaN for no trades;
    a NaN or infinite ``pnl`` is a ValueError (:func:`finite_pnl`), as in the other per-trade statistics."""
    sign = pnl_sign(finite_pnl(pnl))
    return float(np.mean(sign > 0)) if sign.size else math.nan


def scratch_rate(pnl: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Share of trades closed at a net ``pnl`` of 0 (scratch trades: a breakeven stop, an exit at
    the breakeven price), zero within :data:`~exitcore.evaluation.ledger_schema.PNL_ZERO_TOLERANCE`
    as in :func:`win_rate`, so wins, scratches and losses add up to 1. NaN for no trades; a
    non-finite ``pnl`` → ValueError."""
    sign = pnl_sign(finite_pnl(pnl))
    return float(np.mean(sign == 0)) if sign.size else math.nan


def profit_factor(pnl: Sequence[float] | np.ndarray | pd.Series) -> float:
    """Gross profits over gross losses of net PnL: ``Σ_{r>0} r / Σ_{r<0} |r|``.

    Edge cases: no losing trade → ``inf`` if there is any profit; no trades, or neither profit
    nor loss (all trades zero, within ``PNL_ZERO_TOLERANCE``) → NaN; losses but no profit → 0;
    a non-finite ``pnl`` → ValueError.
    """
    r = finite_pnl(pnl)
    sign = pnl_sign(r)
    gains = float(r[sign > 0].sum())
    losses = float(-r[sign < 0].sum())
    if losses == 0:
        return math.inf if gains > 0 else math.nan
    return gains / losses


def per_trade_stats(pnl: Sequence[float] | np.ndarray | pd.Series) -> dict[str, float]:
    """``mean_return``, ``std_return`` (``ddof = 1``) and ``per_trade_sharpe = mean / std`` of net pnl.

    Not annualised, by design (see the module docstring). The std and the Sharpe are NaN with
    fewer than two trades; the Sharpe is NaN when the std is zero (up to float rounding,
    :func:`is_flat`). A non-finite ``pnl`` → ValueError.
    """
    r = finite_pnl(pnl)
    mean = float(r.mean()) if r.size else math.nan
    std = float(r.std(ddof=1)) if r.size >= 2 else math.nan
    sharpe = mean / std if r.size >= 2 and not is_flat(std, r) else math.nan
    return {"mean_return": mean, "std_return": std, "per_trade_sharpe": sharpe}


# --------------------------------------------------------------------------- decisions


def action_counts(actions: Iterable[str]) -> dict[str, int]:
    """How often each action was *sampled*, summed over the ``actions`` strings, by action name."""
    text = "".join(actions.tolist() if isinstance(actions, pd.Series) else actions)  # a Series' own walk is slow
    return {Action.names[a]: text.count(ACTION_LETTERS[a]) for a in Action}


def action_distribution(actions: Iterable[str]) -> dict[str, float]:
    """Share of each action among all decisions: ``count(a) / Σ_a count(a)``; NaN with no decision."""
    counts = action_counts(actions)
    total = sum(counts.values())
    return {name: (c / total if total else math.nan) for name, c in counts.items()}


def blocked_rates(ledger: pd.DataFrame) -> dict[str, Any]:
    """Share of decisions whose sampled action a guard turned into HOLD.

    ``blocked_rate = Σ blocked / Σ n_decisions`` (NaN with no decision). Per action, when the
    ledger has the optional ``executed`` column: ``blocked(a) / sampled(a)`` where ``blocked(a)``
    counts decisions that sampled ``a`` and executed HOLD instead (NaN for an action never
    sampled); ``None`` without that column (the per-trade ``blocked`` count cannot be attributed
    to actions).
    """
    decisions = int(ledger["n_decisions"].sum())
    overall = int(ledger["blocked"].sum()) / decisions if decisions else math.nan
    per_action: dict[str, float] | None = None
    if "executed" in ledger.columns:
        sampled = action_counts(ledger["actions"])
        blocked = dict.fromkeys(sampled, 0)
        differ = ledger["actions"].to_numpy(dtype=object) != ledger["executed"].to_numpy(dtype=object)
        for s_text, e_text in zip(ledger["actions"][differ].tolist(), ledger["executed"][differ].tolist()):
            for s, e in zip(s_text, e_text):
                if s != e:
                    blocked[_LETTER_NAMES[s]] += 1
        per_action = {a: (blocked[a] / sampled[a] if sampled[a] else math.nan) for a in sampled}
    return {"blocked_rate": overall, "blocked_rate_per_action": per_action}


_LETTER_NAMES = {letter: Action.names[action] for action, letter in ACTION_LETTERS.items()}


def exit_reason_counts(ledger: pd.DataFrame) -> dict[str, int]:
    """Number of trades per exit reason, every reason listed (zeros included)."""
    counts = ledger["exit_reason"].value_counts()
    return {reason: int(counts.get(reason, 0)) for reason in LEDGER_EXIT_REASONS}


# --------------------------------------------------------------------------- one result


def compute_metrics(
    ledger: pd.DataFrame,
    *,
    start: Any,
    end: Any,
    split: str | None = None,
    policy: str | None = None,
    quick_bars: int = QUICK_EXIT_BARS,
) -> dict[str, Any]:
    """All metrics of one policy on one split, as a flat JSON-ready dict.

    ``start``/``end`` are the split's calendar span (inclusive); the daily statistics run over
    every trading day in it. ``split`` and ``policy`` default to the ledger's single value of
    that column (the ledger must hold exactly one; use :func:`metrics_by_policy` for several
    policies); when given, every row must match. An empty ledger needs both.

    Keys: ``split``, ``label``, ``in_sample``, ``policy``, ``span_start``, ``span_end``,
    ``n_days``, ``active_days``, ``n_trades``, ``total_pnl``, ``total_pnl_pips``,
    ``total_pnl_ccy``, ``mean_return``, ``std_return``, ``per_trade_sharpe``, ``win_rate``,
    ``scratch_rate``, ``profit_factor``, ``avg_bars``, ``min_bars``, ``max_bars``, ``quick_exit_bars``,
    ``quick_exit_rate`` (share of trades with ``bars_held ≤ quick_bars``), ``n_decisions``,
    ``action_counts``, ``action_distribution``, ``blocked_rate``, ``blocked_rate_per_action``,
    ``exit_reason_counts``, ``exit_reasons`` (shares), ``ambiguous`` (count), ``at_breakeven_rate``,
    ``partial_rate`` (share of trades with a partial exit), ``max_drawdown`` (PnL fractions),
    ``max_drawdown_ccy``, ``mean_daily_pnl``, ``std_daily_pnl``, ``sharpe``, ``sortino``
    (annualised, daily). Each is defined by the function of this module that computes it.
    """
    validate_ledger(ledger)
    split = single_value(ledger, "split", split)
    policy = single_value(ledger, "policy", policy)
    label = split_label(split)
    n = len(ledger)
    pnl = ledger["pnl"].to_numpy(dtype=float)
    bars = ledger["bars_held"].to_numpy()
    days = daily_table(ledger, start, end)
    ordered = exit_order(ledger)
    reasons = exit_reason_counts(ledger)
    out: dict[str, Any] = {
        "split": split,
        "label": label,
        "in_sample": split == "train",
        "policy": policy,
        "span_start": _utc(start).isoformat(),
        "span_end": _utc(end).isoformat(),
        "n_days": len(days),
        "active_days": int((days["n_trades"] > 0).sum()),
        "n_trades": n,
        "total_pnl": float(pnl.sum()),
        "total_pnl_pips": float(ledger["pnl_pips"].sum()),
        "total_pnl_ccy": float(ledger["pnl_ccy"].sum()),
        **per_trade_stats(pnl),
        "win_rate": win_rate(pnl),
        "scratch_rate": scratch_rate(pnl),
        "profit_factor": profit_factor(pnl),
        "avg_bars": float(bars.mean()) if n else math.nan,
        "min_bars": int(bars.min()) if n else None,
        "max_bars": int(bars.max()) if n else None,
        "quick_exit_bars": quick_bars,
        "quick_exit_rate": float(np.mean(bars <= quick_bars)) if n else math.nan,
        "n_decisions": int(ledger["n_decisions"].sum()),
        "action_counts": action_counts(ledger["actions"]),
        "action_distribution": action_distribution(ledger["actions"]),
        **blocked_rates(ledger),
        "exit_reason_counts": reasons,
        "exit_reasons": {k: (v / n if n else math.nan) for k, v in reasons.items()},
        "ambiguous": int(ledger["ambiguous"].sum()),
        "at_breakeven_rate": float(ledger["at_breakeven"].mean()) if n else math.nan,
        "partial_rate": float((ledger["partials"] > 0).mean()) if n else math.nan,
        "max_drawdown": max_drawdown(ordered["pnl"]),
        "max_drawdown_ccy": max_drawdown(ordered["pnl_ccy"]),
        "mean_daily_pnl": float(days["pnl"].mean()),
        "std_daily_pnl": float(days["pnl"].std(ddof=1)) if len(days) >= 2 else math.nan,
        "sharpe": annualised_sharpe(days["pnl"]),
        "sortino": annualised_sortino(days["pnl"]),
    }
    return out


def single_value(ledger: pd.DataFrame, column: str, given: str | None = None) -> str:
    """The one value of ``column`` (``split`` or ``policy``) in ``ledger``; :class:`LedgerError` if several.

    ``given``, when not None, is what every row must hold (and what an empty ledger is taken to hold).
    """
    values = sorted(set(ledger[column].unique()))  # unique() first: a Series' own walk is slow
    if given is not None:
        if values and values != [given]:
            raise LedgerError(f"ledger rows have {column} {values}, expected only {given!r}")
        return given
    if len(values) == 1:
        return values[0]
    if not values:
        raise LedgerError(f"empty ledger: pass {column}= so the result can be labelled")
    hint = "; use metrics_by_policy()" if column == "policy" else ""
    raise LedgerError(f"ledger mixes several {column} values {values}: use one at a time{hint}")


def metrics_by_policy(
    ledger: pd.DataFrame, *, start: Any, end: Any, split: str | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`compute_metrics` for each policy of a one-split ledger, keyed by policy (sorted, ``rl`` first)."""
    validate_ledger(ledger)
    split = single_value(ledger, "split", split)
    policies = sorted(set(ledger["policy"]), key=lambda p: (not p.startswith("rl"), p))
    return {
        p: compute_metrics(ledger[ledger["policy"] == p], start=start, end=end, split=split, policy=p)
        for p in policies
    }


#: the metrics a run records in the registry and ``exitcore runs`` shows
HEADLINE_KEYS: tuple[str, ...] = (
    "split",
    "label",
    "in_sample",
    "policy",
    "n_trades",
    "mean_return",
    "win_rate",
    "scratch_rate",
    "profit_factor",
    "avg_bars",
    "quick_exit_rate",
    "exit_reasons",
    "sharpe",
    "sortino",
    "max_drawdown",
    "total_pnl_ccy",
)


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`HEADLINE_KEYS` subset of a :func:`compute_metrics` result (labels included)."""
    return {k: metrics[k] for k in HEADLINE_KEYS if k in metrics}


# --------------------------------------------------------------------------- text table


def _pct(v: Any) -> str:
    return "undefined" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _shares(d: Mapping[str, float] | None, short: Mapping[str, str]) -> str:
    if d is None:
        return "-"
    return " ".join(f"{short.get(k, k)}{share_percent(v)}" for k, v in d.items() if not (v == 0))


_ACTION_SHORT = {Action.names[a]: ACTION_LETTERS[a] for a in Action}
_REASON_SHORT = {"agent": "A", "stop": "S", "target": "Tg", "time": "Ti", "end_of_data": "D", "gap": "G"}
#: the legend printed under tables that show action and exit-reason shares
SHARES_LEGEND = ("actions: % of decisions, H=HOLD E=EXIT T=TIGHTEN_SL B=TRAIL_BE P=PARTIAL_EXIT; "
                 "exit reasons: % of trades, A=agent S=stop Tg=target Ti=time D=end of data G=gap")

_RATE_KEYS = ("win_rate", "scratch_rate", "quick_exit_rate", "blocked_rate", "at_breakeven_rate", "partial_rate")
_RATIO_KEYS = ("profit_factor", "sharpe", "sortino", "per_trade_sharpe", "best_baseline_sharpe")


def format_value(key: str, value: Any) -> str:
    """One metric value as the tables show it: rates in percent, ratios to 2 decimals, PnL
    fractions to 5, distributions as letter shares (:data:`SHARES_LEGEND`)."""
    if key in _RATE_KEYS:
        return _pct(value)
    if key in _RATIO_KEYS:
        return statistic(value, ".2f")
    if key in ("mean_return", "std_return", "max_drawdown", "mean_daily_pnl", "total_pnl"):
        return statistic(value, ".5f")
    if key == "avg_bars":
        return statistic(value, ".1f")
    if key == "action_distribution":
        return _shares(value, _ACTION_SHORT)
    if key == "exit_reasons":
        return _shares(value, _REASON_SHORT)
    if isinstance(value, float):
        return statistic(value, ".4g")
    return "-" if value is None else str(value)


_ROWS: tuple[tuple[str, Any], ...] = (
    ("trades", lambda m: str(m["n_trades"])),
    ("mean return ± std", lambda m: f"{statistic(m['mean_return'], '.5f')} ± {statistic(m['std_return'], '.5f')}"),
    ("per-trade Sharpe", lambda m: statistic(m["per_trade_sharpe"], ".3f")),
    ("win rate", lambda m: _pct(m["win_rate"])),
    ("scratch (PnL = 0)", lambda m: _pct(m.get("scratch_rate"))),
    ("profit factor", lambda m: statistic(m["profit_factor"], ".2f")),
    ("Sharpe (daily, ann.)", lambda m: statistic(m["sharpe"], ".2f")),
    ("Sortino (daily, ann.)", lambda m: statistic(m["sortino"], ".2f")),
    ("max drawdown, fraction ({ccy})", lambda m: f"{statistic(m['max_drawdown'], '.4f')} ({statistic(m['max_drawdown_ccy'], ',.0f')})"),
    ("total PnL, {ccy}", lambda m: statistic(m["total_pnl_ccy"], ",.0f")),
    (
        "bars avg [min, max]",
        lambda m: f"{statistic(m['avg_bars'], '.1f')} [{statistic(m['min_bars'], 'd')}, {statistic(m['max_bars'], 'd')}]",
    ),
    ("quick exits", lambda m: _pct(m["quick_exit_rate"])),
    ("sampled actions %", lambda m: _shares(m["action_distribution"], _ACTION_SHORT)),
    ("blocked rate", lambda m: _pct(m["blocked_rate"])),
    ("exit reasons %", lambda m: _shares(m["exit_reasons"], _REASON_SHORT)),
    ("ambiguous bars", lambda m: str(m["ambiguous"])),
    ("days (active)", lambda m: f"{m['n_days']} ({m['active_days']})"),
)


def format_table(results: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
                 currency: str | None = None) -> str:
    """A compact text table: one column per result (policy), one row per metric.

    ``currency`` names the currency of the ``*_ccy`` figures (``costs.account_currency``);
    without it they are labelled "account ccy".

    The title names the split of every column; a training-split column is headed
    ``TRAIN (in-sample)`` and the title says so, so in-sample numbers are never shown bare.
    Shares are explained by :data:`SHARES_LEGEND`, printed under the table.
    """
    cols = list(results.values()) if isinstance(results, Mapping) else list(results)
    if not cols:
        return "(no results)"
    labels = sorted({c["label"] for c in cols})
    title = "metrics on " + " / ".join(labels)
    if any(c.get("in_sample") for c in cols):
        title += "  [IN-SAMPLE: training data, not an out-of-sample result]"
    header = ["", *(c["policy"] for c in cols)]
    sub = ["", *(c["label"] for c in cols)]
    ccy = currency or "account ccy"
    body = [[name.format(ccy=ccy), *(fn(c) for c in cols)] for name, fn in _ROWS]
    table = [header, sub, *body]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [title]
    for k, row in enumerate(table):
        cells = (cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        lines.append("  ".join(cells))
        if k == 1:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(SHARES_LEGEND)
    return "\n".join(line.rstrip() for line in lines)
