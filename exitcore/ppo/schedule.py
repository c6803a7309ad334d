"""Entropy-coefficient and learning-rate schedules, driven by the global step.

A schedule is a pure function of its *position* (environment steps consumed when an update
starts), so saving the position in a checkpoint is all it takes to resume it exactly.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class LinearSchedule:
    """``start`` at position 0, linearly to ``end`` at position ``steps``, then ``end``.

    ``steps == 0`` means no annealing: the value is ``end`` from the start.
    """

    start: float
    end: float
    steps: int

    def __call__(self, position: int) -> float:
        if self.steps <= 0 or position >= self.steps:
            return self.end
        return self.start + (position / self.steps) * (self.end - self.start)


class Schedules:
    """The trainer's schedules and their position.

    ``entropy_coef``: ``entropy_coef_start -> entropy_coef_end`` over ``entropy_anneal_steps``.
    ``learning_rate``: constant, or with ``anneal_lr`` linearly to 0 over ``total_timesteps``
    (the last update still gets a small positive rate, as in CleanRL).
    """

    def __init__(self, ppo: Any, total_timesteps: int):
        self.entropy_coef = LinearSchedule(ppo.entropy_coef_start, ppo.entropy_coef_end, ppo.entropy_anneal_steps)
        lr_end = 0.0 if ppo.anneal_lr else ppo.learning_rate
        self.learning_rate = LinearSchedule(ppo.learning_rate, lr_end, total_timesteps)
        self.position = 0

    def advance(self, steps: int) -> None:
        """Move the position by ``steps`` environment steps (once per update)."""
        self.position += steps

    def values(self) -> dict[str, float]:
        """The current ``entropy_coef`` and ``learning_rate``."""
        return {"entropy_coef": self.entropy_coef(self.position), "learning_rate": self.learning_rate(self.position)}

    def state_dict(self) -> dict[str, Any]:
        """Position and parameters (the parameters are informative: they come from the config)."""
        return {
            "position": self.position,
            "entropy_coef": attrs.asdict(self.entropy_coef),
            "learning_rate": attrs.asdict(self.learning_rate),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the position; the schedules themselves follow the (possibly new) config."""
        self.position = int(state["position"])
