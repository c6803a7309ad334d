"""The run registry: every run of every experiment, indexed in one SQLite file per runs directory.

``RUNS_DIR/registry.sqlite`` records each run: id, experiment, config hash, data hash and source,
seed, status, start/end, the owning process, and headline metrics (JSON). It is what ``exitcore
runs`` and ``exitcore show`` read, what ``compare`` checks before reading a run's results, and
where the deflated Sharpe ratio gets its number of trials (:meth:`Registry.trial_count`).

Statuses: ``pending`` (created, not started) → ``running`` → ``done`` | ``failed`` |
``interrupted``. A run whose process died (crash, ``kill -9``, power loss) cannot mark itself;
every :class:`Registry` opening runs :meth:`Registry.recover_stale`, which marks such runs
``interrupted``, so no run is left ``running`` without a process. An interrupted run may be
resumed (``running`` again) and a late finisher may still record ``done``.

Concurrency: several processes may use one runs directory at once. The database is in WAL
mode (readers never block the writer), waits up to ``timeout`` seconds for a lock
(``busy_timeout``), and every write is one ``BEGIN IMMEDIATE`` transaction, so concurrent
writers serialise instead of failing or losing rows. WAL needs a local filesystem (not NFS).
Open one :class:`Registry` per process; a registry carried into a forked child reopens its
connection there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import os
import random
import re
import secrets
import shlex
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from exitcore.atomic import file_identity
from exitcore.errors import ExitcoreError, NotOwner
from exitcore.evaluation import jsonable
from exitcore.process_identity import on_this_host, owner_host, owner_token, process_alive
from exitcore.words import command, plural

#: the registry's file name inside a runs directory
REGISTRY_FILE = "registry.sqlite"
#: run ids start with the UTC time the run was created in this format (:meth:`Registry.create_run`)
RUN_ID_TIME_FORMAT = "%Y%m%d-%H%M%S"
_RUN_ID_TIME_LENGTH = len(dt.datetime(2000, 1, 1).strftime(RUN_ID_TIME_FORMAT))


def run_id_created(run_id: str) -> dt.datetime | None:
    """The UTC creation time a run id starts with (``20261127-223106-...``), else None."""
    try:
        stamp = dt.datetime.strptime(run_id[:_RUN_ID_TIME_LENGTH], RUN_ID_TIME_FORMAT)
    except ValueError:
        return None
    return stamp.replace(tzinfo=dt.timezone.utc)
#: the error of a run presumed gone (:meth:`Registry.recover_stale`). Part of the registry's
#: format: :meth:`Registry.heartbeat` knows a run presumed gone by it (also when an older exitcore
#: wrote it), and takes such a run back while its process lives; change it and it no longer does
GONE_ERROR = "process {pid} on {host} is gone (last seen {last_seen})"
#: environment variable naming the runs directory (default ``./runs``)
RUNS_DIR_ENV = "EXITCORE_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
#: params keys that are part of a run's trial (RunRecord.trial) besides its code hash: the global
#: step at which a plugin ended the run's training, the steps at which it ended walk-forward
#: windows' (``{window: step}``), and the digest of the bars' columns besides OHLC
STOPPED_AT_STEP = "stopped_at_step"
WINDOWS_STOPPED_AT = "walk_forward_stopped_at"
COLUMNS_HASH = "columns_hash"
#: the database schema this code writes; a newer one in a file is refused
SCHEMA_VERSION = 1
STATUSES: tuple[str, ...] = ("pending", "running", "done", "failed", "interrupted")
#: new status -> the statuses it may follow
_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "running": frozenset({"pending", "interrupted"}),  # start, or resume from a checkpoint
    # a run on another host can be marked interrupted while alive (stale heartbeat); its own
    # final word wins
    "done": frozenset({"running", "interrupted"}),
    "failed": frozenset({"pending", "running", "interrupted"}),
    "interrupted": frozenset({"pending", "running"}),
}
#: a run whose liveness cannot be checked directly is stale after this long without a heartbeat
DEFAULT_STALE_AFTER_S = 600.0

_SCHEMA_V1 = """
CREATE TABLE runs (
    seq          INTEGER PRIMARY KEY,  -- creation order (timestamps can tie)
    id           TEXT NOT NULL UNIQUE,
    experiment   TEXT NOT NULL,
    config_hash  TEXT NOT NULL,
    data_hash    TEXT NOT NULL,
    data_source  TEXT NOT NULL DEFAULT '',
    seed         INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'interrupted')),
    run_dir      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    ended_at     TEXT,
    heartbeat_at TEXT,
    pid          INTEGER,
    hostname     TEXT,
    proc_start   TEXT,
    error        TEXT NOT NULL DEFAULT '',
    params       TEXT NOT NULL DEFAULT '{}',
    metrics      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_experiment ON runs (experiment, status);
CREATE INDEX runs_data_hash ON runs (data_hash);
"""
#: migrations from version v to v + 1 (none yet): SQL run in the upgrade transaction
_MIGRATIONS: Mapping[int, str] = {}


class RegistryError(ExitcoreError):
    """The runs directory or its registry cannot be used, or a run id is unknown or ambiguous."""


class RegistryTrouble(RegistryError):
    """The machine's trouble, not the command's input: the registry is locked by another
    process for longer than the busy timeout (a ``sqlite3`` shell or a database browser with a
    transaction open), or the disk is full or failing. Exit status 1, as other machine trouble;
    a run it stops is recorded ``interrupted`` (resumable) where the registry can still be written,
    else found gone by the next command."""

    exit_code = 1


#: SQLite's primary result codes that are the machine's trouble (:class:`RegistryTrouble`),
#: and those of a damaged file
_BUSY, _LOCKED, _IOERR, _CORRUPT, _FULL, _NOTADB = 5, 6, 10, 11, 13, 26
#: how a lost or damaged registry is rebuilt (trial Z: `runs --record` brought back every row)
_REBUILD = ("`exitcore runs --record` records every run directory beside it again (statuses, results and "
            "trial counts come back from each run's files)")


class AmbiguousName(RegistryError):
    """A prefix that matches several recorded runs or experiments."""


class RunTakenOver(RegistryError, NotOwner):
    """The run's row names another process as its owner (see :meth:`Registry.heartbeat`)."""


