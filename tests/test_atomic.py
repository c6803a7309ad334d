"""Atomic writes (exitcore/atomic.py): through symbolic links, never over what is not a regular
file, errors naming the path asked for."""

from __future__ import annotations

import errno
import os

import pytest

from exitcore.atomic import atomic_path, write_text_atomic


def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path):
    real = tmp_path / "archive" / "report.md"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "latest.md"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert sorted(p.name for p in real.parent.iterdir()) == ["report.md"]  # no temporary file left


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_or_a_folder_is_refused_and_left_as_it_is(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"pipe: not a regular file \(a FIFO, device or socket\)"):
        write_text_atomic(fifo, "text")
    assert fifo.exists() and not fifo.is_file()  # still the FIFO (it used to be replaced by a file)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(OSError, match="folder: a directory"):
        write_text_atomic(folder, "text")


def test_errors_name_the_path_asked_for_not_the_temporary_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("kept")
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    assert target.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    (tmp_path / "junk.csv").write_text("a file")
    with pytest.raises(OSError, match=r"junk.csv is a file, not a folder"):
        write_text_atomic(tmp_path / "junk.csv" / "r.txt", "text")


def test_an_error_without_a_file_name_names_the_path_asked_for(tmp_path):
    # a full disk reported by a flush or close carries no file name: "[Errno 28] No space left on device"
    with pytest.raises(OSError) as info:
        with atomic_path(tmp_path / "out.csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(info.value) == f"[Errno 28] No space left on device: '{tmp_path / 'out.csv'}'"
    assert list(tmp_path.iterdir()) == []


def test_sigterm_stops_a_command_as_ctrl_c_does_and_leaves_no_temporary(tmp_path):
    """`data synth` killed by SIGTERM (a scheduler, `timeout`) left a hidden temporary of tens of
    MB per try; it now stops as Ctrl-C does, removing it, with status 130."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "bars.csv"
    proc = subprocess.Popen([sys.executable, "-m", "exitcore", "data", "synth", "-o", str(out), "--years", "40"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".bars.csv.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "synth finished before a temporary file was seen: give it more years"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_are_recognised_by_name_only(tmp_path):
    from exitcore.atomic import remove_stale_temporaries

    stale = [".results.json.a1b2c3d4.tmp.json", ".ledger_test.csv.zz_9y8x7.tmp.csv", ".checkpoint.pt.abcdefgh.tmp.pt"]
    kept = ["results.json", ".hidden", ".results.json.tmp", "notes.tmp.txt", ".x.short.tmp.json"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    assert sorted(p.name for p in remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_a_full_disk_exits_1_naming_the_file_not_the_bad_input_status(tmp_path, monkeypatch):
    """`data synth` on a full disk printed a bare '[Errno 28] No space left on device' and exited
    2, the status of bad input."""
    from click.testing import CliRunner

    from exitcore.cli import cli
    from exitcore.data import synth_io

    def full_disk(bars, path, name=None):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a flush reports it: no file name

    monkeypatch.setattr(synth_io, "write_bars", full_disk)
    out = tmp_path / "bars.csv"
    result = CliRunner().invoke(cli, ["data", "synth", "-o", str(out), "--years", "0.05"])
    assert result.exit_code == 1, result.output
    assert f"error: [Errno 28] No space left on device: '{out}'" in result.output
    assert list(tmp_path.iterdir()) == []
