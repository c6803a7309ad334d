"""Training checkpoints: written atomically, validated when read.

A checkpoint is one ``torch.save`` file holding a dict (see :data:`REQUIRED_KEYS`). Writing goes
to a temporary file in the same directory, is flushed and fsynced, then moved over the target
with ``os.replace`` (atomic on POSIX and Windows) and the directory is fsynced: a crash or kill
at any moment leaves either the previous checkpoint or the new one, never a torn file. A
checksum of the contents (:data:`DIGEST_KEY`) is written with them and checked when read: a bit
flipped on disk or in a copy would otherwise load as slightly different weights (a resume that
silently diverges from the run) or as NaN (a run that fails for good).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
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
#: sha256 of every other key's contents (:func:`contents_digest`); checkpoints written before it
#: existed have none and are read unchecked
DIGEST_KEY = "sha256"


def contents_digest(state: dict[str, Any]) -> str:
    """sha256 over a canonical walk of ``state`` without :data:`DIGEST_KEY`: tensors and arrays
    by dtype, shape and bytes (wherever they live), containers in order, anything else by
    ``repr``; the same before ``torch.save`` and after ``torch.load``."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != DIGEST_KEY})
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"A{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[" if isinstance(obj, list) else b"(")
        for value in obj:
            _feed(h, value)
        h.update(b"]")
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


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
    payload[DIGEST_KEY] = contents_digest(payload)
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
                              f"({_load_failure(exc)})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an exitcore PPO checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {state.get('version')!r}, this exitcore reads {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if DIGEST_KEY in state and state[DIGEST_KEY] != contents_digest(state):
        raise CheckpointError(f"{path}: damaged: its contents no longer match the checksum written with them (a disk "
                              "or copy error changed it after it was written); put back an intact copy, or start a new run")
    return state


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load`` failed, in a few words: not torch's advice to load with
    ``weights_only=False``, which would run whatever code a foreign file holds."""
    text = str(exc)
    if "weights_only" in text or "Weights only load failed" in text:
        return f"{type(exc).__name__}: it holds objects other than tensors and plain data, which exitcore does not load"
    first = text.splitlines()[0] if text else "no details"
    if len(first) > 200:  # at a word, marked as cut: not a sentence that ends mid-way as if whole
        first = first[:200].rsplit(" ", 1)[0] + " ..."
    return f"{type(exc).__name__}: {first}"