class RunState(RegistryError):
    """The run exists, but its status is not one the command can use (a resume of a finished or
    failed run): exit status 4, so a script tells it from bad input (2)."""

    exit_code = 4


class RunNotDone(RunState):
    """The run exists but has no final results (running, failed or interrupted): exit status 4."""


class RunStillRunning(RunNotDone):
    """The run is running (training, evaluating, or resumed by another process): exit status 75,
    sysexits' EX_TEMPFAIL, "try again later", once it has finished."""

    exit_code = 75


def connect_read_only(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection to the registry file ``path`` that never writes.

    ``mode=ro`` reads with locks and the write-ahead log, but needs the WAL's ``-shm`` file or
    a directory it may create it in. Where it cannot open (a read-only mount), the file is read
    as immutable (no locks, no WAL: nothing can write it there), unless the WAL holds changes
    not yet in the file: immutable would silently ignore them (runs missing, stale statuses,
    too few trials for the deflated Sharpe). Busy or locked is never a reason to read unlocked.
    """
    uri = Path(path).resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if "unable to open" not in str(exc):
            raise RegistryError(f"run registry {path}: {exc}") from None
    wal = Path(path).with_name(Path(path).name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise RegistryError(f"run registry {path} cannot be read here: {wal.name} holds changes not yet written into "
                            "it, which a reader can only apply where it may create files; copy the runs directory "
                            f"(with {wal.name}) somewhere writable and read it there")
    conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=timeout, isolation_level=None)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise RegistryError(f"run registry {path} cannot be opened for reading: {exc}") from None
    return conn


def resolve_runs_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The runs directory: ``explicit`` (``--runs-dir``), else ``$EXITCORE_RUNS_DIR``, else ``./runs``.
    An empty ``explicit`` is refused: ``--runs-dir ""`` (an unset shell variable) must not
    quietly mean ./runs."""
    if explicit is not None and str(explicit) == "":
        raise RegistryError("--runs-dir is empty: give the runs directory, or leave the option out for "
                            f"${RUNS_DIR_ENV} or ./{DEFAULT_RUNS_DIR}")
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


def runs_dir_words(runs_dir: str | os.PathLike[str]) -> str:
    """`` --runs-dir DIR`` for a command printed for the user to run next, when ``runs_dir`` is
    not the runs directory that command would find by default; else ``""``."""
    if Path(runs_dir).resolve() == resolve_runs_dir(None).resolve():
        return ""
    return f" --runs-dir {shlex.quote(str(runs_dir))}"


def _now() -> str:
    """Now, as every registry time is written: :func:`~exitcore.evaluation.jsonable.iso_time`'s
    format, the one the command line's ``--json`` prints."""
    return jsonable.iso_time(dt.datetime.now(dt.timezone.utc))


def _parse_time(iso: Any) -> dt.datetime | None:
    """An ISO time from the registry; None when missing or not a time (a damaged row)."""
    try:
        return dt.datetime.fromisoformat(iso) if iso else None
    except (TypeError, ValueError):
        return None


def _created_key(record: Any) -> dt.datetime:
    """Sort key of a record by its creation time (a damaged one first; ties keep their order)."""
    created = _parse_time(record.created_at)
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=dt.timezone.utc)
    return created or dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def unverifiable_words(record: Any, stale_after: float = DEFAULT_STALE_AFTER_S) -> str:
    """Where a running run's process cannot be checked from here (another host, another PID
    namespace), how it is judged instead: ``"; its process cannot be checked from here (...): it
    counts as running until ..."``; ``""`` where it can (a dead process here is found at once)."""
    if on_this_host(record.hostname) and process_alive(int(record.pid or 0), record.proc_start) is not None:
        return ""
    last = _parse_time(record.heartbeat_at) or _parse_time(record.started_at)
    until = (f", at {(last + dt.timedelta(seconds=stale_after)).strftime('%Y-%m-%d %H:%M UTC')}"
             if last is not None and last.tzinfo is not None else "")
    return (f"; its process cannot be checked from here (another host or PID namespace): it counts as running until "
            f"{stale_after / 60:g} min after its last heartbeat{until}, then as interrupted")


def _age_s(iso: str | None, now: dt.datetime) -> float:
    t = _parse_time(iso)
    if t is None:  # never seen, or a damaged time: no sign of life to go by
        return float("inf")
    try:
        return (now - t).total_seconds()
    except TypeError:  # a time without a zone (edited by hand)
        return float("inf")


def _last_write(run_dir: Path) -> str | None:
    """The latest modification time of the files directly in ``run_dir`` (ISO, UTC), if any."""
    try:
        times = [e.stat().st_mtime for e in os.scandir(run_dir) if e.is_file()]
    except OSError:
        return None
    if not times:
        return None
    return jsonable.iso_time(dt.datetime.fromtimestamp(max(times), dt.timezone.utc))


# --------------------------------------------------------------------------- records


