"""Producing trade ledgers: run a policy over every trade of a split, and write the result.

:func:`make_ledger` plays every valid trade of a split once, in a **sweep-mode** environment
(``assembled.make_env(pool, auto_reset=False)``: environment ``i`` plays trade ``pool[i]``,
trades that end on their entry bar start finished), calling ``act(obs, mask)`` once per step
for all trades together until every trade is closed. The environment is the one training
used, so the ledger's exits follow the same timeline rules, guards, masks and cost model
(docs/environment.md). Per step only tensors are touched: the sampled and executed actions go
into ``[T, steps]`` tensors and the ``actions`` strings are built once at the end.

:func:`outcome_frame` turns per-trade outcome tensors into ledger rows; the RL ledger and the
baseline exits (:mod:`exitcore.evaluation.baselines`) both go through it, so times, prices,
pips and currency are computed in one place:

* ``signal_time = ts[s]``, ``entry_time = ts[e]`` (the fill at the open of ``e = s + 1``),
  ``exit_time = ts[exit_bar] + timeframe`` (the close of the exit bar, when the exit is known);
* ``entry_price = E`` (open plus half spread and slippage), ``exit_price`` = the fill of the
  final close, ``CostModel.exit_fill(level)``;
* ``pnl_pips = pnl × E / pip`` and ``pnl_ccy = pnl × costs.notional`` (the ledger contract,
  :mod:`exitcore.evaluation.ledger_schema`).

:func:`write_ledgers` writes a run's ledgers atomically (temporary file + ``os.replace``), one
file per split holding every policy: ``ledger_<split>.csv`` (or ``.parquet``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from exitcore.atomic import atomic_path
from exitcore.data.bars import TRADE_COLUMNS
from exitcore.evaluation.ledger_schema import (
    ACTION_LETTERS,
    LEDGER_COLUMNS,
    LEDGER_EXIT_REASONS,
    OPTIONAL_COLUMNS,
    empty_ledger,
    pnl_sign,
    validate_ledger,
    write_ledger,
)
from exitcore.timeline import ExitReason

#: ``act(obs [N, F] float32, mask [N, A] bool) -> actions [N] int64``
Actor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: the RL policy's ledger name; sampled-policy ledgers are ``rl_sample_<k>``
RL_POLICY = "rl"
LEDGER_FORMATS = ("csv", "parquet")

# letter codes by action id, for building the `actions` strings in one vectorised pass
_LETTER_CODES = np.frombuffer("".join(ACTION_LETTERS[a] for a in sorted(ACTION_LETTERS)).encode("ascii"), dtype=np.uint8)
_REASON_NAMES = np.array(["open", *LEDGER_EXIT_REASONS], dtype=object)


def trade_rows(pool: Any, device: Any = None) -> torch.Tensor:
    """Trade rows as an int64 tensor on ``device`` (from a list, a numpy array or a tensor on any device)."""
    if isinstance(pool, torch.Tensor):
        return pool.to(device=device, dtype=torch.int64)
    return torch.as_tensor(np.asarray(pool, dtype=np.int64), device=device)


def trade_rows_numpy(pool: Any) -> np.ndarray:
    """Trade rows as an int64 numpy array."""
    if isinstance(pool, torch.Tensor):
        return pool.detach().cpu().numpy().astype(np.int64)
    return np.asarray(pool, dtype=np.int64)


def policy_actor(policy: torch.nn.Module, deterministic: bool = True, generator: torch.Generator | None = None) -> Actor:
    """An :data:`Actor` for a trained policy: its most probable allowed action, or a sample.

    Uses :func:`exitcore.ppo.distribution.act` (masked logits, so a masked action is never
    chosen). ``generator`` drives sampling when ``deterministic`` is false.
    """
    from exitcore.ppo.distribution import act

    def actor(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return act(policy, obs, mask, deterministic=deterministic, generator=generator)

    return actor


def hold_actor(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Always HOLD: the position runs to its stop, target or time stop (the fixed baseline)."""
    return torch.zeros(obs.shape[0], dtype=torch.int64, device=obs.device)


def sample_seed(seed: int, k: int) -> int:
    """The generator seed of sampled-policy ledger ``rl_sample_<k>`` of a run seeded ``seed``."""
    return seed * 1_000_003 + k


