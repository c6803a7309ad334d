"""A zoo of planted look-ahead leaks: a test plugin the audit must catch, each by name.

* ``zoo_next_close`` — a feature carrying the next bar's close (return from the decision close);
* ``zoo_centred_ma`` — distance of the close to a *centred* moving average, precomputed in
  ``build`` (the window reaches 10 bars into the future);
* ``zoo_global_norm`` — the close normalised by the mean and std of *all* closes, fitted in
  ``build`` (the classic "scaler fitted on the whole data set");
* ``zoo_needs_clean_data`` — a feature whose ``build`` refuses data with NaN anywhere: whether it
  can run at all depends on bars after the decision;
* ``zoo_long_memory`` — a 20-bar momentum declaring a lookback of 5 bars: not look-ahead, but
  it reads bars the purge gap was sized without, so test observations reach into the gap;
* ``zoo_rolling_z`` — no leak: a rolling z-score of the close from pandas (``window`` bars, 500
  by default), declaring its lookback of ``window - 1`` bars; pandas' running sums keep a trace of every value that passed through
  the window, so it is bit-identical only to the last bits of a float64: the audit must pass it;
* ``zoo_cached_next`` — the next bar's move, computed on its first build and kept in a
  module-level cache: every rebuild on poisoned bars serves the same clean table, so no
  comparison sees the leak; the audit must find the kept table itself;
* ``zoo_noisy_feature`` and ``zoo_random_guard`` — no look-ahead, but random (torch's global
  generator): they differ on every rebuild, poisoned or not; the audit must pass them;
* ``zoo_noisy_leak`` — the next bar's return plus noise: random *and* leaking, a leak;
* ``zoo_counter`` — counts its own calls: state kept between calls, which no rebuild can
  reproduce, so the audit cannot test it and must say so;
* ``zoo_peek_guard`` — a guard blocking every action but HOLD while the close three bars on is
  higher: it changes the path of the trade before the decision it is probed at;
* ``zoo_peek_mask`` — a mask allowing EXIT only while the close three bars on is not higher,
  combined with v4's innocent ``min_exit_bar``: only the peeking mask may be named;
* ``zoo_peek_entry`` — an entry strategy that decides at the close of bar ``s`` using the close
  of bar ``s + 1`` (the bar it is filled in): it enters in the direction of the entry bar's move;
* ``zoo_cached_peek_entry`` — the same trades computed on the first run and kept at module
  level, each run serving those within its bars: the audit must find the kept trade table.

Every one of them looks harmless in a backtest; only poisoning or truncating the future (or,
for ``zoo_long_memory``, the bars before the declared lookback) exposes them.
"""

from __future__ import annotations

import attrs
import numpy as np
import pandas as pd
import torch

from exitcore import hookimpl
from exitcore.components import FeatureSpec
from exitcore.data.bars import Trades


def _next_close(_params, ctx):
    last = ctx.market.n_bars - 1

    def compute(market, state):
        nxt = torch.clamp(state.bar + 1, max=last)
        return (market.close[nxt] / market.close[state.bar] - 1.0)[:, None].to(torch.float32)

    return FeatureSpec(("next_close_ret",), 0, compute)


def _next_gap(_params, ctx):
    last = ctx.market.n_bars - 1

    def compute(market, state):  # 1 where the next bar opens after a hole (a weekend, say): the next bar's time
        nxt = torch.clamp(state.bar + 1, max=last)
        return ((market.ts[nxt] - market.ts[state.bar]) > market.timeframe_ns).to(torch.float32)[:, None]

    return FeatureSpec(("hole_next",), 0, compute)


def _centred_ma(_params, ctx):
    close = ctx.market.close.cpu().numpy()
    cma = pd.Series(close).rolling(21, center=True, min_periods=1).mean().to_numpy(copy=True)
    cma_t = torch.as_tensor(cma, device=ctx.device)

    def compute(market, state):
        b = state.bar
        return ((market.close[b] - cma_t[b]) / torch.clamp(state.atr, min=1e-12))[:, None].to(torch.float32)

    return FeatureSpec(("close_minus_cma_atr",), 10, compute)


def _global_norm(_params, ctx):
    close = ctx.market.close
    mean, std = close.mean(), close.std()

    def compute(market, state):
        return ((market.close[state.bar] - mean) / std)[:, None].to(torch.float32)

    return FeatureSpec(("close_z",), 0, compute)


def _long_memory(_params, ctx):
    def compute(market, state):
        past = torch.clamp(state.bar - 20, min=0)
        return ((market.close[state.bar] - market.close[past]) / torch.clamp(state.atr, min=1e-12))[:, None].to(torch.float32)

    return FeatureSpec(("momentum_20_atr",), 5, compute)  # the lie: it reads 20 bars back