@attrs.frozen
class RunRecord:
    """One row of the registry. Times are ISO-8601 UTC strings; ``metrics``/``params`` plain dicts."""

    id: str
    experiment: str
    config_hash: str
    data_hash: str
    data_source: str
    seed: int
    status: str
    run_dir: str
    created_at: str
    started_at: str | None
    ended_at: str | None
    heartbeat_at: str | None
    pid: int | None
    hostname: str | None
    proc_start: str | None
    error: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    #: columns of the row that could not be read, with why (``{"metrics": "not valid JSON: ..."}``);
    #: a damaged ``params``/``metrics`` reads as ``{}``, a damaged time as it is stored
    damaged: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        """The record of a ``runs`` row. A damaged column (an edit by hand, a disk error) does
        not make the row unreadable: it is listed in :attr:`damaged` and the rest is kept, so one
        bad row cannot break every command that lists runs."""
        data = dict(row)
        data.pop("seq", None)
        damaged: dict[str, str] = {}
        for column in ("params", "metrics"):
            try:
                value = jsonable.loads(data[column])
            except (TypeError, ValueError) as exc:
                damaged[column] = f"not valid JSON ({exc})"
                value = {}
            if not isinstance(value, dict):
                damaged.setdefault(column, f"a JSON {type(value).__name__}, not an object")
                value = {}
            data[column] = value
        for column in ("created_at", "started_at", "ended_at", "heartbeat_at"):
            if data[column] is not None and _parse_time(data[column]) is None:
                damaged[column] = f"not an ISO time: {str(data[column])[:40]!r}"
        return cls(**data, damaged=damaged)

    @property
    def trial(self) -> tuple[str, int, str]:
        """The run's trial: ``(config_hash, seed, code_hash)``, the code hash being the plugin
        code its components came from (:func:`exitcore.plugins.code_hash`; ``""`` for a run
        recorded before exitcore kept it), followed by ``+DIGEST`` of the bars' columns besides
        timestamps and OHLC where they have any (params' ``columns_hash``: the same prices with
        another volume column are other data to a feature reading it), by ``@STEP`` where a
        plugin's ``iteration_end`` ended its training at that global step (``stopped_at_step``)
        and ``@wN:STEP`` for each walk-forward window it ended early (``walk_forward_stopped_at``):
        a stopping rule is something tried, and its run trains another policy than the run
        trained to the end. Runs of one trial count once in the DSR's N. A row
        whose params are damaged, or hold a code hash that is not a string, is a trial of its
        own (``damaged:ID``): merged into another, it would lower N."""
        code = self.params.get("code_hash", "")
        if "params" in self.damaged or not isinstance(code, str):
            code = f"damaged:{self.id}"
        columns = self.params.get(COLUMNS_HASH)
        if columns:  # the bars' volume, spread...: the same prices with another volume are other data
            code = f"{code}+{columns}"
        stopped = self.params.get(STOPPED_AT_STEP)
        if stopped is not None:  # a plugin ended its training there: not the run trained to the end
            code = f"{code}@{stopped}"
        windows = self.params.get(WINDOWS_STOPPED_AT)
        if isinstance(windows, dict):  # and walk-forward windows' trainings
            code += "".join(f"@w{w}:{windows[w]}" for w in sorted(windows, key=str))
        return self.config_hash, self.seed, code

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain data (for ``--json``); ``damaged`` only when a column is."""
        data = attrs.asdict(self)
        if not self.damaged:  # the JSON of an intact row is unchanged
            data.pop("damaged")
        return data

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end (to now while running); None before the start."""
        start = _parse_time(self.started_at)
        if start is None:  # not started, or a damaged time (see ``damaged``)
            return None
        if self.ended_at:
            end = _parse_time(self.ended_at)
        elif self.status == "running":
            end = dt.datetime.now(dt.timezone.utc)  # the heartbeat lags by up to 30 s
        else:
            end = _parse_time(self.heartbeat_at or self.started_at)
        try:
            return (end - start).total_seconds() if end is not None else None
        except TypeError:  # one time with a zone, one without (edited by hand)
            return None


def _unfinished_creation(path: Path) -> bool:
    """A 0-byte registry beside a rollback journal: its first transaction has not committed (a
    commit writes the file): another process is creating it now, or was killed doing so. No run
    was ever recorded in it, so a reader sees no registry; a writer opens it as any other, and
    SQLite, under its locks, rolls back a dead creator's journal (deleting the files here would
    break a live creator's commit)."""
    try:
        return path.stat().st_size == 0 and Path(f"{path}-journal").is_file()
    except OSError:
        return False


def run_dirs_in(runs_dir: Path, skip: frozenset[str] | set[str] = frozenset()) -> list[Path]:
    """The run directories (:func:`exitcore.evaluation.rundir.is_run_dir`) directly in
    ``runs_dir``, sorted; folders named in ``skip`` are left out without being looked into."""
    from exitcore.evaluation.rundir import is_run_dir

    try:
        entries = [Path(e.path) for e in os.scandir(runs_dir) if e.name not in skip and e.is_dir()]
    except OSError:
        return []
    return sorted(d for d in entries if is_run_dir(d))


def unrecorded_words(dirs: Sequence[Path], runs_dir: Path) -> str:
    """The note for run directories a registry does not record (:meth:`Registry.unrecorded_dirs`),
    saying which ``runs --record`` can record and why it cannot the others (trial Z 12: the
    note kept suggesting it for directories it refuses)."""
    from exitcore.recording import why_not_recordable

    refused = [(d, why) for d in dirs if (why := why_not_recordable(d)) is not None]
    n_ok = len(dirs) - len(refused)
    record = f"`{command()} runs --record{runs_dir_words(runs_dir)}`"
    if not refused:
        fix = f"{record} records {'it' if n_ok == 1 else 'them'}"
    else:
        first, why = refused[0]
        others = f" (and {plural(len(refused) - 1, 'other')}: it says why)" if len(refused) > 1 else ""
        fix = (f"{record} records {n_ok} of them, but not {first.name}: {why}{others}" if n_ok else
               f"{record} cannot record {'it' if len(dirs) == 1 else 'them'} as {'it is' if len(dirs) == 1 else 'they are'} "
               f"({first.name}: {why}{others})")
    example = dirs[0].name if not refused or n_ok == 0 else next(d.name for d in dirs if d not in dict(refused))
    return (f"{plural(len(dirs), 'run directory', 'run directories')} in {runs_dir} "
            f"{'is' if len(dirs) == 1 else 'are'} not in its registry (e.g. {example}: copied in, or the registry "
            "was replaced): not listed, not found by experiment name, and not counted as trials by the deflated "
            f"Sharpe ratio; {fix}")


