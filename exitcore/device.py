"""Choosing the torch device a run trains on (``--device auto|cpu|cuda``)."""

from __future__ import annotations

import re
from typing import Any

from exitcore.errors import ExitcoreError

#: what ``--device`` and ``ppo.device`` accept: a choice, or one GPU by index
DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?"
DEVICE_WORDS = "auto, cpu, cuda or cuda:N"


def select_device(name: str = "auto") -> Any:
    """The :class:`torch.device` for ``name``: ``"auto"`` (CUDA when available, else CPU),
    ``"cpu"`` or ``"cuda"`` (also ``"cuda:N"``).

    Asking for CUDA on a machine without it is a user error, raised as :class:`ExitcoreError`
    with the reason (a CPU-only torch build, or no visible GPU), never a silent CPU fallback.
    ``"cuda:N"`` also makes GPU N the process's current CUDA device (``torch.cuda.set_device``),
    so that streams, graph captures and tensors made without a device land there too: a caller
    that uses another GPU afterwards in the same process names it explicitly.
    """
    import torch

    if not re.fullmatch(DEVICE_PATTERN, name):
        raise ExitcoreError(f"unknown device {name!r}: expected {DEVICE_WORDS}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    # "cuda" or "cuda:N"
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            why = f"this torch ({torch.__version__}) is a CPU-only build"
        else:
            why = f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
        raise ExitcoreError(f"device {name!r} was requested (--device, ppo.device) but CUDA is not available: {why}; "
                            "use cpu or auto")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ExitcoreError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    if device.index is not None:
        # streams, CUDA graph captures and new tensors without a device then land on that GPU too
        torch.cuda.set_device(device)
    return device