@attrs.frozen
class _WindowParams:
    window: int = 500


def _rolling_z(params, ctx):
    close = pd.Series(ctx.market.close.cpu().numpy())
    window = close.rolling(params.window, min_periods=1)
    table = torch.as_tensor(((close - window.mean()) / window.std()).fillna(0.0).to_numpy(copy=True), dtype=torch.float32)

    def compute(market, state):
        return table.to(state.bar.device)[state.bar][:, None]

    return FeatureSpec((f"close_z{params.window}",), params.window - 1, compute)


_CACHE: dict[str, torch.Tensor] = {}


def _cached_next(_params, ctx):
    if "next_move" not in _CACHE:  # "expensive": computed once per process
        close = ctx.market.close
        _CACHE["next_move"] = torch.cat([close[1:] - close[:-1], close.new_zeros(1)]).to(torch.float32)
    table = _CACHE["next_move"]

    def compute(market, state):
        return table[state.bar][:, None] * 1e4

    return FeatureSpec(("next_move_cached",), 0, compute)


def _cached_diff(_params, ctx):
    if "diff" not in _CACHE:  # np.diff's n_bars - 1 rows: "the last move" read at state.bar is the next one (trial T)
        _CACHE["diff"] = torch.from_numpy(np.diff(ctx.market.close.cpu().numpy())).to(torch.float32)
    moves = _CACHE["diff"]

    def compute(market, state):
        return moves[state.bar.clamp(max=moves.numel() - 1)][:, None] * 1e4

    return FeatureSpec(("last_move_cached",), 0, compute)


def _peek_entry(_params, _ctx):
    def strategy(bars):
        from exitcore.episodes import wilder_atr

        f = bars.frame
        close = f["close"].to_numpy(dtype=np.float64)
        atr = wilder_atr(f["high"].to_numpy(np.float64), f["low"].to_numpy(np.float64), close, 14)
        move = np.r_[close[1:] - close[:-1], np.nan]  # close[s + 1] - close[s]: the future
        signal = np.abs(move) > 0.8 * atr
        signal[:20] = False
        s = np.flatnonzero(signal & np.isfinite(atr))
        frame = pd.DataFrame({"signal_bar": s.astype(np.int64), "direction": np.sign(move[s]).astype(np.int64),
                              "stop_dist": 1.5 * atr[s], "target_dist": 3.0 * atr[s]})
        return Trades(frame, strategy="zoo_peek_entry")

    return strategy


def _cached_peek_entry(_params, _ctx):
    """``zoo_peek_entry``'s trades computed on the first run and kept at module level; each run
    serves those whose signal bar is in the bars it is given: identical on every truncated or
    poisoned rerun, so only the kept table gives the leak away."""
    def strategy(bars):
        if "peek_trades" not in _CACHE:  # "expensive": computed once per process
            _CACHE["peek_trades"] = _peek_entry(None, None)(bars).frame
        kept = _CACHE["peek_trades"]
        return Trades(kept[kept["signal_bar"] < len(bars)].reset_index(drop=True), strategy="zoo_cached_peek_entry")

    return strategy


def _keeps_bars_entry(_params, _ctx):
    """No leak: zoo_graded_entry's past-only trades, keeping the last bars and timestamps it was
    given at module level (state, but of the bars it is given: the audit must pass it)."""
    honest = _graded_entry(_GradeParams(future=False), None)

    def strategy(bars):
        _CACHE["last_bars"] = (bars, bars.frame.index.asi8, bars.frame["close"])
        return honest(bars)

    return strategy


def _graded_entry(params, _ctx):
    """Trades on a past-only signal, with an extra column grading each: the next 8 bars' move
    (the future: it reaches the ledgers, and a feature may read it) or a past-only one."""
    def strategy(bars):
        from exitcore.episodes import wilder_atr

        f = bars.frame
        close = f["close"].to_numpy(dtype=np.float64)
        atr = wilder_atr(f["high"].to_numpy(np.float64), f["low"].to_numpy(np.float64), close, 14)
        past = np.r_[np.nan, close[1:] - close[:-1]]  # close[s] - close[s - 1]: known at s
        s = np.flatnonzero((np.abs(past) > 0.8 * atr) & np.isfinite(atr))
        s = s[s >= 20]
        later = np.r_[close[8:], np.full(8, np.nan)] - close if params.future else past
        frame = pd.DataFrame({"signal_bar": s.astype(np.int64), "direction": np.sign(past[s]).astype(np.int64),
                              "stop_dist": 1.5 * atr[s], "target_dist": 3.0 * atr[s], "grade": later[s] / atr[s]})
        return Trades(frame, strategy="zoo_graded_entry")

    return strategy


