"""The reward terms' tensor code (imported when a term is built, never at start-up)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from exitcore.components import BuildContext
from exitcore.costs import CostModel
from exitcore.timeline import ExitReason, bar_outcome

Term = Callable[..., torch.Tensor]


def pnl_term(params, ctx: BuildContext) -> Term:
    """``scale * step_gross`` (+ ``scale * step_mtm`` when ``params.unrealized``)."""
    scale = ctx.env.reward_scale
    if params.unrealized:
        return lambda before, action, after: scale * (after.step_gross + after.step_mtm)
    return lambda before, action, after: scale * after.step_gross


def cost_term(_params, ctx: BuildContext) -> Term:
    """``-scale * step_cost``."""
    scale = ctx.env.reward_scale
    return lambda before, action, after: -scale * after.step_cost


def time_penalty_term(params, ctx: BuildContext) -> Term:
    """``-time_coef * k / max_bars`` at the decision's ``k``."""
    coef = params.time_coef / ctx.env.max_bars
    return lambda before, action, after: -coef * before.k.to(torch.float64)


def regret_term(params, ctx: BuildContext) -> Term:
    """``-regret_coef * scale * max(0, best - realized)`` on the step that ends an episode.

    ``best`` is precomputed per trade here, from the whole window (hindsight; see
    :func:`best_exit_in_window`).
    """
    costs = CostModel.from_config(ctx.costs, ctx.market.pip_size)
    best = best_exit_in_window(ctx.market, ctx.trades, costs, ctx.env.max_bars)
    coef = params.regret_coef * ctx.env.reward_scale

    def term(before, action, after):
        regret = torch.clamp(best[after.trade] - after.realized, min=0.0)
        return torch.where(after.done, -coef * regret, torch.zeros_like(regret))

    return term


def best_exit_in_window(market, trades, costs: CostModel, max_bars: int, chunk: int = 65536) -> torch.Tensor:
    """The best net exit per unit each trade offered, with hindsight.

    Candidates are the net exits at each decision close ``C[e + j]`` for ``j = 0 .. J``, where
    the window ends at the first bar on which the *initial* stop or target would have closed
    the untouched position (a target hit adds its fill as a candidate), or at ``last_bar``.
    Trades that ended on their entry bar get their entry-bar outcome. Computed in chunks of
    trades over a ``[chunk, max_bars]`` window, so memory stays bounded.
    """
    out = torch.empty(trades.n, dtype=torch.float64, device=market.device)
    j = torch.arange(max_bars, device=market.device)
    last_index = market.n_bars - 1
    for lo in range(0, trades.n, chunk):
        sl = slice(lo, min(lo + chunk, trades.n))
        e = trades.entry_bar[sl].clamp(max=last_index)
        d = trades.direction[sl][:, None]
        entry = trades.entry_price[sl][:, None]
        last = trades.last_bar[sl][:, None]
        bars = e[:, None] + j[None, :]  # decision bars
        in_window = bars <= last
        bars_c = bars.clamp(max=last_index)
        closes = market.close[bars_c]
        net = costs.net_per_unit(closes, entry, d)
        # outcome of the bar after each decision, under the initial levels
        nxt = (bars + 1).clamp(max=last_index)
        stop0 = trades.stop0[sl][:, None].expand_as(closes)
        target0 = trades.target0[sl][:, None].expand_as(closes)
        reason, level, _ = bar_outcome(market.open[nxt], market.high[nxt], market.low[nxt], stop0, target0, d.expand_as(closes))
        closes_after = in_window & (bars < last) & (reason != int(ExitReason.OPEN))
        # decisions up to and including the first one after which the position closes
        first = torch.where(closes_after.any(dim=1), closes_after.to(torch.int64).argmax(dim=1), torch.full_like(e, max_bars))
        available = in_window & (j[None, :] <= first[:, None])
        best = torch.where(available, net, torch.full_like(net, -torch.inf)).max(dim=1).values
        row = torch.arange(closes.shape[0], device=market.device)
        first_c = first.clamp(max=max_bars - 1)
        target_first = (first < max_bars) & (reason[row, first_c] == int(ExitReason.TARGET))
        target_value = costs.net_per_unit(level[row, first_c], entry[:, 0], d[:, 0])
        best = torch.where(target_first, torch.maximum(best, target_value), best)
        # entry-bar exits (sweep mode only): their only outcome
        entry_closed = trades.entry_reason[sl] != int(ExitReason.OPEN)
        entry_value = costs.net_per_unit(trades.entry_level[sl], entry[:, 0], d[:, 0])
        out[sl] = torch.where(entry_closed, entry_value, best)
    return out
