"""exitcore action masks (the research log's v4).

A mask removes actions *before* sampling (their logits are set to a large negative value), so
the policy never chooses them and nothing is blocked afterwards.

* ``min_exit_bar`` - EXIT and PARTIAL_EXIT are masked at decisions ``k < n``; TIGHTEN_SL and
  TRAIL_BE stay allowed (risk management that does not close the position).
"""

from __future__ import annotations

import attrs

from exitcore import hookimpl
from exitcore.params import non_negative_int


@attrs.frozen
class MinExitBarParams:
    """``n``: the first decision index at which EXIT and PARTIAL_EXIT are allowed."""

    n: int = attrs.field(default=3, validator=non_negative_int)


def _min_exit_bar(params, ctx):
    import torch

    from exitcore.actions import CLOSING_ACTIONS, N_ACTIONS

    closing = torch.zeros(N_ACTIONS, dtype=torch.bool, device=ctx.device)
    closing[list(CLOSING_ACTIONS)] = True
    n = params.n

    def mask(state):
        too_early = (state.k < n)[:, None]  # [N, 1]
        return ~(too_early & closing[None, :])

    return mask


@hookimpl
def register_action_masks(register):
    """Register the shipped action masks."""
    register("min_exit_bar", _min_exit_bar, params=MinExitBarParams,
             description="mask EXIT and PARTIAL_EXIT before decision n")