def make_ledger(
    assembled: Any,
    pool: Sequence[int] | np.ndarray | torch.Tensor,
    split: str,
    act: Actor,
    policy_name: str = RL_POLICY,
) -> pd.DataFrame:
    """The ledger of ``act`` managing every trade in ``pool`` (rows of ``assembled.table``).

    Every trade in ``pool`` must be valid (fillable); trades that end on their entry bar are
    included with no decision. Returns a ledger (one row per trade, ``pool`` order) with the
    columns of :data:`~exitcore.evaluation.ledger_schema.LEDGER_COLUMNS` plus ``executed``;
    ``actions`` holds the *sampled* action letters per decision and ``executed`` what was
    executed after the guards. The loop runs over steps (at most ``env.max_bars``), never over
    trades.
    """
    pool_t = trade_rows(pool, assembled.device)
    if pool_t.numel() == 0:
        return empty_ledger().assign(executed=pd.Series([], dtype=object).astype(str))
    env = assembled.make_env(pool_t, auto_reset=False)
    sampled, executed = play(env, act, int(assembled.resolved.config.env.max_bars))
    st = env.state
    return outcome_frame(
        assembled,
        st.trade,
        split,
        policy_name,
        exit_bar=st.exit_bar,
        exit_level=st.exit_level,
        exit_reason=st.exit_reason,
        pnl=st.realized,
        pnl_gross=st.realized_gross,
        cost=st.costs_paid,
        stop_moves=st.n_stop_moves,
        partials=st.n_partials,
        blocked=st.n_blocked,
        at_breakeven=st.at_breakeven,
        ambiguous=st.ambiguous,
        actions=sampled,
        executed=executed,
    )


