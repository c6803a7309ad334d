"""Which process owns a run, told apart from any later process that reuses its pid.

A run in the registry (:mod:`exitcore.registry`) records its owner's pid, host
(:func:`owner_host`: the host name and the PID namespace) and process token
(:func:`owner_token`: the boot id and the process's start time). A reader decides from them
whether that very process still runs (:func:`process_alive`), where it can tell: on this
host, in this PID namespace, with ``/proc``; elsewhere the run's heartbeat decides.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start_token(pid: int) -> str | None:
    """An identity for the *process* ``pid`` that a later process reusing the pid will not share.

    On Linux: the boot id plus the process start time (``/proc/PID/stat`` field 22, clock ticks
    since boot). ``None`` when the process does not exist, is a zombie, or the platform has no
    ``/proc`` (then liveness falls back to heartbeats).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start_ticks = fields[0], fields[19]
    if state in ("Z", "X"):  # exited, not yet reaped: it will never write again
        return None
    return f"{_boot_id()}:{start_ticks}"


def _pid_namespace() -> str:
    """This process's PID namespace (``4026531836``), ``""`` where it cannot be read: a pid
    names a process only within its namespace (a container may share the host's name)."""
    try:
        return os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]")
    except OSError:
        return ""


def owner_token() -> str | None:
    """What a run records of the process that owns it: :func:`process_start_token` of this process."""
    return process_start_token(os.getpid())


def owner_host() -> str:
    """What a run records as its host: the host name and, where it can be read, this process's
    PID namespace, ``vm (pid namespace 4026531836)``: a pid names a process only on its host and
    in its namespace (a container may share the host's name).

    The namespace goes with the host, not with the process token: an older exitcore compares the
    token whole, so one with the namespace appended (as this version wrote for a while, after
    ``@``; such rows are still read) made it take every live run of a newer exitcore for dead
    and let a resume take the run over. It reads another host name here, and judges the run
    by its heartbeat instead."""
    namespace = _pid_namespace()
    host = socket.gethostname()
    return f"{host} (pid namespace {namespace})" if namespace else host


def on_this_host(hostname: str | None) -> bool:
    """Whether a run's recorded ``hostname`` (:func:`owner_host`) is this host's, in any PID
    namespace (a bare host name: recorded by an exitcore that did not record the namespace)."""
    host = socket.gethostname()
    return bool(hostname) and (hostname == host or hostname.startswith(f"{host} (pid namespace "))


def process_alive(pid: int, token: str | None) -> bool | None:
    """True: that very process still runs; False: it is gone; None: cannot tell here."""
    if Path("/proc/self/stat").exists():
        if token and "@" in token:
            token, _, namespace = token.partition("@")
            if namespace != _pid_namespace():  # its pid means another process here, or none
                return None
        current = process_start_token(pid)
        if current is None:
            return False
        return current == token if token else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return None
    return None  # the pid exists, but without a start time it may be a reused pid
