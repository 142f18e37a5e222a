"""Run a child process with a watchdog: bounded output, a deadline, and no orphans left behind.

Every command runs in its own session (so its own process group). Whatever happens (normal
exit, deadline, cancellation of the awaiting task, or an error while waiting), the whole
group is terminated afterwards: SIGTERM, a grace period, then SIGKILL. Output is collected
through a protocol that never stops reading, so a chatty child cannot deadlock on a full
pipe, and only the tail of each stream is kept in memory.

When the worker itself is killed (SIGKILL, the OOM killer), none of that runs: the kernel
then kills the command's first process (PR_SET_PDEATHSIG), and the next worker kills the
rest of its group from the ledger of groups each worker keeps on disk (worker/orphans.py).

Besides its own timeout, a command can have a moving deadline (`time_left`: a task's
wall-time budget, which a person may raise while the command runs). It is asked at the start
and again whenever the time it gave runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker import orphans

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
_REAP_SECONDS = 5.0  # how long to wait for the kernel to report a SIGKILLed child as exited
_PIPE_DRAIN_SECONDS = 1.0  # how long to wait for EOF once every process of the group is gone
_STDOUT = 1
_STDERR = 2


# Seconds a command may still run by some outside measure (None: no limit of that kind).
TimeLeft = Callable[[], Awaitable[float | None]]


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_code: int | None  # None when the watchdog killed the process at the deadline
    stdout: str
    stderr: str
    timed_out: bool
    duration_seconds: float


def tail(text: str, limit: int) -> str:
    """The last `limit` characters of `text`."""
    if limit <= 0:
        return ""
    return text[-limit:]


def join_output(stdout: str, stderr: str) -> str:
    """stdout then stderr, on separate lines, for one combined tail."""
    if stdout and stderr:
        return stdout + ("" if stdout.endswith("\n") else "\n") + stderr
    return stdout or stderr


class _Collector(asyncio.SubprocessProtocol):
    """Keeps the tail of stdout and stderr and reports exit and end of output."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, merge_stderr: bool) -> None:
        self._limit = limit
        self._buffers = {_STDOUT: bytearray(), _STDERR: bytearray()}
        self._open_pipes = {_STDOUT} if merge_stderr else {_STDOUT, _STDERR}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self._buffers.get(fd)
        if buffer is None:
            return
        buffer += data
        if len(buffer) > 2 * self._limit:  # trim in batches: amortised O(1) per byte
            del buffer[: len(buffer) - self._limit]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def text(self, fd: int) -> str:
        data = bytes(self._buffers[fd][-self._limit :]) if self._limit > 0 else b""
        return data.decode("utf-8", errors="replace")


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in the process group.

    Signal 0 answers the common case, an empty group, in one system call; only a group that
    still has a process (maybe a zombie) costs the walk through /proc, a few ms per command.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = []
    if not entries:  # no procfs: signal 0 said yes, though it also counts zombies
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        # fields: state, ppid, pgrp, ...; a zombie only waits to be reaped by its parent
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _stop_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, wait up to `grace` seconds for it to empty, then SIGKILL it."""
    if not _group_alive(pgid):
        return
    log.info("terminating process group", extra={"pgid": pgid})
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        await asyncio.sleep(_POLL_SECONDS)
        if not _group_alive(pgid):
            return
    log.warning("killing process group", extra={"pgid": pgid})
    _signal_group(pgid, signal.SIGKILL)


async def _wait_for(future: asyncio.Future[None], seconds: float) -> bool:
    """Wait for `future` without cancelling it; True if it completed in time."""
    done, _ = await asyncio.wait({future}, timeout=seconds)
    return bool(done)


async def _wait_exit(
    exited: asyncio.Future[None], seconds: float, time_left: TimeLeft | None
) -> bool:
    """Wait until the child exits, `seconds` pass, or `time_left` says the time is up;
    True if it exited. `time_left` is asked again each time what it said runs out."""
    end = time.monotonic() + seconds
    while True:
        wait = end - time.monotonic()
        if time_left is not None and wait > 0:
            left = await time_left()
            if left is not None:
                wait = min(wait, left)
        if wait <= 0:
            return exited.done()
        if await _wait_for(exited, wait):
            return True


def watch_children_by_pidfd() -> None:
    """Python 3.11 watches each child from a thread started for it (ThreadedChildWatcher):
    about a sixth of the worker's busy time in bench/overhead.py went to starting those
    threads. Where Linux offers pidfds the event loop can watch them itself, as 3.12 and later
    do by default. For the whole process: call once, in its event loop, before any child."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel before 5.3, or a sandbox that forbids it
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.get_event_loop_policy().set_child_watcher(watcher)


