"""Baseline exit policies, simulated on the same trades as the RL agent (design.md §7).

Every evaluation sets the RL exits beside classical exits of the *same* trades, filled the same
way, under the same timeline rules (:func:`exitcore.timeline.bar_outcome`: gaps fill at the
open, a bar touching stop and target takes the stop) and the same cost model
(:class:`exitcore.costs.CostModel`). A baseline closes the whole position once; it takes no
agent decisions (its ledger rows have ``n_decisions = 0`` and empty ``actions``).

* ``fixed_stop_target`` — the entry strategy's own initial stop and target, held until one is
  hit or the trade's last bar (the time stop ``max_bars``, a hole in the data, or the data's
  end). It is exactly the RL environment played with HOLD at every decision, and the tests
  check that the two ledgers agree.
* ``trailing_<m>atr`` — a trailing stop: at the close of every bar ``b`` from the entry bar on,
  the stop moves to ``C[b] − d·m·ATR[b]`` if that is tighter (it never loosens), effective from
  bar ``b + 1`` on (the same timing as the agent's ``TIGHTEN_SL``: decided at a close, checked
  against the next bar). The initial stop and the target stay in force until replaced.
* ``time_<n>bars`` — close at the close of the ``n``-th bar held (``bars_held = n``) unless
  the initial stop or target ended the trade earlier; an exit forced this way is reported as
  ``time``. Only ``n < max_bars`` (longer is the fixed baseline).

**The grid and the best baseline.** :data:`DEFAULT_GRID` holds the fixed baseline, trailing
stops with ``m ∈ {1, 1.5, 2, 3}`` and time exits with ``n ∈ {4, 8, 16, 32}``.
:func:`choose_best` picks the member with the highest annualised daily time-series Sharpe
(:func:`exitcore.evaluation.metrics.annualised_sharpe` of the daily PnL) on the **training
split only** — the same information the RL agent was trained on — and the evaluation reports
that member on the evaluated split as the best baseline. Choosing it on the evaluated split
would give the baseline the hindsight RL does not get.

**Vectorised.** A baseline is simulated for all trades at once as a ``[trades, max_bars]``
matrix of bars (in chunks of :data:`CHUNK_TRADES` trades to bound memory): stop levels per bar,
``bar_outcome`` on all of them, and the first hit per trade by ``argmax``. Bar ``k`` of a trade
is the bar evolved after decision ``k``, i.e. bar ``e + k + 1``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch

from exitcore.evaluation.ledger import outcome_frame, trade_rows
from exitcore.evaluation.metrics import annualised_sharpe, daily_pnl
from exitcore.timeline import ExitReason, bar_outcome

#: trades simulated per chunk: a chunk holds about 10 float64 [CHUNK_TRADES, max_bars] tensors
CHUNK_TRADES = 8192
BASELINE_KINDS = ("fixed_stop_target", "trailing", "time")


@attrs.frozen
class Baseline:
    """One baseline exit rule: ``kind`` and its parameter (ATR multiple or bars; None for fixed)."""

    kind: str = attrs.field(validator=attrs.validators.in_(BASELINE_KINDS))
    value: float | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind == "fixed_stop_target":
            if self.value is not None:
                raise ValueError("fixed_stop_target takes no parameter")
        elif self.value is None or not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"{self.kind} needs a positive parameter, got {self.value!r}")
        elif self.kind == "time" and int(self.value) != self.value:
            raise ValueError(f"time exit needs a whole number of bars, got {self.value!r}")

    @property
    def name(self) -> str:
        """The ledger's policy name: ``fixed_stop_target``, ``trailing_2.0atr``, ``time_8bars``."""
        if self.kind == "trailing":
            return f"trailing_{float(self.value):.1f}atr"
        if self.kind == "time":
            return f"time_{int(self.value)}bars"
        return "fixed_stop_target"


FIXED = Baseline("fixed_stop_target")


def trailing_stop(atr_multiple: float) -> Baseline:
    """A trailing stop at ``atr_multiple`` × ATR behind each bar's close."""
    return Baseline("trailing", float(atr_multiple))


def time_exit(n_bars: int) -> Baseline:
    """Close after ``n_bars`` bars held (initial stop and target in force until then)."""
    return Baseline("time", int(n_bars))


