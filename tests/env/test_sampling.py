"""Counter-based trade draws (exitcore/env/sampling.py): uniform, independent, reproducible."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from exitcore.env import sampling


def _stream(seed: int, n_envs: int, steps: int, high: int, counter: int = 0) -> np.ndarray:
    key = sampling.new_key(seed, torch.device("cpu"), step=counter)
    offsets = sampling.env_offsets(n_envs, torch.device("cpu"))
    out = []
    for _ in range(steps):
        idx, key = sampling.draw(key, offsets, high)
        out.append(idx.numpy())
    return np.stack(out)


def _uniform_p(counts: np.ndarray) -> float:
    """Upper-tail p-value of Pearson's chi-square of ``counts`` against the uniform
    distribution (Wilson-Hilferty normal approximation; scipy is not a dependency)."""
    k = counts.size
    expected = counts.sum() / k
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    df = k - 1
    z = ((chi2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))


@pytest.mark.parametrize("high", [7, 1000, 4729])
def test_draws_are_uniform(high):
    draws = _stream(seed=3, n_envs=512, steps=200, high=high)
    assert draws.min() >= 0 and draws.max() < high
    counts = np.bincount(draws.ravel(), minlength=high)
    assert _uniform_p(counts) > 1e-4


def test_consecutive_draws_are_independent():
    """Pairs (env i at step t, env i at step t+1) and (env i, env i+1 at one step) are uniform
    over all high**2 combinations: neither the counter nor the env index leaves a pattern."""
    high = 20
    draws = _stream(seed=11, n_envs=400, steps=100, high=high)
    over_steps = draws[:-1] * high + draws[1:]
    over_envs = draws[:, :-1] * high + draws[:, 1:]
    for pairs in (over_steps, over_envs):
        assert _uniform_p(np.bincount(pairs.ravel(), minlength=high * high)) > 1e-4


def test_seeds_give_different_streams_and_a_seed_the_same():
    a, b, c = _stream(1, 64, 10, 1000), _stream(1, 64, 10, 1000), _stream(2, 64, 10, 1000)
    assert np.array_equal(a, b)
    assert (a != c).mean() > 0.99


def test_the_key_alone_resumes_the_stream():
    whole = _stream(seed=5, n_envs=32, steps=20, high=97)
    tail = _stream(seed=5, n_envs=32, steps=10, high=97, counter=10)
    assert np.array_equal(whole[10:], tail)


def test_extreme_seeds_and_counters_stay_in_range():
    """No int64 overflow: the largest seed and a counter beyond 2**32 still give valid indices."""
    for seed in (0, 2**32 - 1, 2**40 + 7, -1):
        draws = _stream(seed, 1000, 3, high=2**31 - 1, counter=2**33 + 5)
        assert draws.min() >= 0 and draws.max() < 2**31 - 1
        assert len(np.unique(draws)) > 2990


def test_draws_match_on_the_compiled_path(needs_compile):
    key = sampling.new_key(9, torch.device("cpu"))
    offsets = sampling.env_offsets(4096, torch.device("cpu"))
    compiled = torch.compile(lambda k: sampling.draw(k, offsets, 4729), dynamic=False)
    got, next_key = compiled(key)
    want, want_key = sampling.draw(key, offsets, 4729)
    assert torch.equal(got, want) and torch.equal(next_key, want_key)
