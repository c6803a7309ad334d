"""Progress lines of long loops (exitcore/data/progress.py)."""

from __future__ import annotations

from exitcore.data import progress


def _said(monkeypatch, seconds_each: float, total: int) -> list[str]:
    """What ``counter`` reports for ``total`` items done ``seconds_each`` apart (a fake clock)."""
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    said: list[str] = []
    with progress.progress_to(said.append):
        tick = progress.counter("probed {done} of {total} decisions", total, every_s=5.0)
        for done in range(1, total + 1):
            now[0] += seconds_each
            tick(done)
    return said


def test_a_long_loop_ends_on_its_final_count(monkeypatch):
    """The throttle let `probed 28 of 32` through last, and the audit's PASS followed it, as if 4
    decisions had been skipped: once a line was reported, the final count is reported too."""
    said = _said(monkeypatch, 0.9, 32)  # lines every 5 s: after decisions 6, 12, ... 30
    assert said == [f"probed {n} of 32 decisions" for n in (6, 12, 18, 24, 30, 32)]


def test_a_short_loop_says_nothing(monkeypatch):
    assert _said(monkeypatch, 0.5, 3) == []
