"""StopRequests: Ctrl-C and SIGTERM as a flag while training (exitcore/ppo/stop.py)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from exitcore.ppo.stop import StopRequests


def deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(1000):  # let the interpreter run the handler
        pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_first_signal_sets_the_flag_and_check_raises(signum):
    """SIGHUP too (trial Z): a closed terminal killed a run outright (129), no checkpoint then."""
    with StopRequests() as stop:
        deliver(signum)  # no exception here
        assert stop.received == signum
        with pytest.raises(KeyboardInterrupt):
            stop.check()


def test_a_second_signal_raises_at_once():
    with StopRequests() as stop:
        deliver(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            deliver(signal.SIGINT)
        stop._honoured = True  # what check() records; the test stops here


def test_handlers_are_restored_and_an_ignored_signal_stays_ignored():
    before = signal.getsignal(signal.SIGINT)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with StopRequests():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGINT) is not before
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGTERM, old_term)


def test_a_signal_after_the_last_check_is_delivered_again_on_exit():
    with pytest.raises(KeyboardInterrupt):
        with StopRequests():
            deliver(signal.SIGINT)  # nobody calls check() before the end


def test_outside_the_main_thread_nothing_is_installed():
    seen = {}

    def body():
        with StopRequests():
            seen["handler"] = signal.getsignal(signal.SIGINT)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen["handler"] is signal.getsignal(signal.SIGINT)


def test_a_second_ctrl_c_while_a_stopping_run_records_itself_keeps_the_resume_command(tmp_path):
    """The first Ctrl-C stops the run; a second one pressed while it is being recorded as
    interrupted used to escape as a bare KeyboardInterrupt ("interrupted", no run id, no resume
    command). Now the bookkeeping finishes and the run's RunInterrupted comes out."""
    from exitcore.runner import RunInterrupted, RunInfo, _recorded

    class Registry:
        marked = []

        def mark_interrupted(self, run_id, why):
            signal.raise_signal(signal.SIGINT)  # the second press, in the middle of it
            self.marked.append((run_id, why))

    class Host:
        def run_finished(self, info, status, metrics):
            pass

    info = RunInfo("20261127-000000-v4-abcd", tmp_path, None, "hash")
    with pytest.raises(RunInterrupted) as stop:
        with _recorded(Registry(), Host(), info, "evaluating"):
            raise KeyboardInterrupt  # the first press
    assert stop.value.run_id == info.run_id
    assert Registry.marked == [(info.run_id, "interrupted while evaluating")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back afterwards
