"""The PPO loss on one minibatch: named terms plus diagnostics."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from exitcore.ppo.buffer import Minibatch
from exitcore.ppo.distribution import MaskedCategorical


class PPOLoss(NamedTuple):
    """What :func:`ppo_loss` returns; every field is a 0-d tensor on the training device.

    ``loss = loss_policy + vf_coef * loss_value + ent_coef * loss_entropy`` with
    ``loss_entropy = -entropy`` (so a positive coefficient rewards exploration).
    """

    loss: Tensor
    loss_policy: Tensor
    loss_value: Tensor
    loss_entropy: Tensor
    entropy: Tensor
    approx_kl: Tensor
    clipfrac: Tensor


def normalise_advantages(advantages: Tensor) -> Tensor:
    """``advantages`` [B] shifted to mean 0 and scaled to standard deviation 1 (per minibatch)."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def ppo_loss(policy: nn.Module, mb: Minibatch, *, clip_coef: float, clip_vf: float, vf_coef: float,
             ent_coef: float, norm_adv: bool = True) -> PPOLoss:
    """Clipped-surrogate PPO loss with a clipped value loss and a masked entropy bonus.

    ``clip_vf == 0`` disables value clipping. Advantages are normalised over ``mb`` when
    ``norm_adv`` (pass ``False`` for a micro-batch whose minibatch was normalised already).
    Every term is a mean over ``mb``. ``approx_kl`` is the low-variance estimator ``E[(r - 1) - log r]``;
    ``clipfrac`` the fraction of samples whose ratio left ``[1 - clip, 1 + clip]``.
    """
    logits, value = policy(mb.obs)
    logits, value = logits.float(), value.float()  # the loss is float32 even under bf16 autocast
    # Recompute the log-prob under the mask that sampled the action, never the current one.
    dist = MaskedCategorical(logits, mb.masks, validate=False)
    logratio = dist.log_prob(mb.actions) - mb.logprobs
    ratio = logratio.exp()

    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1).abs() > clip_coef).float().mean()

    advantages = normalise_advantages(mb.advantages) if norm_adv else mb.advantages

    # Clipped surrogate: the pessimistic (larger) of the two losses.
    pg_loss_unclipped = -advantages * ratio
    pg_loss_clipped = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    loss_policy = torch.max(pg_loss_unclipped, pg_loss_clipped).mean()

    # Value loss, clipped around the value predicted at sampling time.
    v_loss_unclipped = (value - mb.returns) ** 2
    if clip_vf > 0:
        v_clipped = mb.values + torch.clamp(value - mb.values, -clip_vf, clip_vf)
        loss_value = 0.5 * torch.max(v_loss_unclipped, (v_clipped - mb.returns) ** 2).mean()
    else:
        loss_value = 0.5 * v_loss_unclipped.mean()

    entropy = dist.entropy().mean()
    loss_entropy = -entropy
    loss = loss_policy + vf_coef * loss_value + ent_coef * loss_entropy
    return PPOLoss(loss, loss_policy, loss_value, loss_entropy, entropy.detach(), approx_kl, clipfrac)
