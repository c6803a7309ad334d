"""The PPO loss: named terms by hand, and the mask that sampled is the mask that is reused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from exitcore.ppo.buffer import Minibatch
from exitcore.ppo.distribution import MaskedCategorical
from exitcore.ppo.loss import ppo_loss


class Table(nn.Module):
    """A policy whose logits and values are free parameters (one row per sample)."""

    def __init__(self, logits, values):
        super().__init__()
        self.logits = nn.Parameter(logits.clone())
        self.values = nn.Parameter(values.clone())

    def forward(self, obs):
        idx = obs[:, 0].long()
        return self.logits[idx], self.values[idx]


def _batch(policy, masks, actions, advantages, returns, old_values=None):
    with torch.no_grad():
        obs = torch.arange(masks.shape[0], dtype=torch.float32)[:, None]
        logits, values = policy(obs)
        logprobs = MaskedCategorical(logits, masks).log_prob(actions)
    return Minibatch(obs, masks, actions, logprobs, values if old_values is None else old_values, advantages, returns)


def test_stored_mask_is_used_when_the_ratio_is_recomputed():
    torch.manual_seed(0)
    policy = Table(torch.randn(6, 5), torch.zeros(6))
    sampling_mask = torch.rand(6, 5) < 0.5
    sampling_mask[:, 0] = True
    actions = torch.zeros(6, dtype=torch.int64)
    mb = _batch(policy, sampling_mask, actions, torch.randn(6), torch.randn(6))
    kw = dict(clip_coef=0.2, clip_vf=0.2, vf_coef=0.5, ent_coef=0.01)
    out = ppo_loss(policy, mb, **kw)
    # unchanged policy + the mask that sampled -> ratio exactly 1
    assert out.approx_kl.item() == 0.0 and out.clipfrac.item() == 0.0
    # recomputing under another mask (all allowed) would change the ratio
    other = ppo_loss(policy, mb._replace(masks=torch.ones_like(sampling_mask)), **kw)
    assert other.approx_kl.item() > 1e-4


def test_loss_terms_match_hand_computation():
    # two samples, two actions, all allowed; the new policy differs from the sampling one
    old = Table(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
    masks = torch.ones(2, 2, dtype=torch.bool)
    actions = torch.tensor([0, 1])
    mb = _batch(old, masks, actions, advantages=torch.tensor([1.0, -1.0]), returns=torch.tensor([1.0, 0.0]))
    new = Table(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([0.5, 2.0]))
    out = ppo_loss(new, mb, clip_coef=0.2, clip_vf=0.2, vf_coef=0.5, ent_coef=0.1, norm_adv=False)

    p0 = torch.sigmoid(torch.tensor(1.0)).item()  # new prob of action 0 in row 0
    r0, r1 = p0 / 0.5, 1.0  # ratios
    # row 0: adv 1, ratio 1.462 -> clipped at 1.2 is the pessimistic term: -1.2; row 1: -(-1)*1 = 1
    assert r0 > 1.2
    assert out.loss_policy.item() == pytest.approx((-1.2 + 1.0) / 2, abs=1e-6)
    # value: row 0 new 0.5, old 0, clipped to 0.2; losses max((0.5-1)^2, (0.2-1)^2) = 0.64
    #        row 1 new 2.0, old 1, clipped to 1.2; max((2-0)^2, (1.2-0)^2) = 4
    assert out.loss_value.item() == pytest.approx(0.5 * (0.64 + 4.0) / 2, abs=1e-6)
    h0 = -(p0 * torch.log(torch.tensor(p0)) + (1 - p0) * torch.log(torch.tensor(1 - p0))).item()
    h1 = torch.log(torch.tensor(2.0)).item()
    assert out.entropy.item() == pytest.approx((h0 + h1) / 2, abs=1e-6)
    assert out.loss_entropy.item() == pytest.approx(-(h0 + h1) / 2, abs=1e-6)
    assert out.loss.item() == pytest.approx(out.loss_policy.item() + 0.5 * out.loss_value.item() - 0.1 * out.entropy.item(), abs=1e-6)
    assert out.clipfrac.item() == pytest.approx(0.5)
    # without value clipping the plain squared error is used
    plain = ppo_loss(new, mb, clip_coef=0.2, clip_vf=0.0, vf_coef=0.5, ent_coef=0.1, norm_adv=False)
    assert plain.loss_value.item() == pytest.approx(0.5 * (0.25 + 4.0) / 2, abs=1e-6)
