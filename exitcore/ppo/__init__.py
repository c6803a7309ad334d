"""Masked PPO: distribution, policy, rollout buffer, GAE, loss, schedules, checkpoints, trainer.

The public entry points are re-exported here; importing this package imports torch.
"""

from exitcore.ppo.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from exitcore.ppo.distribution import MASKED_LOGIT, MaskedCategorical, act, masked_logits
from exitcore.ppo.gae import compute_gae
from exitcore.ppo.policy import MLPActorCritic, build_policy
from exitcore.ppo.rng import seed_everything
from exitcore.ppo.trainer import CHECKPOINT_FILE, PPOTrainer, TrainingDiverged, TrainResult

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "MASKED_LOGIT",
    "MLPActorCritic",
    "MaskedCategorical",
    "PPOTrainer",
    "TrainResult",
    "TrainingDiverged",
    "act",
    "build_policy",
    "compute_gae",
    "load_checkpoint",
    "masked_logits",
    "save_checkpoint",
    "seed_everything",
]