async def _start(
    spawn: Awaitable[tuple[asyncio.SubprocessTransport, _Collector]],
) -> tuple[asyncio.SubprocessTransport, _Collector]:
    """Await the start of a child; a cancellation meanwhile kills its whole group.

    asyncio's own clean-up of a start cancelled half-way kills only the first process and
    then waits for its pipes to close, which a grandchild holding them may never do. So the
    start itself is never cancelled: once it has finished, the group is killed.
    """
    starting = asyncio.ensure_future(spawn)
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        starting.add_done_callback(_kill_started)
        with contextlib.suppress(BaseException):  # cancelled again: the callback still kills
            await asyncio.shield(starting)
        raise


def _kill_started(starting: asyncio.Future[tuple[asyncio.SubprocessTransport, _Collector]]) -> None:
    if starting.cancelled() or starting.exception() is not None:
        return
    transport, _ = starting.result()
    _signal_group(transport.get_pid(), signal.SIGKILL)
    transport.close()


async def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 (the watchdog must kill the group, not just stop waiting)
    stdin_data: bytes | None = None,
    max_output_bytes: int = 2_000_000,
    kill_grace: float = 3.0,
    merge_stderr: bool = False,
    time_left: TimeLeft | None = None,
) -> CommandResult:
    """Run `argv` (never through a shell) and return its exit code and output tails.

    The watchdog stops it after `timeout` seconds, or earlier once `time_left` returns zero
    or less (`timed_out` is set either way). `env` is the child's whole environment. Each
    stream keeps its last `max_output_bytes` bytes; with `merge_stderr` stderr goes into
    stdout and `stderr` is empty. Raises OSError if the program cannot be started (missing
    executable or cwd).
    """
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    program, die_with_parent = orphans.dying_with_parent(argv, env)
    transport, protocol = await _start(
        loop.subprocess_exec(
            lambda: _Collector(loop, max_output_bytes, merge_stderr),
            *program,
            stdin=subprocess.DEVNULL if stdin_data is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            preexec_fn=die_with_parent,  # None with setpriv: then Python can vfork()
        )
    )
    pgid = transport.get_pid()  # a session leader's pid is its process group id
    ledger = orphans.current()
    try:
        if ledger is not None:  # inside the try: whatever fails from here stops the group
            ledger.record(pgid)
        if stdin_data is not None:
            stdin = transport.get_pipe_transport(0)
            if isinstance(stdin, asyncio.WriteTransport):
                stdin.write(stdin_data)
                stdin.close()  # flushes, then closes: the child sees EOF
        exited = await _wait_exit(protocol.exited, timeout, time_left)
        if not exited:
            log.warning("command deadline reached", extra={"pid": pgid, "timeout": timeout})
        await _stop_group(pgid, kill_grace)
        if not await _wait_for(protocol.exited, _REAP_SECONDS):
            log.error("process did not exit after SIGKILL", extra={"pid": pgid})
        if not await _wait_for(protocol.pipes_closed, _PIPE_DRAIN_SECONDS):
            # A process that left the group (setsid) still holds our pipes: stop reading.
            log.warning("output pipes still open after exit", extra={"pid": pgid})
    except BaseException:  # cancelled, or the wait itself failed: no survivors either way
        stopped = False
        try:
            await _stop_group(pgid, kill_grace)
            stopped = True
            await _wait_for(protocol.exited, _REAP_SECONDS)  # let the child watcher reap it
        finally:
            if not stopped:  # cancelled again during the grace period: no survivors either way
                _signal_group(pgid, signal.SIGKILL)
        raise
    finally:
        transport.close()
        if ledger is not None:
            ledger.forget(pgid)
    return CommandResult(
        exit_code=transport.get_returncode() if exited else None,
        stdout=protocol.text(_STDOUT),
        stderr="" if merge_stderr else protocol.text(_STDERR),
        timed_out=not exited,
        duration_seconds=time.monotonic() - started,
    )
