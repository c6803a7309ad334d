"""The masked categorical distribution the policy samples from (design.md §5).

A masked action has probability exactly 0 and a log-probability of about :data:`MASKED_LOGIT`,
a large negative *finite* number, so no ``0 * -inf`` NaN can appear in the entropy or in
gradients. The entropy sums over allowed actions only. Finite masked logits never take part in
the arithmetic of allowed ones: the normalisation is shifted by the largest *allowed* logit,
and sampling and the mode compare allowed logits against ``-inf``. (A policy that emits
``-inf`` itself gets NaN probabilities: ``-inf * 0`` is NaN.) So any finite allowed logits give
the right distribution, even below :data:`MASKED_LOGIT` (a diverged policy's -1e9 or -1e30:
with a ``MASKED_LOGIT`` fill they were indistinguishable from masked actions, and sampling
picked a masked action while the probabilities were all 0).
The mask that sampled an action is stored in the rollout and passed again when PPO recomputes
the log-probability, so the ratio compares two policies under the *same* mask.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: logit given to masked actions (the value sb3-contrib uses too): exp() underflows to 0 in float32
MASKED_LOGIT = -1e8
#: a row whose largest allowed logit is further from 0 is sampled from logits shifted to bring it
#: to this magnitude: float32 Gumbel noise (-2.8 to 17) added to a logit of 1e9 (spacing 64) is
#: rounded away, at 1e4 (spacing 0.001) it is not
_SAMPLE_SHIFT_ABOVE = 1e4


def masked_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """``logits`` [B, A] with every action where ``mask`` [B, A] (bool, True = allowed) is False
    set to :data:`MASKED_LOGIT`."""
    return torch.where(mask, logits, MASKED_LOGIT)


class MaskedCategorical:
    """A categorical distribution over ``A`` actions with some actions forbidden per row.

    ``logits`` [B, A] float, ``mask`` [B, A] bool (True = allowed). With ``validate`` (the
    default) every row that is ``live`` (``live`` [B] bool, default: all rows) must allow at
    least one action, else :class:`ValueError` names the first offending row; this reads one
    value back to the host, so the trainer's rollout passes ``validate=False`` and checks the
    stored masks once per update instead. Rows that are not live (finished environments in an
    evaluation batch) may have an empty mask; their samples are meaningless and must be ignored.
    """

    def __init__(self, logits: Tensor, mask: Tensor, *, validate: bool = True, live: Tensor | None = None):
        if validate:
            empty = ~mask.any(dim=-1)
            if live is not None:
                empty = empty & live
            if bool(empty.any()):
                row = int(empty.nonzero()[0, 0])
                raise ValueError(f"action mask row {row} allows no action (every live row needs at least one)")
        self.mask, self._raw_logits = mask, logits
        # Normalise over the allowed actions without ever exponentiating a masked logit: on x86
        # CPUs exp() of a value whose result underflows (-1e8, or anything below ~-87 in float32)
        # takes a slow path, 30-100x slower than a normal exp. Masked entries are zeroed by
        # multiplying with the 0/1 mask (cheaper than where(), forward and backward, on a
        # 5-wide last dimension). Each row is shifted by its largest allowed logit, so `total`
        # is >= 1 for every row with an allowed action. The shift is a constant for the
        # gradient (log-softmax does not depend on it), so it is taken without autograd: its
        # backward (an argmax scatter) would cost as much as the rest. Masked logits are
        # replaced by the lowest float for the maximum, so they cannot win it whatever the
        # allowed logits are (subtracting 1e8 from them did not: allowed logits below about
        # -1e8 then lost to a masked one and underflowed to probability 0); allowed ones are
        # kept exactly (+ -0.0). Arithmetic with `keep` rather than where(): where() on a bool
        # mask made the [8192, 5] forward+backward 2-3 % slower. An empty row (finished
        # environments in evaluation) is shifted by that lowest float, and the clamp below
        # gives it probability 0 everywhere, not NaN.
        keep = mask.to(logits.dtype)
        with torch.no_grad():
            top = (logits * keep + (1.0 - keep) * torch.finfo(logits.dtype).min).amax(dim=-1, keepdim=True)
        self._top = top
        self._keep = keep
        self._shifted = (logits - top) * keep  # [B, A]: <= 0 where allowed, 0 where masked
        self._unnormalised = self._shifted.exp() * keep
        self._total = self._unnormalised.sum(dim=-1).clamp_min(1.0)  # [B]
        self._log_total = self._total.log()

    @property
    def logits(self) -> Tensor:
        """[B, A] the logits with every masked action set to :data:`MASKED_LOGIT`."""
        return masked_logits(self._raw_logits, self.mask)

    @property
    def probs(self) -> Tensor:
        """[B, A] probabilities; exactly 0 for masked actions."""
        return self._unnormalised / self._total.unsqueeze(-1)

    @property
    def log_probs(self) -> Tensor:
        """[B, A] log-probabilities over the allowed actions; about :data:`MASKED_LOGIT` where masked."""
        return self._shifted - self._log_total.unsqueeze(-1) + (1.0 - self._keep) * MASKED_LOGIT

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """[B] int64 actions drawn with the Gumbel-max trick: ``argmax(logits + Gumbel noise)``
        over the allowed actions (masked ones count as ``-inf``).

        One uniform draw per action from ``generator`` (or torch's global generator), so the
        sample is reproducible from the generator's state.
        """
        logits = self._raw_logits
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        return self.sample_from_uniform(u)

    def sample_from_uniform(self, u: Tensor) -> Tensor:
        """[B] int64 actions by Gumbel-max from ``u`` [B, A], uniform on [0, 1): what
        :meth:`sample` does with noise drawn elsewhere (a CUDA graph replays this part)."""
        gumbel = -torch.log(-torch.log(u))  # u == 0 (1 draw in 2^24) gives -inf noise
        # A row whose largest allowed logit is far from 0 (only after divergence) is shifted to
        # bring it to +-_SAMPLE_SHIFT_ABOVE, else the noise would be rounded away (ties would
        # always go to the first action); other rows subtract exactly 0, so their samples are
        # those of the plain logits, bit for bit (two ops on [B, 1]: cheaper than a where()).
        top = self._top
        shift = top - top.clamp(-_SAMPLE_SHIFT_ABOVE, _SAMPLE_SHIFT_ABOVE)
        # An allowed action whose draw was 0 scores the lowest finite float: it still loses to
        # every other allowed action, as with its -inf noise, but beats the masked ones (-inf),
        # so a row's only allowed action is chosen whatever its draw (all -inf, argmax would
        # answer action 0, allowed or not). NaN still propagates, for the finite checks.
        score = (self._raw_logits - shift + gumbel).clamp_min(torch.finfo(u.dtype).min)
        return torch.argmax(torch.where(self.mask, score, -torch.inf), dim=-1)

    def mode(self) -> Tensor:
        """[B] int64: the most probable allowed action (ties go to the lowest action id)."""
        return torch.argmax(torch.where(self.mask, self._raw_logits, -torch.inf), dim=-1)

    def log_prob(self, action: Tensor) -> Tensor:
        """[B] log-probability of ``action`` [B] int64 under the masked distribution
        (about :data:`MASKED_LOGIT` for a masked action)."""
        index = action.unsqueeze(-1)
        allowed = self._keep.gather(-1, index).squeeze(-1)
        picked = self._shifted.gather(-1, index).squeeze(-1)
        return picked - self._log_total + (1.0 - allowed) * MASKED_LOGIT

    def entropy(self) -> Tensor:
        """[B] entropy over the allowed actions; masked actions contribute exactly 0.

        ``-sum p log p`` with ``p = u / total`` and ``log p = shifted - log total`` is
        ``log total - sum(u * shifted) / total`` (the probabilities sum to 1); an empty row gives 0.
        """
        return self._log_total - (self._unnormalised * self._shifted).sum(dim=-1) / self._total


@torch.no_grad()
def act(policy: torch.nn.Module, obs: Tensor, mask: Tensor, deterministic: bool = True,
        generator: torch.Generator | None = None, live: Tensor | None = None) -> Tensor:
    """[B] actions of ``policy`` for ``obs`` [B, obs_dim] under ``mask`` [B, A] (evaluation).

    ``deterministic`` takes the most probable allowed action; otherwise one is sampled from
    ``generator``. ``live`` [B] bool exempts finished rows from the non-empty-mask check.
    """
    logits, _value = policy(obs)
    dist = MaskedCategorical(logits, mask, live=live)
    return dist.mode() if deterministic else dist.sample(generator)
