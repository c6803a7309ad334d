"""The trade ledger: one row per trade and policy, the contract every evaluator reads.

A ledger is a :class:`pandas.DataFrame`. Whoever runs a policy over a split's trades (the RL
agent, a baseline exit) produces one; metrics, significance tests, reports and ``compare`` read
it. :data:`LEDGER_COLUMNS` is the single definition of its columns; :func:`validate_ledger`
checks a frame against it and :func:`read_ledger` / :func:`write_ledger` round-trip it through
CSV or Parquet without losing types (an empty ``actions`` string stays a string, timestamps
stay UTC).

Times follow the timeline contract (design.md §2): ``entry_time`` is the fill, the open of the
entry bar; ``exit_time`` is when the exit is *known*, the close of the exit bar. Daily metrics
attribute a trade's PnL to the UTC day of its ``exit_time``.

Extra columns are allowed (a producer may add e.g. a sampling seed); the optional column
``executed`` (see :data:`OPTIONAL_COLUMNS`) enables the per-action blocked rate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from exitcore.actions import Action
from exitcore.errors import DataError
from exitcore.timeline import ExitReason

# --------------------------------------------------------------------------- action letters

#: one letter per action in the ``actions`` column (ids stay those of :class:`exitcore.actions.Action`)
ACTION_LETTERS: Mapping[int, str] = {
    Action.HOLD: "H",
    Action.EXIT: "E",
    Action.TIGHTEN_SL: "T",
    Action.TRAIL_BE: "B",
    Action.PARTIAL_EXIT: "P",
}
LETTER_ACTIONS: Mapping[str, int] = {letter: action for action, letter in ACTION_LETTERS.items()}


def encode_actions(actions: Iterable[int]) -> str:
    """The ``actions`` string for a sequence of action ids: ``[0, 0, 3, 1] -> "HHBE"``."""
    try:
        return "".join(ACTION_LETTERS[Action(int(a))] for a in actions)
    except ValueError as exc:
        raise ValueError(f"not an action id: {exc}") from None


def decode_actions(letters: str) -> list[int]:
    """The actions of an ``actions`` string: ``"HHBE" -> [HOLD, HOLD, TRAIL_BE, EXIT]``."""
    try:
        return [LETTER_ACTIONS[ch] for ch in letters]
    except KeyError as exc:
        raise ValueError(f"not an action letter: {exc.args[0]!r} (expected one of {''.join(LETTER_ACTIONS)})") from None


# --------------------------------------------------------------------------- the columns

#: net ``pnl`` closer to 0 than this (a fraction of the entry price) is zero. A trade stopped out
#: at breakeven nets 0 only up to float64 rounding (|pnl| ~ 1e-16, either sign), and counting
#: that as a win or a loss flips most breakeven exits into wins. A pipette on EURUSD is ~9e-6,
#: so the tolerance is ~1e-4 pipettes: far below any real price move.
PNL_ZERO_TOLERANCE = 1e-9


def pnl_sign(pnl: Any) -> np.ndarray:
    """-1, 0 or +1 per trade for net ``pnl`` (array-like), with :data:`PNL_ZERO_TOLERANCE`:
    what makes a trade a loss, a zero or a win everywhere (win rate, profit factor, daily wins)."""
    r = np.asarray(pnl, dtype=float)
    return np.where(r > PNL_ZERO_TOLERANCE, 1, np.where(r < -PNL_ZERO_TOLERANCE, -1, 0))


#: the values of the ``split`` column
SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: the values of the ``exit_reason`` column: ExitReason names in lower case (a closed trade is never OPEN)
LEDGER_EXIT_REASONS: tuple[str, ...] = tuple(ExitReason.names[r].lower() for r in ExitReason if r != ExitReason.OPEN)


@attrs.frozen
class Column:
    """One ledger column: its kind (``int``, ``float``, ``bool``, ``str``, ``time``) and meaning."""

    kind: str
    doc: str


#: the ledger's columns, in order; every one is required
LEDGER_COLUMNS: Mapping[str, Column] = {
    "trade": Column("int", "row of the trade in the split's trade table (same id across policies)"),
    "split": Column("str", "train, validation or test: the period the trade belongs to"),
    "policy": Column("str", 'who managed the exit: "rl", "rl_sample_1", "fixed_stop_target", "trailing_2.0atr", "time_8bars"'),
    "direction": Column("int", "+1 long, -1 short"),
    "signal_time": Column("time", "UTC open time of the signal bar (the entry decision is taken at its close)"),
    "entry_time": Column("time", "UTC time of the fill: the open of the entry bar"),
    "exit_time": Column("time", "UTC time the exit is known: the close of the exit bar"),
    "entry_price": Column("float", "entry fill price (open + half spread + slippage, against the trader)"),
    "exit_price": Column("float", "fill price of the final close"),
    "exit_reason": Column("str", "lower-case ExitReason name: " + ", ".join(LEDGER_EXIT_REASONS)),
    "bars_held": Column("int", "bars the position was exposed to (>= 1)"),
    "n_decisions": Column("int", "decisions the policy took (>= 0; 0 when the entry bar ended the trade)"),
    "actions": Column(
        "str", "one letter per decision, the *sampled* action: H=HOLD E=EXIT T=TIGHTEN_SL B=TRAIL_BE P=PARTIAL_EXIT"
    ),
    "blocked": Column("int", "decisions whose action a guard turned into HOLD"),
    "stop_moves": Column("int", "times the stop actually moved (TIGHTEN_SL or TRAIL_BE that tightened it)"),
    "partials": Column("int", "partial exits executed"),
    "at_breakeven": Column("bool", "the stop reached breakeven or beyond"),
    "ambiguous": Column("bool", "the exit bar touched both stop and target (the stop was taken)"),
    "pnl": Column("float", "net PnL, fraction of the entry fill price (= pnl_gross - cost; exactly 0 at a breakeven stop)"),
    "pnl_gross": Column("float", "PnL before costs: the price move from the entry open, fraction of the entry fill"),
    "cost": Column("float", "spread, slippage and commission, fraction of the entry fill"),
    "pnl_pips": Column("float", "net PnL in pips"),
    "pnl_ccy": Column("float", "net PnL in the account currency (pnl x notional)"),
}

#: columns a producer may add; readers use them when present
OPTIONAL_COLUMNS: Mapping[str, Column] = {
    "executed": Column(
        "str",
        "one letter per decision, the *executed* action (H where a guard blocked the sampled one); "
        "enables the per-action blocked rate",
    ),
    "stop_dist": Column("float", "the entry strategy's initial stop distance from the entry fill, in price units"),
    "target_dist": Column("float", "the entry strategy's initial target distance from the entry fill, in price units"),
}

_TIME_COLUMNS = tuple(name for name, col in LEDGER_COLUMNS.items() if col.kind == "time")
# net = gross - cost holds to float rounding, and to PNL_ZERO_TOLERANCE where a ledger writes a
# near-zero pnl as 0; anything larger is a producer bug
_PNL_TOLERANCE = 2 * PNL_ZERO_TOLERANCE


class LedgerError(DataError):
    """A ledger that does not follow :data:`LEDGER_COLUMNS`; the message names the columns and rows."""


def _kind_ok(series: pd.Series, kind: str) -> bool:
    t = pd.api.types
    if kind == "int":
        return t.is_integer_dtype(series) and not t.is_bool_dtype(series)
    if kind == "float":
        # integers are exact floats; a column of whole numbers is still a number column
        return t.is_numeric_dtype(series) and not t.is_bool_dtype(series)
    if kind == "bool":
        return t.is_bool_dtype(series)
    if kind == "str":
        if isinstance(series.dtype, pd.StringDtype):  # only text or missing values: no walk needed
            return not bool(series.isna().any())
        return t.is_string_dtype(series) and bool(series.map(lambda v: isinstance(v, str)).all())
    if kind == "time":
        return isinstance(series.dtype, pd.DatetimeTZDtype) and str(series.dtype.tz) == "UTC"
    raise AssertionError(f"unknown column kind {kind!r}")


_KIND_WORDS = {
    "int": "integers",
    "float": "numbers",
    "bool": "booleans",
    "str": "strings (no missing values)",
    "time": "UTC timestamps (datetime64[..., UTC])",
}


def _rows(mask: Any, df: pd.DataFrame, limit: int = 5) -> str:
    idx = list(df.index[np.asarray(mask)][:limit])
    more = int(np.asarray(mask).sum()) - len(idx)
    return f"rows {idx}" + (f" and {more} more" if more > 0 else "")


def validate_ledger(df: pd.DataFrame) -> None:
    """Check ``df`` against the ledger contract; raise :class:`LedgerError` listing every problem.

    Checks: every column of :data:`LEDGER_COLUMNS` is present and of its kind; and the values
    the contract defines: ``split`` and ``exit_reason`` from their vocabularies, ``direction``
    ±1, ``bars_held >= 1``, ``0 <= blocked <= n_decisions``, ``len(actions) == n_decisions``
    with valid letters, ``entry_time <= exit_time``, no NaN in the PnL columns and
    ``pnl = pnl_gross - cost`` (to 1e-9). The optional ``executed`` column, when present, must
    match ``actions`` letter by letter except where a blocked action became ``H``.
    """
    if not isinstance(df, pd.DataFrame):
        raise LedgerError(f"a ledger is a pandas DataFrame, got {type(df).__name__}")
    problems: list[str] = []
    missing = [c for c in LEDGER_COLUMNS if c not in df.columns]
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    columns = {**LEDGER_COLUMNS, **{k: v for k, v in OPTIONAL_COLUMNS.items() if k in df.columns}}
    mistyped = {c: col for c, col in columns.items() if c in df.columns and not _kind_ok(df[c], col.kind)}
    for name, col in mistyped.items():
        problems.append(f"column {name!r} has dtype {df[name].dtype}, expected {_KIND_WORDS[col.kind]}")
    if problems:
        # value checks assume the types; report the structural problems first
        raise LedgerError("invalid ledger: " + "; ".join(problems))
    problems.extend(_value_problems(df))
    if problems:
        raise LedgerError("invalid ledger: " + "; ".join(problems))


def _value_problems(df: pd.DataFrame) -> list[str]:
    problems: list[str] = []

    def check(bad: Any, what: str) -> None:
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            problems.append(f"{what} ({_rows(bad, df)})")

    check(~df["split"].isin(SPLITS), f"split must be one of {', '.join(SPLITS)}")
    check(~df["exit_reason"].isin(LEDGER_EXIT_REASONS), f"exit_reason must be one of {', '.join(LEDGER_EXIT_REASONS)}")
    check(~df["direction"].isin((1, -1)), "direction must be +1 or -1")
    check(df["bars_held"] < 1, "bars_held must be >= 1")
    check(df["n_decisions"] < 0, "n_decisions must be >= 0")
    check((df["blocked"] < 0) | (df["blocked"] > df["n_decisions"]), "blocked must lie in [0, n_decisions]")
    check((df["stop_moves"] < 0) | (df["partials"] < 0), "stop_moves and partials must be >= 0")
    check(df["actions"].str.len() != df["n_decisions"], "len(actions) must equal n_decisions")
    letters = "".join(LETTER_ACTIONS)
    check(~df["actions"].str.fullmatch(f"[{letters}]*"), f"actions may contain only the letters {letters}")
    for name in _TIME_COLUMNS:
        check(df[name].isna(), f"{name} must not be missing")
    check(df["exit_time"] < df["entry_time"], "exit_time must not precede entry_time")
    check(df["entry_time"] < df["signal_time"], "entry_time must not precede signal_time")
    for name in ("entry_price", "exit_price", "pnl", "pnl_gross", "cost", "pnl_pips", "pnl_ccy"):
        check(~np.isfinite(df[name].to_numpy(dtype=float)), f"{name} must be finite")
    if not problems:
        gap = (df["pnl"] - (df["pnl_gross"] - df["cost"])).abs()
        check(gap > _PNL_TOLERANCE, "pnl must equal pnl_gross - cost")
    if "executed" in df.columns and not problems:
        problems.extend(_executed_problems(df))
    return problems


def _executed_problems(df: pd.DataFrame) -> list[str]:
    actions, executed_all = df["actions"].to_numpy(dtype=object), df["executed"].to_numpy(dtype=object)
    blocked_all = df["blocked"].to_numpy()
    # a row without a blocked decision must be executed as sampled: compared at once; the walk
    # letter by letter is for the others (it took 5.7 s of an M1 evaluation done for every row)
    walk = np.flatnonzero((actions != executed_all) | (blocked_all != 0))
    bad_rows = []
    for i in walk:
        sampled, executed, blocked = actions[i], executed_all[i], blocked_all[i]
        if len(executed) != len(sampled):
            bad_rows.append(i)
            continue
        diffs = [(s, e) for s, e in zip(sampled, executed) if s != e]
        # a guard only ever turns an action into HOLD, and every such change is a blocked decision
        if any(e != "H" for _, e in diffs) or len(diffs) != blocked:
            bad_rows.append(i)
    if not bad_rows:
        return []
    mask = np.zeros(len(df), dtype=bool)
    mask[bad_rows] = True
    return [f"executed must equal actions except for `blocked` decisions turned into H ({_rows(mask, df)})"]


# --------------------------------------------------------------------------- construction and files


def empty_ledger() -> pd.DataFrame:
    """A ledger with no rows and every column of its proper dtype."""
    return coerce_ledger(pd.DataFrame({c: [] for c in LEDGER_COLUMNS}))


def coerce_ledger(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with each ledger column converted to its kind (for frames read from files).

    Timestamps are parsed as ISO-8601 and converted to UTC (naive ones are taken as UTC);
    missing ``actions``/``executed`` strings become ``""`` (CSV writes an empty string as an
    empty field, which pandas reads back as missing). Values that cannot be converted raise
    :class:`LedgerError` naming the column. The result is not validated: call
    :func:`validate_ledger`.
    """
    out = df.copy()
    kinds = {**{k: v.kind for k, v in LEDGER_COLUMNS.items()}, **{k: v.kind for k, v in OPTIONAL_COLUMNS.items()}}
    for name, kind in kinds.items():
        if name not in out.columns:
            continue
        s = out[name]
        try:
            if kind == "time":
                # nanoseconds, as the ledgers are built (pandas 3 parses ISO text to microseconds)
                s = (pd.to_datetime(s, utc=True, format="ISO8601") if len(s) else s).astype("datetime64[ns, UTC]")
            elif kind == "int":
                s = s.astype("int64")
            elif kind == "float":
                s = s.astype("float64")
            elif kind == "bool":
                s = s.map(_to_bool).astype(bool) if s.dtype != bool else s
            elif kind == "str":
                if name in ("actions", "executed"):
                    s = s.fillna("")
                # other missing strings stay missing, for validation to report
                s = s.astype(str) if not len(s) or not s.isna().any() else s
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"ledger column {name!r}: cannot read as {_KIND_WORDS[kind]}: {exc}") from None
        out[name] = s
    return out


