"""Step statistics of :class:`~exitcore.env.vec_env.VecExitEnv`, accumulated on the device.

Every step each environment is summarised by one small integer, its *code*: the sampled
action, whether a guard blocked it, and - if its episode ended - the exit reason and whether
the exit bar was ambiguous. Counting codes (one scatter-add per step) gives every count the
trainer logs: actions, blocked actions, exit reasons, episodes, ambiguous exits, decisions.
Three kinds of figure are not counts of a code and are summed directly: blocks per guard,
episode returns and episode lengths.

Why codes: the counts used to be one reduction per counter inside the compiled step, and
inductor's CPU kernels run each reduction as its own pass over the environments (one-hots
recomputed per bin, scatter-adds as atomics); that cost about a fifth of a compiled step.
The code is pointwise and fuses into the step; the count is one cheap eager op. Nothing here
reads a device value back to the host until :meth:`StepStatistics.summary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from exitcore import actions as A
from exitcore.actions import ACTION_NAMES, N_ACTIONS
from exitcore.env.state import EnvState
from exitcore.timeline import EXIT_REASON_NAMES, ExitReason

_N_REASONS = len(ExitReason)
_N_END = 1 + 2 * _N_REASONS  # 0: still running; else 1 + 2 * reason + ambiguous
N_CODES = N_ACTIONS * 2 * _N_END  # (sampled action, blocked, end) of a live decision
DEAD = N_CODES  # the code of a frozen environment in sweep mode (not counted)


def step_codes(sampled: torch.Tensor, after: EnvState, live: torch.Tensor | None) -> torch.Tensor:
    """int64 ``[N]`` code of each environment's step (pure tensor code: runs in the compiled step)."""
    end = torch.where(
        after.done,
        1 + 2 * after.exit_reason + after.ambiguous.to(torch.int64),
        torch.zeros_like(after.exit_reason),
    )
    code = (sampled * 2 + after.blocked.to(torch.int64)) * _N_END + end
    return code if live is None else torch.where(live, code, torch.full_like(code, DEAD))


def step_sums(
    sampled: torch.Tensor,
    after: EnvState,
    episode_return: torch.Tensor,
    blocked_by: list[torch.Tensor],
    live: torch.Tensor | None,
    mask_empty: torch.Tensor,
    empty_alone: Sequence[torch.Tensor] = (),
) -> torch.Tensor:
    """float64 ``[G + 3 + M]``: blocks per guard (of non-HOLD actions), summed return and length
    of the episodes that ended, the next decisions whose masks together allowed nothing
    (``mask_empty``, bool ``[N]``) and, per mask, those it alone allowed nothing at
    (``empty_alone``: one bool ``[N]`` per mask, none with a single mask) (one reduction; runs
    in the compiled step)."""
    ended = after.done if live is None else after.done & live
    acting = sampled != A.HOLD if live is None else (sampled != A.HOLD) & live
    columns = [(b & acting).to(torch.float64) for b in blocked_by]
    columns.append(torch.where(ended, episode_return, torch.zeros_like(episode_return)))
    columns.append(torch.where(ended, after.bars_held, torch.zeros_like(after.bars_held)).to(torch.float64))
    columns.append(mask_empty.to(torch.float64))
    columns.extend(e.to(torch.float64) for e in empty_alone)
    return torch.stack(columns, dim=1).sum(dim=0)