@attrs.frozen
class _GradeParams:
    future: bool = True


def _needs_clean_data(_params, ctx):
    if not bool(torch.isfinite(ctx.market.close).all()):
        raise ValueError("prices contain NaN")
    return FeatureSpec(("one",), 0, lambda market, state: torch.ones(state.n, 1, device=state.bar.device))


def _noisy_feature(_params, ctx):
    return FeatureSpec(("noise",), 0, lambda market, state: torch.rand(state.n, 1, device=state.bar.device))


def _noisy_leak(_params, ctx):
    def compute(market, state):
        nxt = torch.clamp(state.bar + 1, max=market.n_bars - 1)
        move = (market.close[nxt] - market.close[state.bar]) / torch.clamp(state.atr, min=1e-12)
        return (move[:, None] + 1e-3 * torch.rand(state.n, 1, dtype=torch.float64, device=state.bar.device)).to(torch.float32)

    return FeatureSpec(("noisy_next_move",), 0, compute)


_CALLS = [0]


def _counter(_params, ctx):
    def compute(market, state):
        _CALLS[0] += 1
        return torch.full((state.n, 1), float(_CALLS[0] % 7), device=state.bar.device)

    return FeatureSpec(("calls_mod_7",), 0, compute)


def _random_guard(_params, ctx):
    return lambda state, action: torch.rand(state.n, device=state.bar.device) < 0.5


def _peek_guard(_params, ctx):
    close, last = ctx.market.close, ctx.market.n_bars - 1

    def guard(state, action):  # blocks every exit and stop move while the price rises 3 bars on
        ahead = close[torch.clamp(state.bar + 3, max=last)]
        return (action != 0) & (ahead > close[state.bar])
    return guard


def _peek_mask(_params, ctx):
    close, last = ctx.market.close, ctx.market.n_bars - 1

    def mask(state):  # EXIT only while the price does not rise over the next 3 bars
        allowed = torch.ones(state.bar.shape[0], 5, dtype=torch.bool, device=state.bar.device)
        allowed[:, 1] = close[torch.clamp(state.bar + 3, max=last)] <= close[state.bar]
        return allowed
    return mask


@hookimpl
def register_action_masks(register):
    register("zoo_peek_mask", _peek_mask, description="LEAK: allows EXIT only while the close 3 bars on is not higher")


@hookimpl
def register_exit_guards(register):
    register("zoo_random_guard", _random_guard, description="random: blocks half of the actions by a coin flip")
    register("zoo_peek_guard", _peek_guard, description="LEAK: blocks every action but HOLD while the close 3 bars on is higher")


@hookimpl
def register_features(register):
    register("zoo_next_close", _next_close, description="LEAK: the next bar's close")
    register("zoo_centred_ma", _centred_ma, description="LEAK: a centred moving average precomputed in build")
    register("zoo_next_gap", _next_gap, description="LEAK: whether a hole in the data comes next (the next bar's time)")
    register("zoo_global_norm", _global_norm, description="LEAK: normalised by statistics of all the data")
    register("zoo_needs_clean_data", _needs_clean_data, description="LEAK: refuses to build when *later* bars are NaN")
    register("zoo_long_memory", _long_memory, description="reads 20 bars back, declares a lookback of 5")
    register("zoo_rolling_z", _rolling_z, params=_WindowParams,
             description="causal: a pandas rolling z-score, lookback declared")
    register("zoo_cached_next", _cached_next, description="LEAK: the next bar's move, cached at module level")
    register("zoo_cached_diff", _cached_diff, description="LEAK: the next bar's move, an np.diff cached at module level")
    register("zoo_noisy_feature", _noisy_feature, description="random: uniform noise")
    register("zoo_noisy_leak", _noisy_leak, description="LEAK: the next bar's move, plus noise")
    register("zoo_counter", _counter, description="stateful: counts its own calls")


@hookimpl
def register_entry_strategies(register):
    register("zoo_peek_entry", _peek_entry, description="LEAK: enters on the entry bar's own move")
    register("zoo_keeps_bars_entry", _keeps_bars_entry, description="no leak: keeps the bars it was given")
    register("zoo_cached_peek_entry", _cached_peek_entry, description="LEAK: zoo_peek_entry's trades, cached at module level")
    register("zoo_graded_entry", _graded_entry, params=_GradeParams,
             description="LEAK (future = true): an extra column grading each trade by the next 8 bars")
