"""Per-update training logs: JSON lines, optional TensorBoard, and a terminal progress bar."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from exitcore.atomic import write_text_atomic
from exitcore.evaluation.rundir import TRAIN_LOG_FILE

LOG_FILE = TRAIN_LOG_FILE  # the run directory's layout is defined in one place
TB_DIR = "tensorboard"


def flatten_metrics(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become ``outer/inner`` keys (how TensorBoard groups tags)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name + "/"))
        else:
            out[name] = value
    return out


def _json_value(value: Any) -> Any:
    # JSON has no NaN/Inf; write them as strings rather than produce an invalid line.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class TrainLogger:
    """Writes one record per update to ``run_dir/train_log.jsonl`` and to TensorBoard.

    TensorBoard (``run_dir/tensorboard``) is used when the ``tensorboard`` package is installed;
    without it the JSON lines are the log. ``resume_update`` drops records of updates after it
    (they were not in the checkpoint and will be produced again) from both; ``start_step`` is
    the global step the checkpoint holds. The progress bar shows
    steps with an ETA on stderr: ``progress=None`` shows it only when stderr is a TTY, ``False``
    never; ``True`` uses click's bar anyway, which prints just its label when not on a TTY.
    """

    def __init__(self, run_dir: Path | None, total_steps: int, start_step: int = 0,
                 progress: bool | None = None, resume_update: int | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._file = None
        self._tb = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path = self.run_dir / LOG_FILE
            if resume_update is not None and path.exists():
                _truncate_after(path, resume_update)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            # On resume, events logged after the checkpoint (steps > start_step) are hidden, as the
            # JSON lines are truncated: the replayed updates log them again.
            self._tb = _tensorboard_writer(self.run_dir / TB_DIR,
                                           purge_step=start_step + 1 if resume_update is not None else None)
        if progress is None:
            progress = sys.stderr.isatty()
        self._bar = None
        if progress:
            self._bar = click.progressbar(length=total_steps, label="training", show_eta=True, show_percent=True,
                                          file=sys.stderr, item_show_func=lambda s: s)
            self._bar.__enter__()
            self._bar.update(start_step)

    def log(self, metrics: dict[str, Any]) -> None:
        """Record one update's ``metrics`` (flat, numeric or string values)."""
        if self._file is not None:
            self._file.write(json.dumps({k: _json_value(v) for k, v in metrics.items()}) + "\n")
            self._file.flush()
        if self._tb is not None:
            step = int(metrics["global_step"])
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "global_step":
                    self._tb.add_scalar(key, value, step)
        if self._bar is not None:
            ret = metrics.get("ep_return_mean")
            shown = f"return {ret:.4g}" if isinstance(ret, (int, float)) else None
            self._bar.update(int(metrics["steps"]), shown)

    def close(self) -> None:
        """Flush and close everything (idempotent)."""
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _tensorboard_writer(directory: Path, purge_step: int | None = None) -> Any:
    try:
        import tensorboard  # noqa: F401 - only to know whether it is installed
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(directory), purge_step=purge_step)


def _truncate_after(path: Path, update: int) -> None:
    """Keep only the records with ``update <= update`` (written atomically)."""
    kept = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                if int(json.loads(line)["update"]) <= update:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from a killed run
    write_text_atomic(path, "".join(kept))
