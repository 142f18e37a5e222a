"""The ledger of the commands each worker runs (worker/orphans.py): the process groups of a
worker that was killed are killed by the next sweep; those of a live worker are left alone,
and so is a group whose id now belongs to someone else."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.procs import is_gone
from tests.worker.running import wait_until
from worker.orphans import Ledger, group_members, sweep

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# A worker in miniature: it keeps a ledger, runs a command that starts a child of its own in
# a session of their own, records the group, prints its id, and waits to be killed.
WORKER = """
import subprocess, sys, time
from pathlib import Path
from worker.orphans import Ledger
ledger = Ledger(Path(sys.argv[1]), "host:1:dead")
ledger.open()
inner = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(60)"
command = subprocess.Popen([sys.executable, "-c", inner, *sys.argv[2:]], start_new_session=True)
ledger.record(command.pid)
print(command.pid, flush=True)
time.sleep(60)
"""


async def _members(pgid: int, count: int) -> list[int]:
    async def started() -> bool:
        return len(group_members(pgid)) == count

    await wait_until(started, f"{count} processes in group {pgid}", within=10)
    return group_members(pgid)


def _sleeper() -> subprocess.Popen[bytes]:
    """A command in a session of its own, as processes.run_command starts one."""
    return subprocess.Popen(SLEEPER, start_new_session=True)


def _worker(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(root), *SLEEPER], cwd=ROOT,
                            stdout=subprocess.PIPE)  # fmt: skip


async def test_the_groups_of_a_killed_worker_are_swept_and_no_others(tmp_path: Path) -> None:
    root = tmp_path / "run"
    worker = _worker(root)
    live = Ledger(root, "host:2:live")
    live.open()
    kept, reused = _sleeper(), _sleeper()
    groups = [kept.pid, reused.pid]
    try:
        live.record(kept.pid)
        assert worker.stdout is not None
        line = await asyncio.to_thread(worker.stdout.readline)
        pgid = int(line)
        groups.append(pgid)
        doomed = await _members(pgid, 2)
        assert sweep(root) == []  # its worker lives: nothing is touched

        # A record of a dead worker naming a group id that now belongs to another session.
        (root / "host:3:gone.lock").touch()
        (root / "host:3:gone").mkdir()
        (root / "host:3:gone" / str(reused.pid)).write_text("1")

        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert sweep(root) == [pgid]
        for pid in doomed:
            await wait_until(_gone(pid), f"{pid} gone", within=5)
        assert kept.poll() is None  # the live worker's command runs on
        assert reused.poll() is None  # not ours any more
        assert sorted(p.name for p in root.iterdir()) == ["host:2:live", "host:2:live.lock"]
    finally:
        live.close()
        worker.kill()
        for group in groups:  # whatever a failed assertion left running
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        for process in (worker, kept, reused):
            process.wait(timeout=10)
        if worker.stdout is not None:
            worker.stdout.close()


def _gone(pid: int) -> Callable[[], Awaitable[bool]]:
    async def gone() -> bool:
        return is_gone(pid)

    return gone
