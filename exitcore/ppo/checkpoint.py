"""Training checkpoints: written atomically, validated when read.

A checkpoint is one ``torch.save`` file holding a dict (see :data:`REQUIRED_KEYS`). Writing goes
to a temporary file in the same directory, is flushed and fsynced, then moved over the target
with ``os.replace`` (atomic on POSIX and Windows) and the directory is fsynced: a crash or kill
at any moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from exitcore.atomic import atomic_path
from exitcore.errors import CheckpointError

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT = "exitcore.ppo.checkpoint"
VERSION = 1
#: keys every checkpoint holds
REQUIRED_KEYS = (
    "format", "version", "model", "optimizer", "global_step", "update", "schedules", "rng",
    "generator", "env", "next_obs", "next_mask", "ppo", "obs_dim", "n_actions", "n_envs", "device",
)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically and durably; returns the path.

    ``state`` must hold :data:`REQUIRED_KEYS` minus ``format``/``version`` (added here).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint state lacks {', '.join(missing)}")
    # Never a half-written file: the previous checkpoint stays until the new one is complete.
    # Serialised in memory, then written by Python: torch's own writer reports a full disk as a
    # RuntimeError ("unexpected pos"), which reads as a bug; Python's write raises the OSError
    # (ENOSPC, EFBIG) that tells the run to stop as interrupted, resumable.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(buffer.getbuffer())
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Loads with ``weights_only=True`` (tensors and plain data only, no arbitrary code) and
    raises :class:`CheckpointError` naming the file when it is missing, unreadable, not an
    exitcore PPO checkpoint, of another format version, or lacks a required key.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty (exitcore writes checkpoints atomically, "
                              "so it was emptied after it was written)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file is a user-facing problem
        raise CheckpointError(f"{path}: cannot be read as a checkpoint: it is damaged, truncated or not a checkpoint "
                              f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an exitcore PPO checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {state.get('version')!r}, this exitcore reads {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state
