"""Bars and trades as device tensors: what the environment, features and simulators index.

Nothing here is per episode: the market is stored once (``MarketTensors``, one row per bar) and
every trade is a handful of numbers (``TradeTable``); an environment reads bar ``entry_bar + k``
by indexing, so memory does not grow with the number of episodes and a step costs the same
whatever the dataset length.

**Precision.** Prices, stops and PnL are float64. A stop decision compares a bar's low with a
stop level that was moved by arithmetic (tightening, breakeven); in float32 a EURUSD price has
a resolution of about 1e-7 (0.001 pip) but accumulated PnL over thousands of trades and the
equality cases (a low exactly at a stop) are not safe, and the memory saved is irrelevant next
to the policy network. Observations are float32.

**Memory.** Per bar: open/high/low/close/ATR (float64) + timestamp + segment end (int64) =
56 bytes, against the 40 bytes of the raw timestamp + OHLC (1.4x).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch

from exitcore.config import DATA_HOLES, timeframe_seconds
from exitcore.costs import CostModel
from exitcore.data.bars import Bars, Trades
from exitcore.timeline import ExitReason, bar_outcome

_MARKET_FIELDS = ("open", "high", "low", "close", "atr", "ts", "segment_end")


@attrs.frozen(eq=False)
class MarketTensors:
    """The bar series on one device (index ``b`` = bar position in :class:`Bars`).

    ``open/high/low/close`` float64; ``atr`` float64 Wilder ATR(``atr_period``) known at the
    close of each bar (causal); ``ts`` int64 nanoseconds of each bar *open* (UTC);
    ``segment_end`` int64, the last bar of the contiguous stretch containing ``b`` (a hole of
    more than ``max_gap_bars`` missing bars ends a stretch). ``timeframe_ns`` is the bar
    length, ``pip_size`` the price of one pip.
    """

    open: torch.Tensor
    high: torch.Tensor
    low: torch.Tensor
    close: torch.Tensor
    atr: torch.Tensor
    ts: torch.Tensor
    segment_end: torch.Tensor
    timeframe_ns: int
    pip_size: float
    atr_period: int

    @property
    def n_bars(self) -> int:
        """Number of bars."""
        return int(self.close.shape[0])

    @property
    def device(self) -> torch.device:
        """Device the tensors live on."""
        return self.close.device

    def to(self, device: Any) -> MarketTensors:
        """A copy on ``device``."""
        return attrs.evolve(self, **{f: getattr(self, f).to(device) for f in _MARKET_FIELDS})

    def nbytes(self) -> int:
        """Bytes held by the tensors."""
        return sum(getattr(self, f).element_size() * getattr(self, f).numel() for f in _MARKET_FIELDS)

    @classmethod
    def from_bars(
        cls, bars: Bars, atr_period: int = 14, max_gap_bars: int = 4, device: Any = "cpu"
    ) -> MarketTensors:
        """Build from canonical bars (see :class:`exitcore.data.bars.Bars`)."""
        frame = bars.frame
        # copies: pandas may hand out read-only views, which torch must not share
        o, h, l, c = (frame[col].to_numpy(dtype=np.float64, copy=True) for col in ("open", "high", "low", "close"))
        ts = frame.index.as_unit("ns").asi8.astype(np.int64, copy=True)  # pandas 3 may store us
        tf_ns = timeframe_seconds(bars.timeframe) * 1_000_000_000
        return cls(
            open=torch.as_tensor(o, device=device),
            high=torch.as_tensor(h, device=device),
            low=torch.as_tensor(l, device=device),
            close=torch.as_tensor(c, device=device),
            atr=torch.as_tensor(wilder_atr(h, l, c, atr_period), device=device),
            ts=torch.as_tensor(ts, device=device),
            segment_end=torch.as_tensor(segment_ends(ts, tf_ns, max_gap_bars), device=device),
            timeframe_ns=tf_ns,
            pip_size=float(bars.pip_size),
            atr_period=atr_period,
        )


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average true range at each bar's close, using bars up to that bar only.

    ``TR_t = max(H_t - L_t, |H_t - C_{t-1}|, |L_t - C_{t-1}|)`` (``TR_0 = H_0 - L_0``), then
    ``ATR_t = ATR_{t-1} + (TR_t - ATR_{t-1}) / period`` started from ``TR_0``. NaN inputs
    propagate forward (a poisoned future never reaches the past).
    """
    n = len(close)
    tr = np.empty(n, dtype=np.float64)
    if n == 0:
        return tr
    tr[0] = high[0] - low[0]
    prev = close[:-1]
    tr[1:] = np.maximum.reduce([high[1:] - low[1:], np.abs(high[1:] - prev), np.abs(low[1:] - prev)])
    # The recursion is ewm(alpha=1/period, adjust=False), which pandas runs in C.
    out = pd.Series(tr).ewm(alpha=1.0 / period, adjust=False).mean().to_numpy(copy=True)
    # pandas ewm skips NaN instead of propagating; restore strict propagation for poisoned data
    bad = ~np.isfinite(tr)
    if bad.any():
        out[np.argmax(bad) :] = np.nan
    return out


def segment_ends(ts_ns: np.ndarray, timeframe_ns: int, max_gap_bars: int) -> np.ndarray:
    """For every bar, the index of the last bar of its contiguous stretch.

    Consecutive bars more than ``(max_gap_bars + 1) * timeframe`` apart (a hole of more than
    ``max_gap_bars`` missing bars: a weekend, a feed outage) start a new stretch.
    """
    n = len(ts_ns)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(ts_ns) > (max_gap_bars + 1) * timeframe_ns)  # last bar before a hole
    ends = np.append(breaks, n - 1)
    return ends[np.searchsorted(ends, np.arange(n), side="left")].astype(np.int64)


