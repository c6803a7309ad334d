"""Hand-built ledgers for the evaluation tests (imported as ``ledgerkit``; the fixture is in conftest.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from exitcore.evaluation.ledger_schema import LEDGER_COLUMNS, coerce_ledger, validate_ledger

NOTIONAL = 100_000.0
PIP = 0.0001
ENTRY = 1.1
COST = 0.0001
BAR = pd.Timedelta(minutes=15)
#: a Monday
MONDAY = pd.Timestamp("2024-01-08", tz="UTC")


def build_ledger(pnl: list[float], exit_time: list[Any] | None = None, **columns: Any) -> pd.DataFrame:
    """A valid ledger with the given net pnl per trade; every other column may be overridden.

    Default exit times: one trade per trading day at 12:00 UTC from Monday 2024-01-08. Default
    decisions: ``"HHE"`` (3 decisions, 3 bars). Scalars broadcast to every row.
    """
    n = len(pnl)
    if exit_time is None:
        exit_time = list(pd.bdate_range(MONDAY, periods=n, tz="UTC") + pd.Timedelta(hours=12)) if n else []
    exits = pd.DatetimeIndex(pd.to_datetime(exit_time, utc=True)) if n else pd.DatetimeIndex([], tz="UTC")
    exits = exits.as_unit("ns")  # as exitcore builds its ledgers' times
    bars = np.broadcast_to(np.asarray(columns.pop("bars_held", 3)), (n,)).astype("int64")
    actions = columns.pop("actions", "HHE")
    actions = [actions] * n if isinstance(actions, str) else list(actions)
    pnl_arr = np.asarray(pnl, dtype=float)
    cost = np.full(n, COST)
    entry = exits - pd.to_timedelta(bars * 15, unit="min")
    data: dict[str, Any] = {
        "trade": np.arange(n, dtype="int64"),
        "split": "test",
        "policy": "rl",
        "direction": np.int64(1),
        "signal_time": entry - BAR,
        "entry_time": entry,
        "exit_time": exits,
        "entry_price": ENTRY,
        "exit_price": ENTRY * (1 + pnl_arr + cost),
        "exit_reason": "agent",
        "bars_held": bars,
        "n_decisions": np.array([len(a) for a in actions], dtype="int64"),
        "actions": actions,
        "blocked": np.int64(0),
        "stop_moves": np.int64(0),
        "partials": np.int64(0),
        "at_breakeven": False,
        "ambiguous": False,
        "pnl": pnl_arr,
        "pnl_gross": pnl_arr + cost,
        "cost": cost,
        "pnl_pips": pnl_arr * ENTRY / PIP,
        "pnl_ccy": pnl_arr * NOTIONAL,
    }
    data.update(columns)
    df = pd.DataFrame({k: (pd.Series(v) if not np.isscalar(v) else v) for k, v in data.items()}, index=range(n))
    df = df[[*LEDGER_COLUMNS, *(c for c in df.columns if c not in LEDGER_COLUMNS)]]
    if n == 0:
        df = coerce_ledger(df)
    validate_ledger(df)
    return df