class StepStatistics:
    """Running statistics of one environment since the last :meth:`summary` (on its device)."""

    def __init__(self, guard_names: list[str], device: torch.device, mask_names: Sequence[str] = ()):
        self.guard_names = list(guard_names)
        self.mask_names = list(mask_names)
        self.device = device
        self.counts = torch.zeros(N_CODES + 1, dtype=torch.float64, device=device)  # + DEAD
        # one column per mask only with several: a single mask's count is mask_empty itself
        per_mask = len(self.mask_names) if len(self.mask_names) > 1 else 0
        self.sums = torch.zeros(len(self.guard_names) + 3 + per_mask, dtype=torch.float64, device=device)
        self._ones: torch.Tensor | None = None

    def reserve(self, n: int) -> None:
        """Allocate the per-step buffer for ``n`` envs now (a CUDA graph capture cannot fill it)."""
        if self._ones is None or self._ones.shape != (n,):
            self._ones = torch.ones(n, dtype=torch.float64, device=self.device)

    def add(self, codes: torch.Tensor, sums: torch.Tensor) -> None:
        """Count one step's codes and add its sums (device ops only, no host sync)."""
        self.reserve(codes.shape[0])
        self.counts.index_add_(0, codes, self._ones)
        self.sums += sums

    def reset(self) -> None:
        """Start counting from zero."""
        self.counts.zero_()
        self.sums.zero_()

    def summary(self) -> dict[str, Any]:
        """The statistics as plain numbers (one host copy): episodes, decisions, mean episode
        return and length, fractions of the actions executed (a blocked one as HOLD; the trainer
        logs the sampled ones as ``sampled_frac``), blocked rates per action (NaN for an action
        never sampled) and in total (of all decisions; NaN without any), blocks per guard,
        exit-reason fractions, ambiguous exits, ``mask_empty``: decisions at which the action
        masks together allowed no action, so only HOLD could be taken (a mask bug that the first
        step's per-mask check did not see), and ``mask_empty_by``: per mask, the decisions at
        which that mask alone allowed no action (all zero while only the combination does)."""
        c = self.counts.cpu()[:N_CODES].reshape(N_ACTIONS, 2, _N_END)
        sums = self.sums.cpu()
        sampled = c.sum(dim=(1, 2))
        blocked = c[:, 1].sum(dim=1)
        executed = sampled - blocked  # a blocked action is executed as HOLD
        executed[A.HOLD] += blocked.sum()
        ends = c.sum(dim=(0, 1))[1:].reshape(_N_REASONS, 2)  # [reason, ambiguous]
        decisions = float(c.sum())
        episodes = float(ends.sum())
        g = len(self.guard_names)
        return {
            "episodes": int(episodes),
            "decisions": int(decisions),
            "ep_return_mean": float(sums[g]) / episodes if episodes else float("nan"),
            "ep_length_mean": float(sums[g + 1]) / episodes if episodes else float("nan"),
            "action_frac": {n: float(executed[i]) / decisions if decisions else 0.0 for i, n in enumerate(ACTION_NAMES)},
            # NaN where nothing was tried (0 blocked of 0), as evaluation's blocked_rates(): a
            # never-sampled action has no blocked rate, and 0.0 would read as "never blocked"
            "blocked_rate": {
                n: float(blocked[i]) / float(sampled[i]) if float(sampled[i]) else math.nan
                for i, n in enumerate(ACTION_NAMES)
                if i != A.HOLD
            },
            "blocked_total_rate": float(blocked.sum()) / decisions if decisions else math.nan,
            "guard_blocks": {name: int(sums[i]) for i, name in enumerate(self.guard_names)},
            "exit_reasons": {
                EXIT_REASON_NAMES[r]: float(ends[r].sum()) / episodes if episodes else 0.0 for r in range(1, _N_REASONS)
            },
            "ambiguous_exits": int(ends[:, 1].sum()),
            "mask_empty": int(sums[g + 2]),
            "mask_empty_by": {name: int(sums[g + 3 + i] if len(self.mask_names) > 1 else sums[g + 2])
                              for i, name in enumerate(self.mask_names)},
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The running counts and sums (for checkpoints)."""
        return {"counts": self.counts.clone(), "sums": self.sums.clone()}

    def load_state_dict(self, data: Any) -> None:
        """Restore :meth:`state_dict`; statistics of another layout (an older checkpoint) restart at zero."""
        if isinstance(data, dict) and data["counts"].shape == self.counts.shape and data["sums"].shape == self.sums.shape:
            self.counts = data["counts"].to(self.device)
            self.sums = data["sums"].to(self.device)
        else:
            self.reset()
