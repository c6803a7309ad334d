"""The masked categorical: log-probs, entropy, sampling and the empty-row assertion."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from exitcore.ppo.distribution import MASKED_LOGIT, MaskedCategorical, act, masked_logits

LOGITS = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, 0.0, 3.0, 1.0]])
MASK = torch.tensor([[True, False, True, True], [False, True, False, True]])


def manual(logits_row, mask_row):
    allowed = [i for i, m in enumerate(mask_row) if m]
    z = sum(math.exp(logits_row[i]) for i in allowed)
    probs = [math.exp(logits_row[i]) / z if mask_row[i] else 0.0 for i in range(len(mask_row))]
    entropy = -sum(p * math.log(p) for p in probs if p > 0)
    return probs, entropy


def test_log_probs_and_entropy_match_manual_computation():
    dist = MaskedCategorical(LOGITS, MASK)
    for row in range(2):
        probs, entropy = manual(LOGITS[row].tolist(), MASK[row].tolist())
        assert dist.probs[row].tolist() == pytest.approx(probs, abs=1e-6)
        assert dist.entropy()[row].item() == pytest.approx(entropy, abs=1e-6)
        for a, p in enumerate(probs):
            if p > 0:
                lp = dist.log_prob(torch.tensor([a, a]))[row].item()
                assert lp == pytest.approx(math.log(p), abs=1e-6)
    # masked actions have probability exactly 0 and a finite (very negative) log-prob
    assert dist.probs[0, 1].item() == 0.0
    assert math.isfinite(dist.log_prob(torch.tensor([1, 0]))[0].item())


def test_masked_logits_are_large_negative_and_finite():
    out = masked_logits(LOGITS, MASK)
    assert torch.isfinite(out).all()
    assert (out[~MASK] == MASKED_LOGIT).all()
    assert torch.equal(out[MASK], LOGITS[MASK])


def test_gradients_stay_finite_through_masked_entropy():
    logits = LOGITS.clone().requires_grad_(True)
    dist = MaskedCategorical(logits, MASK)
    (dist.entropy().sum() + dist.log_prob(torch.tensor([0, 3])).sum()).backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[~MASK] == 0).all()  # a masked action gets no gradient


def test_sampling_never_picks_masked_actions_and_follows_probs():
    gen = torch.Generator().manual_seed(0)
    logits = LOGITS.repeat(20_000, 1)
    mask = MASK.repeat(20_000, 1)
    dist = MaskedCategorical(logits, mask)
    actions = dist.sample(gen)
    assert mask.gather(1, actions[:, None]).all()
    for row in range(2):
        freq = torch.bincount(actions[row::2], minlength=4).float() / 20_000
        assert freq.tolist() == pytest.approx(dist.probs[row].tolist(), abs=0.015)
    # the generator's state fully determines the sample
    again = MaskedCategorical(logits, mask).sample(torch.Generator().manual_seed(0))
    assert torch.equal(actions, again)


def test_mode_is_the_best_allowed_action():
    assert MaskedCategorical(LOGITS, MASK).mode().tolist() == [0, 3]


def test_every_live_row_must_allow_an_action():
    mask = MASK.clone()
    mask[1] = False
    with pytest.raises(ValueError, match="row 1 allows no action"):
        MaskedCategorical(LOGITS, mask)
    # a finished (not live) row may be empty
    MaskedCategorical(LOGITS, mask, live=torch.tensor([True, False]))
    # the rollout skips the check (it validates stored masks once per update)
    MaskedCategorical(LOGITS, mask, validate=False)


class _Fixed(nn.Module):
    def forward(self, obs):
        return LOGITS[: obs.shape[0]], torch.zeros(obs.shape[0])


def test_act_deterministic_and_sampled():
    obs = torch.zeros(2, 3)
    assert act(_Fixed(), obs, MASK).tolist() == [0, 3]
    sampled = act(_Fixed(), obs, MASK, deterministic=False, generator=torch.Generator().manual_seed(1))
    assert MASK.gather(1, sampled[:, None]).all()


def test_an_empty_row_gives_zero_probabilities_not_nan():
    """A finished environment's row may allow nothing (evaluation); it must not produce NaN,
    in values or in gradients, since a batch is differentiated as a whole."""
    mask = MASK.clone()
    mask[1] = False
    logits = LOGITS.clone().requires_grad_(True)
    dist = MaskedCategorical(logits, mask, live=torch.tensor([True, False]))
    assert dist.probs[1].tolist() == [0.0] * 4 and dist.entropy()[1].item() == 0.0
    assert torch.isfinite(dist.log_probs).all()
    (dist.entropy().sum() + dist.log_prob(torch.tensor([0, 1])).sum()).backward()
    assert torch.isfinite(logits.grad).all()


def test_large_logits_do_not_overflow():
    """Normalisation shifts each row by its largest allowed logit."""
    logits = torch.tensor([[80.0, 95.0, -90.0, 30.0]])
    dist = MaskedCategorical(logits, torch.tensor([[True, True, True, False]]))
    assert torch.isfinite(dist.log_probs).all() and dist.probs.sum().item() == pytest.approx(1.0)
    assert dist.log_prob(torch.tensor([1])).item() == pytest.approx(-math.log1p(math.exp(-15.0)), abs=1e-6)


def test_gradients_match_a_float64_reference():
    """The row shift is taken without autograd (log-softmax does not depend on it); log-prob and
    entropy gradients must still equal a plain float64 masked log-softmax's."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 5, generator=gen) * 3
    mask = torch.rand(64, 5, generator=gen) < 0.6
    mask[:, 2] = True
    actions = torch.multinomial(mask.double(), 1, generator=gen).squeeze(1)
    weights = torch.randn(64, generator=gen)

    ours = logits.clone().requires_grad_(True)
    dist = MaskedCategorical(ours, mask)
    ((dist.log_prob(actions) + 0.3 * dist.entropy()) * weights).sum().backward()

    ref = logits.double().clone().requires_grad_(True)
    log_p = torch.where(mask, ref, -1e30).log_softmax(dim=-1)  # masked: p = 0, log p finite
    entropy = -(log_p.exp() * log_p).sum(dim=-1)
    ((log_p.gather(1, actions[:, None]).squeeze(1) + 0.3 * entropy) * weights).sum().backward()

    assert torch.allclose(ours.grad.double(), ref.grad, atol=1e-5)
    assert torch.allclose(dist.entropy().double(), entropy, atol=1e-5)


