"""The price_window feature's table, built from one unfolded view, is bit for bit the table of
`window` shifted copies stacked (how it was built before, 0.23 s per build on 745,000 M1 bars)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from exitcore_features.compute import price_window


def stacked(close: torch.Tensor, high: torch.Tensor, low: torch.Tensor, w: int) -> torch.Tensor:
    """The table as it was built: row b holds C[b-i] - C[b-i-1] for i < w (0 before bar 1), H[b] - L[b]."""
    move = torch.zeros_like(close)
    move[1:] = close[1:] - close[:-1]
    n = move.numel()
    lagged = [torch.cat([torch.zeros(min(i, n), dtype=move.dtype), move[: n - min(i, n)]]) for i in range(w)]
    return torch.stack([*lagged, high - low], dim=1).to(torch.float32)


@pytest.mark.parametrize("n", [0, 1, 3, 7, 50, 1000])
@pytest.mark.parametrize("w", [1, 2, 5, 16, 60])
def test_the_table_is_the_stacked_shifts(n, w):
    gen = torch.Generator().manual_seed(n * 100 + w)
    close = 1.1 + torch.cumsum(torch.randn(n, generator=gen, dtype=torch.float64) * 1e-4, 0)
    high, low = close + torch.rand(n, generator=gen, dtype=torch.float64) * 1e-4, close - 1e-4
    market = SimpleNamespace(close=close, high=high, low=low)
    spec = price_window(SimpleNamespace(window=w), SimpleNamespace(market=market, device=torch.device("cpu")))
    bars = torch.arange(n)
    state = SimpleNamespace(atr=torch.ones(n, dtype=torch.float64), direction=torch.ones(n, dtype=torch.float64), bar=bars)
    got = spec.compute(market, state)
    assert got.shape == (n, w + 1) and got.dtype == torch.float32
    assert torch.equal(got, stacked(close, high, low, w))  # direction +1 and ATR 1: the table's rows as they are