def _to_bool(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    text = str(v).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {v!r}")


def write_ledger(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate ``df`` and write it to ``path``: Parquet if it ends in ``.parquet``, else CSV."""
    validate_ledger(df)
    path = Path(path)
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.assign(**_utc_times_as_text(df)).to_csv(path, index=False, date_format=CSV_TIME_FORMAT)
    return path


#: how a ledger CSV writes its times (``2019-03-14T16:53:00.000000+0000``)
CSV_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"


def _utc_times_as_text(df: pd.DataFrame) -> dict[str, pd.Series]:
    """The UTC time columns of ``df`` as the text ``CSV_TIME_FORMAT`` gives them, made by numpy:
    pandas' ``date_format`` formats each value in Python (a 230,000-row ledger of M1 trades:
    10-15 s of its 15-25 s to write; the same bytes in 5-7 s)."""
    out = {}
    for name in df.columns:
        column = df[name]
        if not (isinstance(column.dtype, pd.DatetimeTZDtype) and str(column.dtype.tz) == "UTC"):
            continue  # another zone keeps its own offset: pandas writes it
        naive = column.dt.tz_localize(None).to_numpy("datetime64[us]")
        text = np.char.add(np.datetime_as_string(naive, unit="us"), "+0000").astype(object)
        text[np.isnat(naive)] = ""  # as pandas writes a missing time
        out[name] = pd.Series(text, index=df.index, dtype=object)
    return out


def read_ledger(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ledger written by :func:`write_ledger` (or any CSV/Parquet with its columns) and validate it."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            raw = pd.read_parquet(path)
        else:
            # read strings as strings: an `actions` value like "1" must not become a number
            columns = {**LEDGER_COLUMNS, **OPTIONAL_COLUMNS}
            raw = pd.read_csv(path, dtype={c: str for c, col in columns.items() if col.kind in ("str", "time")})
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read ledger: {exc.strerror or exc}") from None
    except ValueError as exc:  # not text (UnicodeDecodeError), not CSV or Parquet, empty: a damaged file
        raise LedgerError(f"{path}: cannot read ledger, the file is damaged ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); restore it or run the experiment again") from None
    try:
        df = coerce_ledger(raw)
        validate_ledger(df)
    except LedgerError as exc:
        raise LedgerError(f"{path}: {exc}") from None
    return df