@pytest.mark.parametrize("allowed", [
    [-1e9, -1e9 + 64, -1e9 - 64],  # below MASKED_LOGIT (float32 spacing 64 there)
    [-1e30, -1e30, -1e30],  # far below, tied
    [-1e9, 2.0, -1e30],  # mixed: one ordinary logit
    [-3e38, -3e38, -3e38],  # about the lowest float32
])
@pytest.mark.parametrize("masked", [0.0, -1e30, 50.0])
def test_any_finite_allowed_logits_give_the_right_distribution(allowed, masked):
    """A diverged policy's allowed logits can fall below MASKED_LOGIT. They used to lose the
    row maximum to a masked action's logit: every probability underflowed to 0 (entropy 0, zero
    gradient, log-probs off by ~1e9) and sampling and the mode picked a masked action."""
    mask = torch.tensor([[True, False, True, False, True]] * 2)
    logits = torch.full((2, 5), masked)
    logits[:, mask[0]] = torch.tensor(allowed)
    logits[1, 1] = -1e8  # a masked logit equal to the fill value
    ours = logits.clone().requires_grad_(True)
    dist = MaskedCategorical(ours, mask)

    ref = logits.double().clone().requires_grad_(True)
    log_p = torch.where(mask, ref, -1e300).log_softmax(dim=-1)  # float64: exact enough at any float32 logit
    p = log_p.exp()
    entropy = -(p * log_p).sum(dim=-1)
    assert torch.allclose(dist.probs.double(), p, atol=1e-6)
    assert torch.allclose(dist.entropy().double(), entropy, atol=1e-5)
    for a in (0, 2, 4):
        got = dist.log_prob(torch.tensor([a, a])).double()
        want = log_p[:, a]
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-5), (a, got, want)
    assert (dist.probs[~mask] == 0).all() and (dist.log_probs[~mask] < -1e7).all()

    actions = torch.tensor([2, 4])
    (dist.log_prob(actions) + 0.3 * dist.entropy()).sum().backward()
    (log_p.gather(1, actions[:, None]).sum() + 0.3 * entropy.sum()).backward()
    assert torch.allclose(ours.grad.double(), ref.grad, atol=1e-5)

    # the mode: the largest allowed logit (ties to the lowest id); never a masked action
    best = max(range(3), key=lambda i: (allowed[i], -i))
    assert dist.mode().tolist() == [(0, 2, 4)[best]] * 2
    # sampling follows the probabilities, even where the noise is far below the logits' spacing
    gen = torch.Generator().manual_seed(0)
    rows = 20_000
    big = MaskedCategorical(logits[:1].repeat(rows, 1), mask[:1].repeat(rows, 1))
    freq = torch.bincount(big.sample(gen), minlength=5).double() / rows
    assert freq.tolist() == pytest.approx(p[0].tolist(), abs=0.015)


def test_a_zero_uniform_draw_on_the_only_allowed_action_still_picks_it():
    """torch.rand can return exactly 0 (-inf Gumbel noise). On a row's only allowed action that
    made every entry -inf, and argmax answered action 0 even when 0 is masked. Elsewhere a zero
    draw must keep its old effect, bit for bit: that action loses to every other allowed one."""
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[False, False, True, False, False], [False, False, False, False, True]])
    u = torch.tensor([[0.5, 0.5, 0.0, 0.5, 0.5], [0.9, 0.9, 0.9, 0.9, 0.0]])
    assert MaskedCategorical(logits, mask).sample_from_uniform(u).tolist() == [2, 4]
    # several allowed actions, confident logits, 30 % zero draws: the plain Gumbel-max answer
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8192, 5, generator=g) * 6
    mask = torch.rand(8192, 5, generator=g) < 0.7
    mask[:, 0] = True
    v = torch.rand(8192, 5, generator=g)
    v[torch.rand(8192, 5, generator=g) < 0.3] = 0.0
    plain = torch.argmax(torch.where(mask, logits - torch.log(-torch.log(v)), -torch.inf), dim=-1)
    several = mask.sum(-1) > (v == 0).logical_and(mask).sum(-1)  # some allowed action drew > 0
    assert several.sum() > 7000
    got = MaskedCategorical(logits, mask).sample_from_uniform(v)
    assert torch.equal(got[several], plain[several])
    assert mask.gather(1, got[:, None]).all()