def _slug(experiment: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", experiment).strip("-")[:40] or "run"


# --------------------------------------------------------------------------- the registry


class Registry:
    """The run registry of one runs directory (see the module docstring).

    Opening creates the directory and the database when ``create`` is true (else a missing
    registry is an error), checks that the directory is writable, checks the schema version,
    and marks runs whose process is gone as ``interrupted`` (:meth:`recover_stale`).
    """

    def __init__(
        self,
        runs_dir: str | os.PathLike[str],
        *,
        create: bool = True,
        read_only: bool = False,
        timeout: float = 30.0,
        stale_after: float = DEFAULT_STALE_AFTER_S,
    ):
        self.runs_dir = Path(runs_dir)
        self.path = self.runs_dir / REGISTRY_FILE
        self.timeout = timeout
        self.stale_after = stale_after
        self.read_only = read_only
        self._conn_obj: sqlite3.Connection | None = None
        self._conn_pid = -1
        #: the (device, inode) of the file the writable connection opened (:meth:`_follow_replaced_file`)
        self._conn_file: tuple[int, int] | None = None
        self._told_replaced = False
        #: read-only: runs whose process is gone, shown as interrupted (nothing can be written)
        self._presumed: dict[str, tuple[str, str]] = {}
        self._warned: set[tuple[str, str]] = set()
        if not create or read_only:
            self._check_exists()
        try:
            if read_only:
                # a command that only reads must not initialise or alter a registry it does not
                # recognise; where it may write, it still marks dead runs interrupted below
                self._check_schema_read_only()
                if not self._is_writable():  # an archived or shared runs directory
                    self._view_read_only()
                    return
                self.close()
                self.read_only = False
            self._check_writable()
            try:
                with self._sql_errors():
                    self._retry_while_locked(self._init_schema)
                self.recover_stale()
            except RegistryTrouble:
                if not read_only:
                    raise
                # a command that only reads still reads where writing fails (another process
                # holds the write lock, the disk is full): as from a read-only mount
                self.close()
                self.read_only = True
                self._view_read_only()
        except BaseException:
            self.close()
            raise

    def _view_read_only(self) -> None:
        """Read without writing: runs whose process is gone are shown interrupted, not marked."""
        with self._sql_errors():
            rows = self._conn.execute("SELECT * FROM runs WHERE status IN ('pending', 'running')").fetchall()
            self._presumed = {i: (seen, why) for i, seen, why in self._gone(rows)}

    # ----------------------------------------------------------------- opening

    @staticmethod
    def exists(runs_dir: str | os.PathLike[str]) -> bool:
        """Whether ``runs_dir`` holds a registry (without creating anything). Anything at the
        registry's path counts, so that opening it says what is wrong with a directory there
        instead of "no runs recorded" (except a registry whose creation was killed: no run was ever
        recorded in it)."""
        path = Path(runs_dir) / REGISTRY_FILE
        return os.path.lexists(path) and not _unfinished_creation(path)

    def _check_exists(self) -> None:
        if _unfinished_creation(self.path):
            raise RegistryError(self.missing(self.runs_dir))
        if self.path.is_dir():
            raise RegistryError(f"{self.path} is a directory, not a run registry file; move it away "
                                "(a run registry is created by `exitcore run`)")
        if not self.path.is_file():
            raise RegistryError(self.missing(self.runs_dir))

    def _check_schema_read_only(self) -> None:
        """An existing, initialised registry of a schema this code reads; nothing is written."""
        if self.path.stat().st_size == 0:
            # an empty file is not a registry; re-initialising it would hide that the runs beside it
            # lost their records
            raise RegistryError(f"run registry {self.path} is empty (0 bytes): its records are lost; restore it from "
                                f"a backup, or move it away and rebuild it from the run directories: {_REBUILD}")
        with self._sql_errors():
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise RegistryError(f"run registry {self.path} has schema version {version}, newer than this exitcore "
                                f"understands ({SCHEMA_VERSION}); upgrade exitcore to use it")
        if version == 0 or "runs" not in tables:
            raise RegistryError(f"{self.path} is an SQLite file but not an exitcore run registry")

    def _is_writable(self) -> bool:
        try:
            self._check_writable()
        except RegistryError:
            return False
        return True

    @staticmethod
    def missing(runs_dir: str | os.PathLike[str]) -> str:
        """Why ``runs_dir`` has no registry, for an error message (one wording for every command)."""
        if not Path(runs_dir).exists():
            return f"no run registry in {runs_dir}: the directory does not exist (check --runs-dir or ${RUNS_DIR_ENV})"
        if not Path(runs_dir).is_dir():
            return f"no run registry in {runs_dir}: it is a file, not a runs directory"
        copied = run_dirs_in(Path(runs_dir))
        if copied:  # copied in without their registry
            return f"no run registry in {runs_dir}: no run has been recorded there; {unrecorded_words(copied, Path(runs_dir))}"
        return f"no run registry in {runs_dir}: no run has been recorded there"

    def _check_writable(self) -> None:
        # a probe file, not os.access: root passes os.access everywhere, and a read-only mount
        # or a path through a regular file fails only when something is actually written
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.runs_dir, prefix=".write-probe-"):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if self.runs_dir.is_dir() and isinstance(exc, FileNotFoundError):
                # e.g. /proc: the directory exists but refuses new files ("No such file" misleads)
                reason = f"files cannot be created in it ({reason})"
            if isinstance(exc, FileExistsError) or (self.runs_dir.exists() and not self.runs_dir.is_dir()):
                reason = "it exists and is not a directory"
            raise RegistryError(f"runs directory {self.runs_dir} is not writable: {reason}") from None

    @contextlib.contextmanager
    def _sql_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
            if code in (_BUSY, _LOCKED):
                raise RegistryTrouble(
                    f"run registry {self.path}: {exc} (another process has held its lock for over "
                    f"{self.timeout:g} s: a sqlite3 shell or a database browser with a transaction open?); "
                    "close it and run the command again") from None
            if code in (_FULL, _IOERR):
                raise RegistryTrouble(f"run registry {self.path}: {exc} (is the disk full?); free some space "
                                      "and run the command again") from None
            if code in (_CORRUPT, _NOTADB):
                raise RegistryError(f"run registry {self.path}: {exc}: the file is damaged; restore it from a "
                                    f"backup, or move it away and rebuild it: {_REBUILD}") from None
            raise RegistryError(f"run registry {self.path}: {exc}") from None

    @property
    def _conn(self) -> sqlite3.Connection:
        # a connection must not cross a fork: reopen in the child
        if (self._conn_obj is None or self._conn_pid != os.getpid()) and self.read_only:
            self._conn_obj, self._conn_pid = self._connect_read_only(), os.getpid()
        if self._conn_obj is None or self._conn_pid != os.getpid():
            with self._creating():
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                # with WAL, NORMAL cannot corrupt the database; a power cut may lose the last commit
                conn.execute("PRAGMA synchronous = NORMAL")
            self._conn_obj, self._conn_pid = conn, os.getpid()
            self._conn_file = file_identity(self.path)
        return self._conn_obj

    @contextlib.contextmanager
    def _creating(self) -> Iterator[None]:
        """Where no registry file is (a new runs directory, or one deleted while runs ran): its
        ``-wal`` and ``-shm`` at the path, if any, are the deleted file's, still open in the
        processes that ran on it, and SQLite would read them as the new file's (its pages, then
        a checkpoint of one process into the other's file: rows lost, review AJ). They are
        unlinked first (those processes keep them open and go on consistently), under a lock on
        the runs directory, so two processes do not unlink what the other has just created."""
        if os.path.exists(self.path):
            yield
            return
        try:
            fd = os.open(self.runs_dir, os.O_RDONLY)
        except OSError:  # no directory to lock (the connect below says why)
            yield
            return
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
            if not os.path.exists(self.path):
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(OSError):  # gone already, or not ours to remove: as before
                        os.unlink(f"{self.path}{suffix}")
            yield
        finally:
            os.close(fd)  # releases the lock

    def _connect_read_only(self) -> sqlite3.Connection:
        conn = connect_read_only(self.path, self.timeout)
        conn.row_factory = sqlite3.Row
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock up front (no deadlock on lock upgrade)."""
        if self.read_only:
            raise RegistryError(f"runs directory {self.runs_dir} is not writable: it was opened read-only")
        conn = self._conn
        with self._sql_errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _retry_while_locked(self, setup: Any) -> None:
        """Run ``setup`` again while SQLite reports a lock, up to ``timeout`` seconds.

        Switching a new database to WAL and the first schema transaction can fail with
        "database is locked" at once, without waiting for the busy timeout, when several
        processes open a new registry together (SQLite refuses to wait where waiting could
        deadlock); a short randomised retry resolves it.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                setup()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                self.close()
                time.sleep(random.uniform(0.005, 0.05))

    def _init_schema(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RegistryError(
                    f"run registry {self.path} has schema version {version}, newer than this exitcore "
                    f"understands ({SCHEMA_VERSION}); upgrade exitcore to use it"
                )
            if version == 0:
                tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
                if tables:
                    raise RegistryError(f"{self.path} is an SQLite file but not an exitcore run registry")
                # statement by statement: executescript() would commit and end the transaction
                for statement in filter(str.strip, _SCHEMA_V1.split(";")):
                    conn.execute(statement)
                version = 1
            while version < SCHEMA_VERSION:
                for statement in filter(str.strip, _MIGRATIONS[version].split(";")):
                    conn.execute(statement)
                version += 1
            conn.execute(f"PRAGMA user_version = {version}")

    def close(self) -> None:
        """Close the connection (it reopens on the next use)."""
        if self._conn_obj is not None and self._conn_pid == os.getpid():
            self._conn_obj.close()
        self._conn_obj = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------- writing

    def create_run(
        self,
        experiment: str,
        config_hash: str,
        data_hash: str,
        *,
        data_source: str = "",
        seed: int = 0,
        run_dir: str | os.PathLike[str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a new ``pending`` run owned by this process and return its id.

        Ids read ``YYYYmmdd-HHMMSS-EXPERIMENT-xxxx`` (UTC, 4 random hex digits) and are unique:
        a collision with a concurrent process is retried inside the transaction. ``run_dir``
        defaults to the id (relative paths are relative to the runs directory; nothing is
        created). ``params`` is free-form JSON (budget, overrides, device, …).
        """
        stamp = dt.datetime.now(dt.timezone.utc).strftime(RUN_ID_TIME_FORMAT)
        params_json = jsonable.dumps(dict(params or {}))
        with self._write() as conn:
            for _ in range(100):
                run_id = f"{stamp}-{_slug(experiment)}-{secrets.token_hex(2)}"
                if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                    break
            else:  # 100 collisions in a 65536-id space means something else is wrong
                raise RegistryError("could not find a free run id")
            conn.execute(
                "INSERT INTO runs (id, experiment, config_hash, data_hash, data_source, seed, status, run_dir,"
                " created_at, pid, hostname, proc_start, params)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    experiment,
                    config_hash,
                    data_hash,
                    data_source,
                    int(seed),
                    str(run_dir) if run_dir is not None else run_id,
                    _now(),
                    os.getpid(),
                    owner_host(),
                    owner_token(),
                    params_json,
                ),
            )
        return run_id

    #: the columns :meth:`record_existing` writes, in order
    _ROW_COLUMNS = ("id", "experiment", "config_hash", "data_hash", "data_source", "seed", "status", "run_dir",
                    "created_at", "started_at", "ended_at", "heartbeat_at", "pid", "hostname", "proc_start",
                    "error", "params", "metrics")

    def record_existing(self, row: Mapping[str, Any]) -> bool:
        """Insert the row of a run whose directory exists but is not recorded
        (:func:`exitcore.recording.row_of` builds it: every column of the table but ``seq``).
        Returns False, changing nothing, when a run with its id is recorded already."""
        if row.get("status") not in ("done", "interrupted", "failed"):
            raise RegistryError(f"run {row.get('id')}: a run recorded from its directory is done, interrupted "
                                f"or failed, not {row.get('status')!r}")
        with self._write() as conn:
            if self._has(conn, row["id"]):
                return False
            conn.execute(f"INSERT INTO runs ({', '.join(self._ROW_COLUMNS)}) "
                         f"VALUES ({', '.join('?' for _ in self._ROW_COLUMNS)})",
                         tuple(row[c] for c in self._ROW_COLUMNS))
        return True

    def _transition(self, run_id: str, status: str, keep: tuple[str, ...] = (), owned: bool = False,
                    **values: Any) -> None:
        """Set ``status`` and ``values`` if the transition is allowed; columns in ``keep`` are set
        only if empty. ``owned``: only by the process the row names (:class:`RunTakenOver` else)."""
        with self._write() as conn:
            row = conn.execute("SELECT status, pid, hostname, proc_start FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._unknown(run_id)
            if owned:
                self._check_owner(run_id, row)
            if row["status"] not in _TRANSITIONS[status]:
                raise RegistryError(f"run {run_id} is {row['status']}; it cannot become {status}")
            values["status"] = status
            assignments = ", ".join(f"{k} = COALESCE({k}, ?)" if k in keep else f"{k} = ?" for k in values)
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values.values(), run_id))

    def mark_running(self, run_id: str) -> None:
        """This process starts (or resumes) the run: records pid, host, process start and a heartbeat."""
        now = _now()
        self._transition(
            run_id,
            "running",
            keep=("started_at",),  # a resumed run keeps its first start
            started_at=now,
            ended_at=None,
            heartbeat_at=now,
            pid=os.getpid(),
            hostname=owner_host(),
            proc_start=owner_token(),
            error="",
        )

    def mark_done(self, run_id: str, metrics: Mapping[str, Any] | None = None) -> None:
        """The run finished; ``metrics`` (optional) replaces its headline metrics. Like
        :meth:`mark_failed` and :meth:`mark_interrupted`, only by the process that owns the run:
        one that another process took over (:class:`RunTakenOver`) is left to it."""
        values: dict[str, Any] = {"ended_at": _now()}
        if metrics is not None:
            values["metrics"] = jsonable.dumps(dict(metrics))
        self._transition(run_id, "done", owned=True, **values)

    def mark_failed(self, run_id: str, error: str = "") -> None:
        """The run stopped on an error (``error``: one line for ``show``)."""
        self._transition(run_id, "failed", owned=True, ended_at=_now(), error=error)

    def mark_interrupted(self, run_id: str, reason: str = "") -> None:
        """The run was stopped before finishing (Ctrl-C, a signal); it may be resumed."""
        self._transition(run_id, "interrupted", owned=True, ended_at=_now(), error=reason)

    def heartbeat(self, run_id: str) -> None:
        """Record that the running run is alive (call every few minutes at most; cheap).

        A run marked interrupted while its process still runs (by a process that could not see
        it: another PID namespace, a clock more than ``stale_after`` off) is taken back by that
        process here, instead of failing at its next heartbeat."""
        self._follow_replaced_file(run_id)
        owner = (os.getpid(), owner_host(), owner_token())
        with self._write() as conn:
            cur = conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running' "
                               "AND pid = ? AND hostname = ? AND proc_start IS ?", (_now(), run_id, *owner))
            if cur.rowcount == 0:
                cur = conn.execute(
                    "UPDATE runs SET status = 'running', ended_at = NULL, error = '', heartbeat_at = ? "
                    "WHERE id = ? AND status = 'interrupted' AND pid = ? AND hostname = ? AND proc_start IS ? "
                    "AND error LIKE ?",  # presumed gone by another process, not stopped by its own (Ctrl-C)
                    (_now(), run_id, *owner, GONE_ERROR.format(pid=os.getpid(), host="%", last_seen="%")))
            if cur.rowcount == 0:
                row = conn.execute("SELECT status, pid, hostname, proc_start FROM runs WHERE id = ?", (run_id,)).fetchone()
                if row is None:
                    raise self._unknown(run_id)
                self._check_owner(run_id, row)
                raise RegistryError(f"run {run_id} is not running; no heartbeat recorded")

    def _follow_replaced_file(self, run_id: str) -> None:
        """Carry the run's row into the registry file now at :attr:`path` where the file this
        process opened was deleted or replaced while the run ran (``rm``, a restore from a backup,
        a rebuild by ``runs --record``, trial Z 6): its connection would otherwise go on writing
        an unlinked file no other command reads, and the run would be missing from ``runs`` and
        from the trial count. The file is created where none is; a moved runs directory is left
        alone (the connection follows the file there). Warns once."""
        if self._conn_obj is None or self._conn_pid != os.getpid() or self._conn_file is None or self.read_only:
            return
        now = file_identity(self.path)
        if now == self._conn_file or not self.runs_dir.is_dir():
            return
        with self._sql_errors():
            row = self._conn_obj.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            # SQLite leaves the WAL of a moved or unlinked file where it was: emptied now (its frames
            # go into the old file), or the next connection at the path would read them as the new
            # file's pages
            self._conn_obj.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.close()
        with self._sql_errors():
            self._retry_while_locked(self._init_schema)
        carried = False
        if row is not None:
            with self._write() as conn:
                if not self._has(conn, run_id):
                    conn.execute(f"INSERT INTO runs ({', '.join(self._ROW_COLUMNS)}) "
                                 f"VALUES ({', '.join('?' for _ in self._ROW_COLUMNS)})",
                                 tuple(row[c] for c in self._ROW_COLUMNS))
                    carried = True
        if not self._told_replaced:
            self._told_replaced = True
            what = "deleted" if now is None else "replaced"
            where = ("recorded in a new registry created at its path" if now is None
                     else "recorded in the registry now at its path" if carried
                     else "found in the registry now at its path")
            print(f"warning: run registry {self.path} was {what} while run {run_id} ran; the run is {where}. "
                  f"Other runs in {self.runs_dir} missing from it: {_REBUILD}", file=sys.stderr)

    @staticmethod
    def _check_owner(run_id: str, row: sqlite3.Row) -> None:
        """:class:`RunTakenOver` unless ``row`` (status, pid, hostname, proc_start) names this process."""
        if (row["pid"], row["hostname"], row["proc_start"]) != (os.getpid(), owner_host(), owner_token()):
            raise RunTakenOver(
                f"run {run_id} is now {row['status']} under process {row['pid']} on {row['hostname']}: "
                "another exitcore took it over (a resume that judged this process gone), so this "
                "process stops without writing anything more for it")

    def set_stopped_at_step(self, run_id: str, step: int | None, window: int | None = None) -> None:
        """A plugin ended the run's training (or walk-forward ``window``'s) at global step
        ``step``: recorded in its params, where it makes the run another trial
        (:attr:`RunRecord.trial`); ``None`` clears it (a resume that trains again from step 0)."""
        with self._write() as conn:
            row = conn.execute("SELECT params FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._unknown(run_id)
            try:
                params = jsonable.loads(row["params"])
            except (TypeError, ValueError):
                params = None
            if not isinstance(params, dict):  # damaged: the run is a trial of its own already
                return
            if window is None:
                params.pop(STOPPED_AT_STEP, None)
                params.update({} if step is None else {STOPPED_AT_STEP: int(step)})
            else:
                windows = params.get(WINDOWS_STOPPED_AT) if isinstance(params.get(WINDOWS_STOPPED_AT), dict) else {}
                windows = {k: v for k, v in windows.items() if k != str(window)}
                windows.update({} if step is None else {str(window): int(step)})
                params[WINDOWS_STOPPED_AT] = windows
                if not windows:
                    params.pop(WINDOWS_STOPPED_AT)
            conn.execute("UPDATE runs SET params = ? WHERE id = ?", (jsonable.dumps(params), run_id))

    def set_metrics(self, run_id: str, metrics: Mapping[str, Any]) -> None:
        """Replace the run's headline metrics (a JSON-able dict; NaN/inf are kept)."""
        with self._write() as conn:
            cur = conn.execute("UPDATE runs SET metrics = ? WHERE id = ?", (jsonable.dumps(dict(metrics)), run_id))
            if cur.rowcount == 0:
                raise self._unknown(run_id)

    def recover_stale(self) -> list[str]:
        """Mark ``pending``/``running`` runs whose process is gone as ``interrupted``; return their ids.

        A run is gone when, on this host, its pid no longer exists, is a zombie, or belongs to
        a *different* process (the pid was reused: its start time differs from the recorded
        one). Where that cannot be checked — a run recorded on another host or in another PID
        namespace (a container sharing the host's name), or a platform
        without ``/proc`` — a run is gone when its last sign of life (heartbeat, start or
        creation) is older than ``stale_after`` seconds.
        """
        with self._write() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE status IN ('pending', 'running')").fetchall()
            gone = self._gone(rows)
            for run_id, last_seen, error in gone:
                conn.execute("UPDATE runs SET status = 'interrupted', ended_at = ?, error = ? WHERE id = ?",
                             (last_seen, error, run_id))
        return [run_id for run_id, _, _ in gone]

    def _gone(self, rows: list[sqlite3.Row]) -> list[tuple[str, str, str]]:
        """``(id, last seen, error)`` of the ``pending``/``running`` rows whose process is gone
        (see :meth:`recover_stale`)."""
        # here: this host and PID namespace; a bare host name was written by an exitcore that
        # recorded no namespace there (its token may carry it after "@": process_alive reads it)
        here = {owner_host(), socket.gethostname()}  # not on_this_host: another namespace's pid is not ours
        now = dt.datetime.now(dt.timezone.utc)
        gone = []
        for row in rows:
            last_seen = row["heartbeat_at"] or row["started_at"] or row["created_at"]
            same_host = row["hostname"] in here and row["pid"]
            alive = process_alive(row["pid"], row["proc_start"]) if same_host else None
            if alive is None:
                alive = _age_s(last_seen, now) <= self.stale_after
            if alive:
                continue
            # the heartbeat comes every 30 s at most: the run's own files show a later sign
            # of life (its training log is written every update), so its duration is not 0
            last_write = _last_write(self._dir_of(row["run_dir"]))
            seen = _parse_time(last_seen)
            with contextlib.suppress(TypeError):  # a time without a zone, edited by hand
                if last_write and (seen is None or _parse_time(last_write) > seen):
                    last_seen = last_write
            gone.append((row["id"], last_seen, GONE_ERROR.format(pid=row["pid"], host=row["hostname"], last_seen=last_seen)))
        return gone

    # ----------------------------------------------------------------- reading

    def _record(self, row: sqlite3.Row) -> RunRecord:
        """The row as a record: a run whose process is gone shows as interrupted in a registry
        opened read-only (it cannot be marked), and a damaged column is warned about once."""
        record = RunRecord.from_row(row)
        if record.id in self._presumed and record.status in ("pending", "running"):
            seen, why = self._presumed[record.id]
            record = attrs.evolve(record, status="interrupted", ended_at=seen, error=why)
        for column, why in record.damaged.items():
            if (record.id, column) not in self._warned:
                self._warned.add((record.id, column))
                print(f"warning: run {record.id}: the registry's {column} column is damaged ({why}) in {self.path}; "
                      "the run is listed without it", file=sys.stderr)
        return record

    def has(self, run_id: str) -> bool:
        """Whether a run with exactly this id is recorded."""
        with self._sql_errors():
            return self._has(self._conn, run_id)

    @staticmethod
    def _has(conn: sqlite3.Connection, run_id: str) -> bool:
        return conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def _unknown(self, ref: str) -> RegistryError:
        if os.sep in ref or Path(ref).is_dir():  # a path was meant, not an id
            if Path(ref).is_dir():
                return RegistryError(f"{ref} is not a run directory: it holds no run.json or config.toml")
            return RegistryError(f"{ref}: no such run directory, and not a run id in {self.runs_dir}")
        with self._sql_errors():
            ids = [r[0] for r in self._conn.execute("SELECT id FROM runs ORDER BY seq").fetchall()]
        close = [i for i in ids if ref and ref in i][:3]
        close += [i for i in difflib.get_close_matches(ref, ids, n=3, cutoff=0.5) if i not in close]
        hint = f"; did you mean {', '.join(close[:3])}?" if close else (f"; `exitcore runs{runs_dir_words(self.runs_dir)}` lists them" if ids else "")
        return RegistryError(f"unknown run {ref!r} in {self.runs_dir}{hint}")

    def get(self, ref: str, *, exact: bool = False) -> RunRecord:
        """The run with id ``ref``, or else (unless ``exact``) the only run whose id starts with
        ``ref`` or ends with ``-ref`` (its random suffix, ``fa29``); ambiguous when several do,
        a start and an end included (a suffix like ``2026`` is also the start of every id)."""
        with self._sql_errors():
            row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (ref,)).fetchone()
            if row is not None:
                return self._record(row)
            if exact or not ref:
                raise self._unknown(ref)
            escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._conn.execute(
                "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY seq", (escaped + "%",)
            ).fetchall()
            # LIKE ignores case for ASCII; ids are case-sensitive
            starts = [r for r in rows if r["id"].startswith(ref)]
            # the end of an id after a dash: its random suffix (fa29), or v4-fa29
            ends = [r for r in self._conn.execute(
                "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY seq", ("%-" + escaped,)
            ).fetchall() if r["id"].endswith("-" + ref) and not r["id"].startswith(ref)]
        rows = starts + ends
        if len(rows) == 1:
            return self._record(rows[0])
        if len(rows) > 1:
            shown = ", ".join(r["id"] for r in rows[:5]) + (" …" if len(rows) > 5 else "")
            how = " or ".join(w for w, found in (("start", starts), ("end", ends)) if found)
            raise AmbiguousName(f"run {ref!r} is ambiguous: {len(rows)} runs {how} with it ({shown}); "
                                "give more of the id")
        raise self._unknown(ref)

    def list(
        self, experiment: str | None = None, status: str | None = None, data_hash: str | None = None
    ) -> list[RunRecord]:
        """All runs in creation order, optionally only those matching ``experiment``, ``status``, ``data_hash``."""
        if status is not None and status not in STATUSES:
            raise RegistryError(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        # the status filter applies to the status shown: a dead "running" run read from a
        # read-only registry shows (and filters) as interrupted
        filters = {"experiment": experiment, "data_hash": data_hash}
        where = [f"{column} = ?" for column, value in filters.items() if value is not None]
        args = [value for value in filters.values() if value is not None]
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq"
        with self._sql_errors():
            rows = self._conn.execute(sql, args).fetchall()
        # creation order (seq is the order rows were added: `runs --record` adds old runs last)
        records = sorted((self._record(r) for r in rows), key=_created_key)
        return [r for r in records if status is None or r.status == status]

    def recorded_experiment(self, name: str, defined: Iterable[str] = ()) -> str:
        """``name`` among the experiments that have runs and those ``defined`` by the experiments
        file (when it could be read): exact, else a unique prefix (``v4``); RegistryError when none
        or several match. For commands that take experiment names without needing the experiments
        file that defined them (``runs -e``, ``compare``). A prefix is unique only among both: `v4`
        must not mean a recorded ``v4_real`` where the file's ``v4_no_lookahead`` has no runs."""
        with self._sql_errors():
            recorded = {r[0] for r in self._conn.execute("SELECT DISTINCT experiment FROM runs").fetchall()}
        if name in recorded or name in defined:
            return name
        matches = sorted({n for n in (*recorded, *defined) if n.startswith(name)})
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = ", ".join(n if n in recorded else f"{n} (no runs recorded)" for n in matches)
            raise AmbiguousName(f"experiment {name!r} is ambiguous: it could be {shown}")
        close = difflib.get_close_matches(name, sorted(recorded), n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise RegistryError(f"no runs of an experiment {name!r} are recorded{hint}; experiments with runs: "
                            f"{', '.join(sorted(recorded)) or 'none'}")

    def latest_done(self, experiment: str, data_hash: str | None = None) -> RunRecord | None:
        """The most recently finished ``done`` run of ``experiment`` (on the bars of
        ``data_hash`` when given), or None."""
        where, args = "experiment = ? AND status = 'done'", [experiment]
        if data_hash is not None:
            where, args = where + " AND data_hash = ?", [*args, data_hash]
        with self._sql_errors():
            row = self._conn.execute(
                f"SELECT * FROM runs WHERE {where} ORDER BY ended_at DESC, seq DESC LIMIT 1", args
            ).fetchone()
        return self._record(row) if row is not None else None

    def require_done(self, ref: str) -> RunRecord:
        """The run ``ref`` if it finished; otherwise a :class:`RegistryError` saying what it is doing.

        ``compare`` and reports call this so a run still running (or failed, or interrupted)
        is never read as if its results were final.
        """
        record = self.get(ref)
        if record.status == "done":
            return record
        if record.status == "running":
            detail = (
                f"pid {record.pid} on {record.hostname}, started {record.started_at}, "
                f"last heartbeat {record.heartbeat_at}"
            )
            raise RunStillRunning(f"run {record.id} is still running ({detail}){unverifiable_words(record, self.stale_after)}; "
                                  "wait for it to finish")
        why = f": {record.error}" if record.error else ""
        then = (f"; continue it with `{command()} run --resume {record.id}{runs_dir_words(self.runs_dir)}`"
                if record.status == "interrupted" else "")
        raise RunNotDone(f"run {record.id} is {record.status}{why}; it has no final results{then}")

    def trial_count(self, data_hash: str) -> int:
        """The number of trials recorded on the dataset ``data_hash``: the DSR's ``N``.

        A trial is a distinct ``(config_hash, seed, code_hash)`` (:attr:`RunRecord.trial`: the
        code hash with the bars' other columns and a plugin's early stops) among the runs on that dataset, *in
        every status*: failed, interrupted and still-running runs count, because the deflated
        Sharpe ratio must account for everything that was tried (a configuration abandoned after
        a look at its partial results is still a trial, and leaving it out would understate the
        selection). Re-running or resuming the same configuration with the same seed and plugin
        code is the same trial and counts once (a resume whose training code changed is refused). Configurations differing only in name (same config hash) count
        once.
        """
        with self._sql_errors():  # the rows read as records (not warned about: listing them does)
            rows = self._conn.execute("SELECT * FROM runs WHERE data_hash = ?", (data_hash,)).fetchall()
        return len({RunRecord.from_row(row).trial for row in rows})

    def unrecorded_dirs(self) -> list[Path]:
        """Run directories (:func:`run_dirs_in`) directly in the runs directory that no row of
        the registry records: copied in from elsewhere, or left by a registry that was
        deleted or replaced. They are not listed, not found by experiment name, and not counted
        as trials by the deflated Sharpe ratio."""
        with self._sql_errors():
            recorded = [Path(row[0]) for row in self._conn.execute("SELECT run_dir FROM runs")]
        # by name for the usual rows (relative: a folder of the runs directory); paths resolved
        # only for absolute rows and for the few folders not named by a row (5,000 runs: 13 ms,
        # against 0.4 s resolving every one)
        names = {p.name for p in recorded if not p.is_absolute() and len(p.parts) == 1}
        absolute = None
        unrecorded = []
        for d in run_dirs_in(self.runs_dir, skip=names):
            if absolute is None:
                absolute = {self._dir_of(str(p)).resolve() for p in recorded if p.is_absolute() or len(p.parts) > 1}
            if d.resolve() not in absolute:
                unrecorded.append(d)
        return unrecorded

    def path_of(self, record: RunRecord) -> Path:
        """The run's directory: ``run_dir`` as recorded, relative paths taken from the runs directory."""
        return self._dir_of(record.run_dir)

    def _dir_of(self, run_dir: str) -> Path:
        p = Path(run_dir)
        return p if p.is_absolute() else self.runs_dir / p
