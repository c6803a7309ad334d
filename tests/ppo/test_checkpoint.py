"""Checkpoints are atomic: a failure or a kill between write and replace keeps the previous one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from exitcore.ppo import checkpoint as ckpt
from exitcore.ppo.checkpoint import REQUIRED_KEYS, CheckpointError, load_checkpoint, save_checkpoint


def _state(step: int) -> dict:
    state = {k: 0 for k in REQUIRED_KEYS if k not in ("format", "version")}
    state.update(global_step=step, model={"w": torch.full((3,), float(step))})
    return state


def test_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", _state(7))
    loaded = load_checkpoint(path)
    assert loaded["global_step"] == 7 and torch.equal(loaded["model"]["w"], torch.full((3,), 7.0))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left


def test_failed_replace_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state(1))

    def broken_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(ckpt.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        save_checkpoint(path, _state(2))
    assert load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # the temp file was removed


def test_kill_between_write_and_replace_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state(1))
    # A process that writes the next checkpoint and is SIGKILLed right before os.replace.
    script = textwrap.dedent(f"""
        import os, signal, torch
        from exitcore.ppo import checkpoint as ckpt
        from exitcore.ppo.checkpoint import REQUIRED_KEYS
        state = {{k: 0 for k in REQUIRED_KEYS if k not in ("format", "version")}}
        state["global_step"] = 2
        ckpt.os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        ckpt.save_checkpoint({str(path)!r}, state)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "c.pt"]
    assert leftovers and all(".tmp" in name for name in leftovers)  # the kill really came mid-write
    assert load_checkpoint(path)["global_step"] == 1


@pytest.mark.skipif(sys.platform == "win32", reason="file-size limits are POSIX")
def test_a_full_disk_is_an_os_error_and_keeps_the_previous_checkpoint(tmp_path):
    """torch's writer, given a path, reported a full disk as RuntimeError ("unexpected pos"): the
    run was recorded failed with a traceback instead of stopped by the machine (resumable)."""
    path = tmp_path / "c.pt"
    save_checkpoint(path, _state(1))
    script = textwrap.dedent(f"""
        import errno, resource, signal, torch
        from exitcore.ppo.checkpoint import REQUIRED_KEYS, save_checkpoint
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        state = {{k: 0 for k in REQUIRED_KEYS if k not in ("format", "version")}}
        state["model"] = {{"w": torch.zeros(1_000_000)}}
        try:
            save_checkpoint({str(path)!r}, state)
        except OSError as exc:
            print("OSError", exc.errno == errno.EFBIG)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "OSError True", proc.stdout + proc.stderr
    assert load_checkpoint(path)["global_step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_load_rejects_torn_and_foreign_files(tmp_path):
    good = save_checkpoint(tmp_path / "c.pt", _state(1))
    torn = tmp_path / "torn.pt"
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="torn.pt: cannot be read"):
        load_checkpoint(torn)
    foreign = tmp_path / "foreign.pt"
    torch.save({"hello": 1}, foreign)
    with pytest.raises(CheckpointError, match="not an exitcore PPO checkpoint"):
        load_checkpoint(foreign)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, "model": {}}, incomplete)
    with pytest.raises(CheckpointError, match="lacks"):
        load_checkpoint(incomplete)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    assert os.path.exists(good)
    # a file holding arbitrary objects: not torch's advice to load it with weights_only=False
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": ckpt.FORMAT, "obj": _Foreign()}, pickled)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(pickled)
    assert str(info.value).endswith("(UnpicklingError: it holds objects other than tensors and plain data, "
                                    "which exitcore does not load)")
    assert "weights_only" not in str(info.value) and "arbitrary code" not in str(info.value)


class _Foreign:
    """Anything a weights-only load refuses."""
