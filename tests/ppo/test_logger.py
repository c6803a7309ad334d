"""The training log: JSON lines, the progress bar, and TensorBoard being optional."""

from __future__ import annotations

import io
import json
import sys

import pytest

from exitcore.ppo import logger as logger_module
from exitcore.evaluation.rundir import TRAIN_LOG_FILE
from exitcore.ppo.logger import TrainLogger, flatten_metrics


def test_jsonl_records_non_finite_values_and_nested_stats(tmp_path):
    log = TrainLogger(tmp_path, total_steps=100, progress=False)
    log.log({"update": 1, "global_step": 10, "steps": 10, "explained_variance": float("nan"),
             **flatten_metrics({"exit_reasons": {"STOP": 0.5}})})
    log.close()
    (record,) = [json.loads(line) for line in (tmp_path / TRAIN_LOG_FILE).read_text().splitlines()]
    assert record == {"update": 1, "global_step": 10, "steps": 10, "explained_variance": "nan", "exit_reasons/STOP": 0.5}


def test_resume_drops_records_after_the_checkpoint_and_torn_lines(tmp_path):
    path = tmp_path / TRAIN_LOG_FILE
    path.write_text("".join(json.dumps({"update": u}) + "\n" for u in (1, 2, 3, 4)) + '{"update": 5, "tor')
    TrainLogger(tmp_path, total_steps=100, progress=False, resume_update=2).close()
    assert [json.loads(x)["update"] for x in path.read_text().splitlines()] == [1, 2]


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_shows_steps_and_return(monkeypatch):
    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    log = TrainLogger(None, total_steps=100)  # progress=None: a TTY gets the bar
    log.log({"update": 1, "global_step": 50, "steps": 50, "ep_return_mean": 0.25})
    log.close()
    out = terminal.getvalue()
    assert "training" in out and "50%" in out and "mean episode return 0.25" in out


def test_a_resumed_bar_times_only_the_steps_still_to_train(monkeypatch):
    """click's ETA is the time so far over the bar's position: a bar starting at the resumed
    step counted the earlier steps as done in no time (98 % with an ETA of 00:00:00 while
    7 s of training remained)."""
    import click._termui_impl as termui

    clock = [1000.0]
    monkeypatch.setattr(termui.time, "time", lambda: clock[0])
    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    log = TrainLogger(None, total_steps=100, start_step=80)
    clock[0] += 10.0  # 10 s for the first 10 of the 20 steps left: 10 s to go
    log.log({"update": 9, "global_step": 90, "steps": 10})
    assert log._bar.eta == pytest.approx(10.0)
    log.close()
    assert "training (resumed at 80 %)" in terminal.getvalue()


def test_a_dumb_terminal_gets_lines_not_a_redrawn_bar(monkeypatch):
    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("TERM", "dumb")
    log = TrainLogger(None, total_steps=100, progress=True)  # what `exitcore run` passes
    log.log({"update": 1, "global_step": 50, "steps": 50})
    log.close()
    out = terminal.getvalue()
    assert log._bar is None and "\r" not in out and "\x1b[" not in out


def test_quiet_when_not_a_tty(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    log = TrainLogger(None, total_steps=100)  # progress=None: follow the terminal
    log.log({"update": 1, "global_step": 50, "steps": 50})
    log.close()
    assert capsys.readouterr().err == ""


def test_tensorboard_is_optional(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    assert logger_module._tensorboard_writer(tmp_path / "tb") is None


def _tensorboard_scalars(directory):
    """{tag: [(step, value), ...]} as TensorBoard shows them (purged events hidden)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_gets_every_numeric_metric_once_even_after_a_resume(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging is optional; install tensorboard to test it")

    def record(update):
        return {"update": update, "global_step": 10 * update, "steps": 10, "loss_policy": -0.1 * update,
                "exit_reasons/STOP": 0.5, "note": "text is not a scalar"}

    log = TrainLogger(tmp_path, total_steps=100, progress=False)
    for update in (1, 2, 3, 4):  # updates 3 and 4 come after the checkpoint (update 2) and are lost
        log.log(record(update))
    log.close()
    log = TrainLogger(tmp_path, total_steps=100, start_step=20, progress=False, resume_update=2)
    for update in (3, 4, 5):
        log.log({**record(update), "loss_policy": -1.0 * update})  # the replayed updates differ
    log.close()

    scalars = _tensorboard_scalars(tmp_path / logger_module.TB_DIR)
    assert "note" not in scalars and "global_step" not in scalars
    assert [s for s, _ in scalars["exit_reasons/STOP"]] == [10, 20, 30, 40, 50]
    steps, values = zip(*scalars["loss_policy"])
    assert steps == (10, 20, 30, 40, 50) and values == pytest.approx([-0.1, -0.2, -3.0, -4.0, -5.0])