@attrs.frozen(eq=False)
class TradeTable:
    """Every trade of an entry strategy, filled and ready to step (index = row in ``Trades``).

    Per trade (all tensors ``[T]``): ``signal_bar`` and ``entry_bar = signal_bar + 1``;
    ``direction`` float64 +1/-1; ``entry_open`` the open of the entry bar; ``entry_price`` the
    fill (open plus costs); ``stop0``/``target0`` the initial levels (fill -/+ the strategy's
    distances); ``atr`` the ATR at the signal bar; ``last_bar`` the last bar the trade may
    stay open through and ``last_reason`` why (``TIME``, ``END_OF_DATA``, or ``GAP`` when
    ``env.data_holes = "close"``);
    ``entry_reason``/``entry_level``/``entry_ambiguous`` the outcome of the entry bar (a trade
    whose stop or target is hit on its entry bar ends before the agent acts); ``valid`` false
    for trades that cannot be filled (no bar after the signal, or, with ``data_holes =
    "close"``, the fill would cross a hole), with ``invalid_reason`` saying why. Row order and
    count equal the input trades.
    """

    signal_bar: torch.Tensor
    entry_bar: torch.Tensor
    direction: torch.Tensor
    entry_open: torch.Tensor
    entry_price: torch.Tensor
    stop0: torch.Tensor
    target0: torch.Tensor
    atr: torch.Tensor
    last_bar: torch.Tensor
    last_reason: torch.Tensor
    entry_reason: torch.Tensor
    entry_level: torch.Tensor
    entry_ambiguous: torch.Tensor
    valid: torch.Tensor
    invalid_reason: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of trades (valid or not)."""
        return int(self.signal_bar.shape[0])

    @property
    def decidable(self) -> torch.Tensor:
        """Valid trades still open after their entry bar: the ones the agent manages."""
        return self.valid & (self.entry_reason == int(ExitReason.OPEN))

    @classmethod
    def build(
        cls, trades: Trades, market: MarketTensors, costs: CostModel, max_bars: int, data_holes: str = "hold"
    ) -> TradeTable:
        """Fill ``trades`` on ``market`` under the timeline contract (design.md §2).

        ``data_holes`` is ``env.data_holes``: ``"hold"`` carries a trade across a hole in the
        data (only ``max_bars`` and the data's end bound ``last_bar``, and a fill after a hole
        is valid); ``"close"`` ends it at the last bar before a hole (``GAP``) and makes a
        trade whose fill would cross one invalid.
        """
        if data_holes not in DATA_HOLES:
            raise ValueError(f"data_holes must be one of {', '.join(map(repr, DATA_HOLES))}, got {data_holes!r}")
        dev = market.device
        f = trades.frame
        n_bars = market.n_bars
        s = torch.as_tensor(f["signal_bar"].to_numpy(dtype=np.int64, copy=True), device=dev)
        d = torch.as_tensor(f["direction"].to_numpy(dtype=np.float64, copy=True), device=dev)
        stop_dist = torch.as_tensor(f["stop_dist"].to_numpy(dtype=np.float64, copy=True), device=dev)
        target_dist = torch.as_tensor(f["target_dist"].to_numpy(dtype=np.float64, copy=True), device=dev)
        e = s + 1
        has_fill_bar = e < n_bars
        e_safe = torch.clamp(e, max=n_bars - 1)
        s_safe = torch.clamp(s, min=0, max=n_bars - 1)
        if data_holes == "close":
            stretch_end = market.segment_end  # a hole ends a trade's stretch
        else:  # "hold": the whole series is one stretch, so only the data's end stops a trade
            stretch_end = torch.full_like(market.segment_end, n_bars - 1)
        same_stretch = stretch_end[s_safe] >= e  # the fill does not cross a hole
        valid = has_fill_bar & same_stretch & (s >= 0)
        reasons = np.where(
            ~has_fill_bar.cpu().numpy(), "no bar after the signal", np.where(~same_stretch.cpu().numpy(), "fill would cross a data hole", "")
        )
        entry_open = market.open[e_safe]
        entry_price = costs.entry_fill(entry_open, d)
        stop0 = entry_price - d * stop_dist
        target0 = entry_price + d * target_dist
        time_bar = e_safe + (max_bars - 1)
        seg_end = stretch_end[e_safe]
        last_bar = torch.minimum(time_bar, seg_end)
        last_reason = torch.where(
            time_bar <= seg_end,
            torch.full_like(e, int(ExitReason.TIME)),
            torch.where(seg_end == n_bars - 1, torch.full_like(e, int(ExitReason.END_OF_DATA)), torch.full_like(e, int(ExitReason.GAP))),
        )
        # The entry bar runs before decision 0, as any other bar: a stop closer than the entry's
        # costs (Ds < c) lies beyond the open it was filled at, and fills at that open, not at
        # its level (a price that may never have traded)
        entry_reason, entry_level, entry_amb = bar_outcome(
            market.open[e_safe], market.high[e_safe], market.low[e_safe], stop0, target0, d
        )
        entry_reason = torch.where(valid, entry_reason, torch.full_like(entry_reason, int(ExitReason.OPEN)))
        return cls(
            signal_bar=s,
            entry_bar=e,
            direction=d,
            entry_open=entry_open,
            entry_price=entry_price,
            stop0=stop0,
            target0=target0,
            atr=market.atr[s_safe],
            last_bar=last_bar,
            last_reason=last_reason,
            entry_reason=entry_reason,
            entry_level=entry_level,
            entry_ambiguous=entry_amb & valid,
            valid=valid,
            invalid_reason=tuple(reasons.tolist()),  # Python str already: a str() per trade cost 0.3 s of an audit
        )
