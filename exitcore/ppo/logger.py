"""Per-update training logs: JSON lines, optional TensorBoard, and progress on stderr (a bar on a
terminal, plain lines in a log file or a pipe)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import click

from exitcore.atomic import write_text_atomic
from exitcore.evaluation.rundir import TRAIN_LOG_FILE

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
    the global step the checkpoint holds.

    Progress goes to stderr: ``progress=None`` shows a bar (steps, ETA) when stderr is a TTY and
    nothing otherwise (libraries and tests stay quiet); ``True`` shows the bar on a TTY and, when
    stderr is a file or a pipe, a plain line (:class:`ProgressLines`) every
    ``ProgressLines.every_s`` seconds or tenth of the run; ``False`` shows nothing.
    """

    def __init__(self, run_dir: Path | None, total_steps: int, start_step: int = 0,
                 progress: bool | None = None, resume_update: int | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._file = None
        self._tb = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            path = self.run_dir / TRAIN_LOG_FILE
            if resume_update is not None and path.exists():
                _truncate_after(path, resume_update)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            # On resume, events logged after the checkpoint (steps > start_step) are hidden, as the
            # JSON lines are truncated: the replayed updates log them again.
            self._tb = _tensorboard_writer(self.run_dir / TB_DIR,
                                           purge_step=start_step + 1 if resume_update is not None else None)
        # a dumb terminal (TERM=dumb: an editor's shell, some CI consoles) cannot redraw a bar
        terminal = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        if progress is None:
            progress = terminal
        self._bar = None
        self._lines = ProgressLines(total_steps, start_step) if progress and not terminal else None
        if progress and terminal:
            # A resumed run's bar covers the steps still to train: click's ETA is the time so far
            # over the bar's position, and the steps before the resume took none of this time.
            label = f"training (resumed at {100 * start_step // max(total_steps, 1)} %)" if start_step else "training"
            self._bar = click.progressbar(length=max(total_steps - start_step, 1), label=label, show_eta=True,
                                          show_percent=True, file=sys.stderr, item_show_func=lambda s: s)
            self._bar.__enter__()

    def log(self, metrics: dict[str, Any]) -> None:
        """Record one update's ``metrics`` (flat, numeric or string values)."""
        if self._file is not None:
            self._file.write(json.dumps({k: _json_value(v) for k, v in metrics.items()}) + "\n")
            self._file.flush()
            # on disk before the update's checkpoint is: a checkpoint past the log's last record
            # is then never this run's own (checked on resume, last_logged_update)
            os.fsync(self._file.fileno())
        if self._tb is not None:
            step = int(metrics["global_step"])
            for key, value in metrics.items():
                # NaN means "no value this update" (a blocked rate of an action never sampled, the
                # mean return of no episode): no point, rather than one that breaks the chart's
                # line and scale. Infinities are kept: they mean something went wrong.
                if (isinstance(value, (int, float)) and not isinstance(value, bool) and key != "global_step"
                        and not math.isnan(value)):
                    self._tb.add_scalar(key, value, step)
        ret = metrics.get("ep_return_mean")
        # the mean summed reward of the episodes (trades) the update finished, as train_log.jsonl has it
        shown = f"mean episode return {ret:.4g}" if isinstance(ret, (int, float)) else None
        if self._bar is not None:
            self._bar.update(int(metrics["steps"]), shown)
        if self._lines is not None:
            self._lines.update(int(metrics.get("update", 0)), int(metrics["steps"]), shown)

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


class ProgressLines:
    """Training progress as plain lines on stderr, for a log file or a pipe where a bar cannot
    redraw: ``training: update 12, 98,304 / 524,288 steps (19 %), 1,234 steps/s, ETA 5:45,
    return 0.12``, at most every ``every_s`` seconds, and at each tenth of the run."""

    every_s = 30.0

    def __init__(self, total_steps: int, start_step: int = 0, clock: Any = None):
        import time

        self.total, self.done, self.start = max(int(total_steps), 1), int(start_step), int(start_step)
        self._clock = clock or time.monotonic
        self._t0 = self._last = self._clock()
        self._tenth = self.done * 10 // self.total

    def update(self, update: int, steps: int, shown: str | None = None) -> None:
        """Count ``steps`` more (update ``update``); print a line when one is due."""
        self.done += steps
        now, tenth = self._clock(), self.done * 10 // self.total
        if now - self._last < self.every_s and tenth == self._tenth:
            return
        self._last, self._tenth = now, tenth
        rate = (self.done - self.start) / max(now - self._t0, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 and self.done < self.total else 0.0
        parts = [f"update {update:,}", f"{self.done:,} / {self.total:,} steps ({100 * self.done // self.total} %)",
                 f"{rate:,.0f} steps/s", f"ETA {_clock_time(eta)}"]
        click.echo("training: " + ", ".join(parts + ([shown] if shown else [])), err=True)


def _clock_time(seconds: float) -> str:
    """``5:45``, or ``2:05:30`` from an hour on (as the terminal bar's ETA reads)."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _tensorboard_writer(directory: Path, purge_step: int | None = None) -> Any:
    try:
        import tensorboard  # noqa: F401 - only to know whether it is installed
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(directory), purge_step=purge_step)


def last_logged_update(run_dir: Path) -> int | None:
    """The last update recorded in ``run_dir``'s training log (None: no log, or no record)."""
    try:
        updates = [update for update, _ in _records(Path(run_dir) / TRAIN_LOG_FILE)]
    except OSError:
        return None
    return updates[-1] if updates else None


def _records(path: Path) -> list[tuple[int, str]]:
    """``(update, line)`` of every readable record of a training log (a torn last line from a
    killed run, or any line without an update number, is left out)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append((int(json.loads(line)["update"]), line))
            except (ValueError, KeyError, TypeError):
                continue
    return records


def _truncate_after(path: Path, update: int) -> None:
    """Keep only the records with ``update <= update`` (written atomically)."""
    write_text_atomic(path, "".join(line for n, line in _records(path) if n <= update))