#: the baselines every evaluation reports, and among which the best is chosen on the train split
DEFAULT_GRID: tuple[Baseline, ...] = (
    FIXED,
    *(trailing_stop(m) for m in (1.0, 1.5, 2.0, 3.0)),
    *(time_exit(n) for n in (4, 8, 16, 32)),
)


def usable_grid(grid: Iterable[Baseline], max_bars: int) -> tuple[Baseline, ...]:
    """``grid`` without time exits of ``max_bars`` bars or more (identical to the fixed baseline)."""
    return tuple(b for b in grid if not (b.kind == "time" and int(b.value) >= max_bars))


# --------------------------------------------------------------------------- simulation


def simulate(assembled: Any, pool: Sequence[int] | np.ndarray | torch.Tensor, baseline: Baseline) -> dict[str, torch.Tensor]:
    """Per-trade outcome tensors of ``baseline`` on the trades ``pool`` (valid rows of the table).

    Returns ``trade, exit_bar, exit_level, exit_reason, pnl, pnl_gross, cost, stop_moves,
    at_breakeven, ambiguous`` (all ``[T]``), the keyword arguments of
    :func:`exitcore.evaluation.ledger.outcome_frame`.
    """
    pool_t = trade_rows(pool, assembled.device)
    if not bool(assembled.table.valid[pool_t].all()):
        raise ValueError("baselines can only be simulated on valid (fillable) trades")
    parts = [_simulate_chunk(assembled, pool_t[i : i + CHUNK_TRADES], baseline) for i in range(0, pool_t.numel(), CHUNK_TRADES)]
    if not parts:
        parts = [_simulate_chunk(assembled, pool_t, baseline)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _simulate_chunk(assembled: Any, trade: torch.Tensor, baseline: Baseline) -> dict[str, torch.Tensor]:
    t, m, costs = assembled.table, assembled.market, assembled.costs
    max_bars = int(assembled.resolved.config.env.max_bars)
    e, d = t.entry_bar[trade], t.direction[trade]
    entry, entry_open = t.entry_price[trade], t.entry_open[trade]
    stop0, target = t.stop0[trade], t.target0[trade]
    last, last_reason = t.last_bar[trade], t.last_reason[trade]
    if baseline.kind == "time":
        time_bar = e + (int(baseline.value) - 1)
        # the rule closes at time_bar's close whatever else would end the trade there (a data
        # hole or the end of the data right after it): the exit is the baseline's, reason time
        forced_reason = torch.where(time_bar <= last, torch.full_like(last_reason, int(ExitReason.TIME)), last_reason)
        last = torch.minimum(last, time_bar)
    else:
        forced_reason = last_reason

    k = torch.arange(max_bars, device=e.device)
    bar = torch.clamp(e[:, None] + k[None, :], max=m.n_bars - 1)  # decision bar of offset k
    nxt = torch.clamp(bar + 1, max=m.n_bars - 1)  # the bar evolved after it
    dcol = d[:, None]
    if baseline.kind == "trailing":
        # stop set at the close of `bar`, in force on `nxt`: never looser than before
        cand = m.close[bar] - dcol * (float(baseline.value) * m.atr[bar])
        tightest = torch.cummax(torch.maximum(dcol * cand, (d * stop0)[:, None]), dim=1).values
        stops = dcol * tightest
    else:
        stops = stop0[:, None].expand(-1, max_bars)
    reason, level, amb = bar_outcome(m.open[nxt], m.high[nxt], m.low[nxt], stops, target[:, None], dcol)
    evolves = k[None, :] < (last - e)[:, None]  # the decision at `bar` is before the last bar
    hit = evolves & (reason != int(ExitReason.OPEN))
    any_hit = hit.any(dim=1)
    first = torch.argmax(hit.to(torch.int8), dim=1)
    rows = torch.arange(trade.numel(), device=e.device)
    exit_bar = torch.where(any_hit, e + first + 1, last)
    exit_level = torch.where(any_hit, level[rows, first], m.close[last])
    exit_reason = torch.where(any_hit, reason[rows, first], forced_reason)
    ambiguous = any_hit & amb[rows, first]
    # the stop in force on the exit bar, and how often it moved before that bar
    in_force = torch.where(any_hit, first, last - e - 1)
    stop_now = torch.where(in_force >= 0, stops[rows, torch.clamp(in_force, min=0)], stop0)
    prev = torch.cat([stop0[:, None], stops[:, :-1]], dim=1)
    moved = torch.cumsum((dcol * (stops - prev) > 0).to(torch.int64), dim=1)
    stop_moves = torch.where(in_force >= 0, moved[rows, torch.clamp(in_force, min=0)], torch.zeros_like(in_force))

    # trades the entry bar already closed (the same outcome whatever the exit rule)
    at_entry = t.entry_reason[trade] != int(ExitReason.OPEN)
    exit_bar = torch.where(at_entry, e, exit_bar)
    exit_level = torch.where(at_entry, t.entry_level[trade], exit_level)
    exit_reason = torch.where(at_entry, t.entry_reason[trade], exit_reason)
    ambiguous = torch.where(at_entry, t.entry_ambiguous[trade], ambiguous)
    stop_moves = torch.where(at_entry, torch.zeros_like(stop_moves), stop_moves)
    stop_now = torch.where(at_entry, stop0, stop_now)

    gross = costs.gross_per_unit(exit_level, entry_open, entry, d)
    cost = costs.cost_per_unit(entry) * torch.ones_like(gross)
    breakeven = costs.breakeven_level(entry, d)
    return {
        "trade": trade,
        "exit_bar": exit_bar,
        "exit_level": exit_level,
        "exit_reason": exit_reason,
        "pnl": gross - cost,
        "pnl_gross": gross,
        "cost": cost,
        "stop_moves": stop_moves,
        "at_breakeven": d * (stop_now - breakeven) >= 0,
        "ambiguous": ambiguous,
    }


def baseline_ledger(assembled: Any, pool: Any, split: str, baseline: Baseline) -> pd.DataFrame:
    """The ledger of ``baseline`` on the trades ``pool`` of ``split`` (policy = ``baseline.name``)."""
    out = simulate(assembled, pool, baseline)
    zeros = torch.zeros_like(out["stop_moves"])
    return outcome_frame(
        assembled,
        out.pop("trade"),
        split,
        baseline.name,
        partials=zeros,
        blocked=zeros,
        actions=None,
        executed=None,
        **out,
    )


def baseline_ledgers(
    assembled: Any, pool: Any, split: str, grid: Iterable[Baseline] = DEFAULT_GRID
) -> dict[str, pd.DataFrame]:
    """``{baseline name: ledger}`` for every usable member of ``grid`` (see :func:`usable_grid`)."""
    max_bars = int(assembled.resolved.config.env.max_bars)
    return {b.name: baseline_ledger(assembled, pool, split, b) for b in usable_grid(grid, max_bars)}


#: how :func:`choose_best` chooses, in words (results.json's ``best_baseline.rule``)
BEST_BASELINE_RULE = "highest annualised daily Sharpe on the training split"


def best_baseline_choice(best: str, train_sharpes: Mapping[str, float], label: str | None = None) -> dict[str, Any]:
    """The record of a :func:`choose_best` choice: ``name``, ``chosen_on``, the split's ``label``
    (when given), ``rule`` and every baseline's ``train_sharpes``, as results.json and the
    trade_metrics evaluator give it."""
    return {"name": best, "chosen_on": "train", **({"label": label} if label is not None else {}),
            "rule": BEST_BASELINE_RULE, "train_sharpes": dict(train_sharpes)}


def choose_best(train_ledgers: Mapping[str, pd.DataFrame], start: Any, end: Any) -> tuple[str, dict[str, float]]:
    """The baseline with the highest annualised daily Sharpe on the training split, and every Sharpe.

    ``train_ledgers`` are the baselines' ledgers on the **training** split and ``start``/``end``
    its span. An undefined Sharpe (a flat curve) ranks last; ties go to the earlier grid member.
    """
    if not train_ledgers:
        raise ValueError("no baseline ledgers to choose from")
    sharpes = {name: annualised_sharpe(daily_pnl(df, start, end)) for name, df in train_ledgers.items()}
    order = list(sharpes)
    best = max(order, key=lambda n: (sharpes[n] if math.isfinite(sharpes[n]) else -math.inf, -order.index(n)))
    return best, sharpes
