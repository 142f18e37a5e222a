"""Commands a dead worker left running (agents, checks), found and killed by the next worker.

Every command runs in a session of its own (worker/processes.py), so that the worker can stop
it, process group and all. A worker killed with SIGKILL (the OOM killer, `kill -9`, a crash in
native code) stops nothing, and nothing else would: its agents would go on editing worktrees
that the next worker is about to use. Two measures, both in processes.run_command:

1. PR_SET_PDEATHSIG (Linux): the kernel SIGKILLs each command's first process the moment the
   worker dies. It covers that process only; whatever it started lives on. The command is
   started through util-linux's `setpriv --pdeathsig KILL`, which sets it and then execs the
   command (same process): a preexec_fn would do the same but forces Python to fork() the
   whole worker instead of vfork(), some 6 to 15 ms of blocked event loop per command against
   about 1.5 (bench/RESULTS.md). Without setpriv the preexec_fn is the fallback.
2. This ledger on disk, under DEVSERVER_HOME/run. Each worker process holds an exclusive
   flock(2) on `<worker id>.lock` for its lifetime and records the process group of each
   command it runs in `<worker id>/<pgid>` (the file holds the group leader's start time).
   The kernel drops a flock when its process dies, however it dies; so whoever can take the
   lock knows the worker is gone. sweep() does that for every worker of this host's home:
   it SIGKILLs the groups recorded there and deletes the record. A worker sweeps when it
   starts, and before it takes over a task a dead worker was running (worker/jobs.py).

Process ids are reused. A group id is not while any process is still in the group; a record
whose group leader pid now runs with another start time is a new group, and is left alone.

Linux only (procfs, prctl); elsewhere run_command works as before and sweep() finds nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import errno
import fcntl
import functools
import logging
import os
import shutil
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
LOCK_SUFFIX = ".lock"

_ledger: contextvars.ContextVar[Ledger | None] = contextvars.ContextVar("ledger", default=None)


class Ledger:
    """The process groups one worker process runs now, on disk, under its lock."""

    def __init__(self, root: Path, worker_id: str) -> None:
        self.root = root
        name = worker_id.replace("/", "_")
        self._lock_path = root / f"{name}{LOCK_SUFFIX}"
        self._hidden_lock = root / f".{name}{LOCK_SUFFIX}"  # sweep() ignores dot files
        self.groups = root / name
        self._fd: int | None = None

    def open(self) -> None:
        """Take the lock, then make it visible: a sweep never sees it unlocked."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.groups.mkdir(exist_ok=True)
        fd = os.open(self._hidden_lock, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(self._hidden_lock, self._lock_path)
        self._fd = fd

    def close(self) -> None:
        """Delete the record, then let go of the lock (a clean exit: nothing is left)."""
        shutil.rmtree(self.groups, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self._lock_path.unlink()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def record(self, pgid: int) -> None:
        """Best effort: a group not on record is still stopped by its own command's end;
        only a sweep after a crash would miss it."""
        try:
            (self.groups / str(pgid)).write_text(start_time(pgid) or "")
        except OSError as exc:  # the ledger was closed meanwhile, or the disk is full
            log.warning("process group not recorded", extra={"pgid": pgid, "error": str(exc)})

    def forget(self, pgid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.groups / str(pgid)).unlink()


@contextlib.contextmanager
def keeping(ledger: Ledger) -> Iterator[Ledger]:
    """Open `ledger` and make it the one run_command records in, for this context and the
    tasks created in it (a context variable); close it on the way out."""
    ledger.open()
    token = _ledger.set(ledger)
    try:
        yield ledger
    finally:
        _ledger.reset(token)
        ledger.close()


def current() -> Ledger | None:
    """The ledger of this worker, if one is kept (None in tests that call jobs directly)."""
    return _ledger.get()


def sweep(root: Path) -> list[int]:
    """Kill the process groups recorded by dead workers under `root`; their ids."""
    killed: list[int] = []
    try:
        locks = sorted(p for p in root.iterdir() if p.name.endswith(LOCK_SUFFIX))
    except FileNotFoundError:
        return killed
    for lock in locks:
        if lock.name.startswith("."):
            continue
        try:
            killed += _sweep_one(lock)
        except OSError:  # an unreadable record must not keep a worker from starting
            log.warning("ledger not swept", extra={"lock": str(lock)}, exc_info=True)
    return killed


def sweep_dead() -> list[int]:
    """sweep() the directory of this worker's ledger; nothing when none is kept."""
    ledger = current()
    return [] if ledger is None else sweep(ledger.root)


def _sweep_one(lock: Path) -> list[int]:
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:  # its worker exited cleanly meanwhile, or another swept it
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return []  # its worker is alive
            raise
        groups = lock.with_name(lock.name.removesuffix(LOCK_SUFFIX))
        killed = [pgid for pgid, started in _recorded(groups) if _kill_group(pgid, started)]
        shutil.rmtree(groups, ignore_errors=True)
        lock.unlink(missing_ok=True)
    finally:
        os.close(fd)
    if killed:
        worker = lock.name.removesuffix(LOCK_SUFFIX)
        log.warning("killed what a dead worker left running",
                    extra={"worker": worker, "pgids": killed})  # fmt: skip
    return killed


def _recorded(groups: Path) -> list[tuple[int, str]]:
    found = []
    with contextlib.suppress(FileNotFoundError):
        for entry in groups.iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    found.append((int(entry.name), entry.read_text().strip()))
    return found


def _kill_group(pgid: int, started: str) -> bool:
    """SIGKILL group `pgid` if it is still the recorded one; whether anything was killed."""
    if not group_members(pgid):
        return False
    leader_started = start_time(pgid)
    if leader_started is not None and started and leader_started != started:
        return False  # the pid was reused by a new session leader: not ours
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
        return True
    return False


def _stat_fields(pid: str | int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """When `pid` started, in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    fields = _stat_fields(pid)
    return fields[19].decode() if fields is not None and len(fields) > 19 else None


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of group `pgid`."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    members = []
    for entry in entries:
        if entry.isdigit():
            fields = _stat_fields(entry)
            # fields: state, ppid, pgrp, ...; a zombie only waits to be reaped by its parent
            if fields and len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in b"ZX":
                members.append(int(entry))
    return members


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return prctl


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGKILL the child when this process dies; None where
    prctl is not available. Resolved here, in the parent: the child only makes the call."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the worker died before the call: nothing would tell us
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, where it can set the parent-death signal (Linux)."""
    return shutil.which("setpriv") if _prctl() is not None else None


def dying_with_parent(
    argv: Sequence[str], env: Mapping[str, str] | None
) -> tuple[list[str], Callable[[], None] | None]:
    """The argv and preexec_fn that start `argv` so that it dies with this process.

    Through setpriv where there is one, with the program resolved here on the child's PATH
    (`env`'s, else ours) so that a missing program still raises FileNotFoundError as it would
    without the wrapper; else the argv as it is with the preexec_fn of die_with_parent().
    """
    setpriv = _setpriv()
    program = argv[0] if argv else ""
    if setpriv is None or not program or (os.sep in program and not os.path.isabs(program)):
        return list(argv), die_with_parent()  # a path relative to the child's cwd: as it is
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = program if os.sep in program else shutil.which(program, path=path)
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", program)
    return [setpriv, "--pdeathsig", "KILL", "--", found, *argv[1:]], None