def play(env: Any, act: Actor, max_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step a sweep-mode ``env`` with ``act`` until every trade is closed.

    Returns the sampled and the executed action ids, ``[T, steps]`` int8 with ``-1`` where a
    trade had no decision (it was already closed). ``act`` sees only the trades still open
    (fewer rows as trades close), so the policy's cost shrinks with the open positions.
    Decisions are at most ``max_steps`` (``env.max_bars``): the forced close at each trade's
    last bar guarantees the end.
    """
    n = env.n_envs
    sampled = torch.full((n, max_steps), -1, dtype=torch.int8, device=env.device)
    executed = torch.full_like(sampled, -1)
    obs, mask = env.reset()
    steps = 0
    while steps < max_steps:
        live = torch.nonzero(~env.state.done).flatten()
        if live.numel() == 0:
            break
        action = torch.zeros(n, dtype=torch.int64, device=env.device)  # closed trades ignore theirs
        action[live] = act(obs[live], mask[live]).to(torch.int64)
        obs, mask, _, _ = env.step(action)
        sampled[live, steps] = action[live].to(torch.int8)
        executed[live, steps] = env.after.action[live].to(torch.int8)
        steps += 1
    if not bool(env.state.done.all()):  # pragma: no cover - the environment's forced close forbids it
        raise RuntimeError(f"{int((~env.state.done).sum())} trades still open after {max_steps} steps")
    return sampled[:, :steps], executed[:, :steps]


def action_strings(codes: torch.Tensor) -> np.ndarray:
    """``[T, S]`` int action ids (``-1`` = no decision, only ever trailing) -> ``T`` letter strings.

    One vectorised pass: ids become ASCII letter codes, ``-1`` becomes NUL, and each row is
    read as one fixed-width byte string (numpy drops trailing NULs).
    """
    arr = codes.cpu().numpy().astype(np.int64)
    t, s = arr.shape
    if s == 0:
        return np.full(t, "", dtype=object)
    letters = np.where(arr >= 0, _LETTER_CODES[np.clip(arr, 0, None)], 0).astype(np.uint8)
    raw = np.ascontiguousarray(letters).view(f"S{s}").ravel()
    return np.char.decode(raw, "ascii").astype(object)


def outcome_frame(
    assembled: Any,
    trade: torch.Tensor,
    split: str,
    policy_name: str,
    *,
    exit_bar: torch.Tensor,
    exit_level: torch.Tensor,
    exit_reason: torch.Tensor,
    pnl: torch.Tensor,
    pnl_gross: torch.Tensor,
    cost: torch.Tensor,
    stop_moves: torch.Tensor,
    partials: torch.Tensor,
    blocked: torch.Tensor,
    at_breakeven: torch.Tensor,
    ambiguous: torch.Tensor,
    actions: torch.Tensor | None,
    executed: torch.Tensor | None,
) -> pd.DataFrame:
    """Ledger rows from per-trade outcome tensors (all ``[T]``, ``actions``/``executed`` ``[T, S]``).

    ``exit_level`` is the bar-price level of the final close (before costs); ``None`` action
    tensors mean "no decisions" (baseline exits). Extra columns of the entry strategy's
    :class:`~exitcore.data.bars.Trades` follow the ledger's. The frame is validated before it
    is returned.
    """
    table, market, costs = assembled.table, assembled.market, assembled.costs
    cfg_costs = assembled.resolved.config.costs
    trade = trade.to(torch.int64)
    s = table.signal_bar[trade]
    e = table.entry_bar[trade]
    d = table.direction[trade]
    entry = table.entry_price[trade]
    exit_fill = costs.exit_fill(exit_level, d)
    tf = market.timeframe_ns

    def host(x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().numpy()

    def times(ns: torch.Tensor) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(host(ns), unit="ns", utc=True))

    n = int(trade.shape[0])
    if actions is None:
        action_text = np.full(n, "", dtype=object)
        executed_text = action_text
    else:
        action_text = action_strings(actions)
        executed_text = action_strings(executed if executed is not None else actions)
    pnl_np = host(pnl).astype(np.float64)
    pnl_np[pnl_sign(pnl_np) == 0] = 0.0  # a breakeven exit nets 0, not float64 rounding (+-1e-16)
    entry_np = host(entry).astype(np.float64)
    frame = pd.DataFrame(
        {
            "trade": host(trade).astype(np.int64),
            "split": split,
            "policy": policy_name,
            "direction": host(d).astype(np.int64),
            "signal_time": times(market.ts[s]),
            "entry_time": times(market.ts[e]),
            "exit_time": times(market.ts[exit_bar] + tf),
            "entry_price": entry_np,
            "exit_price": host(exit_fill).astype(np.float64),
            "exit_reason": _REASON_NAMES[host(exit_reason).astype(np.int64)],
            "bars_held": host(exit_bar - e + 1).astype(np.int64),
            "n_decisions": np.array([len(a) for a in action_text], dtype=np.int64),
            "actions": action_text,
            "blocked": host(blocked).astype(np.int64),
            "stop_moves": host(stop_moves).astype(np.int64),
            "partials": host(partials).astype(np.int64),
            "at_breakeven": host(at_breakeven).astype(bool),
            "ambiguous": host(ambiguous).astype(bool),
            "pnl": pnl_np,
            "pnl_gross": host(pnl_gross).astype(np.float64),
            "cost": host(cost).astype(np.float64),
            "pnl_pips": pnl_np * entry_np / costs.pip_size,
            "pnl_ccy": pnl_np * cfg_costs.notional,
            "executed": executed_text,
        }
    )
    frame[["split", "policy", "exit_reason", "actions", "executed"]] = frame[
        ["split", "policy", "exit_reason", "actions", "executed"]
    ].astype(str)
    # the entry strategy's own columns (a tag, its reason) follow, row for row: the trade id is
    # the row in its Trades frame, which refuses names that are ledger columns
    rows = host(trade)
    # the initial stop and target: with the prices, what a reader needs to replay a trade's exit
    for name in ("stop_dist", "target_dist"):
        frame[name] = assembled.trades.frame[name].iloc[rows].to_numpy(dtype=np.float64)
    extra = assembled.trades.frame.drop(columns=list(TRADE_COLUMNS))
    for name in extra.columns:
        frame[name] = extra[name].iloc[rows].to_numpy()
    if bool((exit_reason == int(ExitReason.OPEN)).any()):
        raise RuntimeError("outcome_frame got trades that are still open")
    validate_ledger(frame)
    return frame


def sampled_ledgers(
    assembled: Any, pool: Any, split: str, policy: torch.nn.Module, n_seeds: int, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """``n_seeds`` ledgers of the *sampled* policy: ``rl_sample_1 … rl_sample_N``.

    Ledger ``k`` samples its actions from a generator seeded :func:`sample_seed` ``(seed, k)``,
    so each is reproducible on its own.
    """
    out = {}
    for k in range(1, n_seeds + 1):
        gen = torch.Generator(device=assembled.device)
        gen.manual_seed(sample_seed(seed, k))
        name = f"{RL_POLICY}_sample_{k}"
        out[name] = make_ledger(assembled, pool, split, policy_actor(policy, deterministic=False, generator=gen), name)
    return out


# --------------------------------------------------------------------------- files


def ledger_file_name(split: str, fmt: str = "csv") -> str:
    """``ledger_<split>.csv`` or ``ledger_<split>.parquet``: one file per split, every policy in it."""
    if fmt not in LEDGER_FORMATS:
        raise ValueError(f"unknown ledger format {fmt!r}; expected one of {', '.join(LEDGER_FORMATS)}")
    return f"ledger_{split}.{fmt}"


def write_atomic_ledger(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """:func:`~exitcore.evaluation.ledger_schema.write_ledger` to a temporary file, then ``os.replace``.

    A crash leaves the previous file or the new one, never a torn one. Parquet needs pyarrow.
    """
    path = Path(path)
    with atomic_path(path) as tmp:  # the temporary file keeps the suffix write_ledger goes by
        write_ledger(df, tmp)
    return path


def write_ledgers(
    ledgers: Mapping[str, Mapping[str, pd.DataFrame]], run_dir: str | os.PathLike[str], fmt: str = "csv"
) -> list[Path]:
    """Write ``{split: {policy: ledger}}`` as one file per split in ``run_dir``; returns the paths.

    Rows are the concatenation of the split's policies in the order given.
    """
    paths = []
    for split, by_policy in ledgers.items():
        frames = [df for df in by_policy.values() if len(df)]
        if not frames:
            continue
        combined = pd.concat(frames, ignore_index=True)
        ordered = [*LEDGER_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in combined.columns)]
        combined = combined[ordered + [c for c in combined.columns if c not in ordered]]
        paths.append(write_atomic_ledger(combined, Path(run_dir) / ledger_file_name(split, fmt)))
    return paths
