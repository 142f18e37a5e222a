from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.procs import wait_gone
from worker.processes import join_output, run_command, tail

ROOT = Path(__file__).resolve().parents[2]
FAKES = ROOT / "tests" / "fakes" / "agents"
ENV = {"PATH": os.environ.get("PATH", os.defpath)}


def pids_in(pid_file: Path) -> list[int]:
    """The pids a script wrote as "<pid> <pid>", or [] while it has not finished writing."""
    try:
        words = pid_file.read_text().split()
    except FileNotFoundError:
        return []
    return [int(word) for word in words] if len(words) == 2 else []


async def read_pids(pid_file: Path, within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if pids := pids_in(pid_file):
            return pids
        await asyncio.sleep(0.02)
    raise AssertionError(f"{pid_file} was never written")


async def test_captures_stdout_stderr_and_exit_code(tmp_path: Path) -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = await run_command([sys.executable, "-c", script], cwd=tmp_path, env=ENV, timeout=10)
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert not result.timed_out
    assert result.duration_seconds < 10


async def test_runs_in_cwd_with_only_the_given_environment(tmp_path: Path) -> None:
    script = "import os; print(os.getcwd()); print(sorted(os.environ))"
    result = await run_command(
        [sys.executable, "-c", script], cwd=tmp_path, env={"ONLY": "1"}, timeout=10
    )
    cwd, names = result.stdout.splitlines()
    assert cwd == str(tmp_path)
    assert "'ONLY'" in names
    assert "'PATH'" not in names


async def test_feeds_stdin(tmp_path: Path) -> None:
    script = "import sys; sys.stdout.write(sys.stdin.read().upper())"
    result = await run_command(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV, timeout=10, stdin_data=b"hello"
    )
    assert result.stdout == "HELLO"


async def test_stdin_is_empty_when_not_given(tmp_path: Path) -> None:
    result = await run_command(["cat"], cwd=tmp_path, env=ENV, timeout=10)
    assert result.exit_code == 0
    assert result.stdout == ""


async def test_merge_stderr_interleaves(tmp_path: Path) -> None:
    result = await run_command(
        ["/bin/sh", "-c", "echo one; echo two >&2; echo three"],
        cwd=tmp_path,
        env=ENV,
        timeout=10,
        merge_stderr=True,
    )
    assert result.stdout == "one\ntwo\nthree\n"
    assert result.stderr == ""


async def test_timeout_kills_the_group_including_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    script = f"sleep 300 & echo $$ $! > {pid_file}; sleep 300"
    result = await run_command(
        ["/bin/sh", "-c", script], cwd=tmp_path, env=ENV, timeout=1, kill_grace=1
    )
    assert result.timed_out
    assert result.exit_code is None
    assert result.duration_seconds < 4
    shell_pid, grandchild_pid = await read_pids(pid_file)
    assert await wait_gone(shell_pid)
    assert await wait_gone(grandchild_pid)


async def test_sigterm_ignored_escalates_to_sigkill(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    result = await run_command(
        [sys.executable, str(FAKES / "hang.py"), str(pid_file), "--ignore-term"],
        cwd=tmp_path,
        env=ENV,
        timeout=1,
        kill_grace=0.5,
    )
    assert result.timed_out
    assert result.exit_code is None
    assert "working on it" in result.stdout
    for pid in await read_pids(pid_file):
        assert await wait_gone(pid)


async def test_time_left_stops_the_command_before_its_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    asked: list[float] = []
    end = time.monotonic() + 1.0

    async def time_left() -> float:
        asked.append(time.monotonic())
        return end - time.monotonic()

    result = await run_command(
        [sys.executable, str(FAKES / "hang.py"), str(pid_file)], cwd=tmp_path, env=ENV,
        timeout=60, time_left=time_left,
    )  # fmt: skip
    stopped = time.monotonic()
    assert result.timed_out
    assert result.exit_code is None
    assert end <= stopped < end + 1.5  # SIGTERM ends it at once
    assert len(asked) >= 2  # at the start, and again when the time it gave ran out
    for pid in await read_pids(pid_file):
        assert await wait_gone(pid)


async def test_time_left_raised_meanwhile_lets_the_command_finish(tmp_path: Path) -> None:
    end = time.monotonic() + 0.5
    raised = False

    async def time_left() -> float:
        nonlocal end, raised
        if time.monotonic() >= end and not raised:  # raised just as the time ran out
            end, raised = end + 1.5, True
        return end - time.monotonic()

    script = "import time; time.sleep(1.0); print('finished')"
    result = await run_command(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV, timeout=30, time_left=time_left
    )
    assert not result.timed_out
    assert result.exit_code == 0
    assert result.stdout == "finished\n"
    assert raised


async def test_no_time_left_means_the_own_timeout(tmp_path: Path) -> None:
    async def no_limit() -> None:
        return None

    result = await run_command(
        ["/bin/sh", "-c", "sleep 300"], cwd=tmp_path, env=ENV, timeout=0.5, time_left=no_limit
    )
    assert result.timed_out
    assert result.duration_seconds < 3


async def test_cancellation_kills_the_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    script = f"sleep 300 & echo $$ $! > {pid_file}; sleep 300"
    task = asyncio.create_task(
        run_command(["/bin/sh", "-c", script], cwd=tmp_path, env=ENV, timeout=60, kill_grace=1)
    )
    pids = await read_pids(pid_file)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)  # a hang fails here, not at the suite's timeout
    for pid in pids:
        assert await wait_gone(pid)


def started_in(cwd: Path) -> bool:
    """Whether some process runs in `cwd` (the child has been forked and has exec'd)."""
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if entry.isdigit() and os.readlink(f"/proc/{entry}/cwd") == str(cwd):
                return True
    return False


async def test_cancellation_while_the_command_starts_kills_the_group(tmp_path: Path) -> None:
    # Cancelled after the fork but before asyncio has connected the pipes: asyncio's own
    # clean-up kills only the first process and then waits for pipes the grandchild holds.
    pid_file = tmp_path / "pids"
    script = f"sleep 300 & echo $$ $! > {pid_file}; sleep 300"
    task = asyncio.create_task(
        run_command(["/bin/sh", "-c", script], cwd=tmp_path, env=ENV, timeout=60, kill_grace=1)
    )
    while not started_in(tmp_path):  # noqa: ASYNC110 (one loop step at a time: pipes stay unconnected)
        await asyncio.sleep(0)
    deadline = time.monotonic() + 5
    while not pids_in(pid_file) and time.monotonic() < deadline:
        time.sleep(0.01)  # noqa: ASYNC251 (blocks the loop on purpose: the start cannot finish)
    pids = pids_in(pid_file)
    assert pids
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)
    for pid in pids:
        assert await wait_gone(pid)


async def test_background_grandchild_holding_pipes_does_not_hang(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    # The shell exits at once; its background sleep inherited stdout and keeps it open.
    script = f"sleep 300 & echo $$ $! > {pid_file}; echo done"
    started = time.monotonic()
    result = await run_command(
        ["/bin/sh", "-c", script], cwd=tmp_path, env=ENV, timeout=30, kill_grace=1
    )
    assert time.monotonic() - started < 5
    assert result.exit_code == 0
    assert not result.timed_out
    assert result.stdout == "done\n"
    for pid in await read_pids(pid_file):
        assert await wait_gone(pid)


async def test_escaped_grandchild_holding_pipes_does_not_hang(tmp_path: Path) -> None:
    # A grandchild in a new session is out of reach of the group kill but holds stdout.
    script = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
    )
    started = time.monotonic()
    result = await run_command(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV, timeout=30, kill_grace=0.5
    )
    escaped_pid = int(result.stdout.split()[0])
    try:
        assert time.monotonic() - started < 5
        assert result.exit_code == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(escaped_pid, signal.SIGKILL)


async def test_output_over_the_cap_keeps_the_tail(tmp_path: Path) -> None:
    script = "for i in range(100_000): print(f'line {i}')"
    result = await run_command(
        [sys.executable, "-c", script], cwd=tmp_path, env=ENV, timeout=10, max_output_bytes=1000
    )
    assert result.exit_code == 0
    assert len(result.stdout.encode()) <= 1000
    assert result.stdout.endswith("line 99998\nline 99999\n")
    assert "line 0\n" not in result.stdout


async def test_invalid_utf8_is_replaced(tmp_path: Path) -> None:
    script = "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end')"
    result = await run_command([sys.executable, "-c", script], cwd=tmp_path, env=ENV, timeout=10)
    assert result.stdout == "ok \ufffd\ufffd end"


async def test_missing_program_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_command([str(tmp_path / "nope")], cwd=tmp_path, env=ENV, timeout=5)


def test_tail_keeps_the_last_characters() -> None:
    assert tail("abcdef", 3) == "def"
    assert tail("ab", 5) == "ab"
    assert tail("abc", 0) == ""


def test_join_output() -> None:
    assert join_output("out", "err") == "out\nerr"
    assert join_output("out\n", "err") == "out\nerr"
    assert join_output("", "err") == "err"
    assert join_output("out", "") == "out"


async def test_missing_program_on_the_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_command(["devserver-no-such-program"], cwd=tmp_path, env=ENV, timeout=5)


PARENT = """
import asyncio, sys
from pathlib import Path
from worker.git import run_git
from worker.processes import run_command, watch_children_by_pidfd

async def main():
    watch_children_by_pidfd()
    here = Path(sys.argv[1])
    done = await run_command(["sh", "-c", "exit 7"], cwd=here, env={"PATH": "/bin"}, timeout=9)
    assert done.exit_code == 7, done  # children watched as the worker watches them
    await asyncio.gather(
        run_command(["sleep", "300"], cwd=here, env={"PATH": "/usr/bin:/bin"}, timeout=300),
        run_git("-c", "alias.wait=!sleep 300", "wait", cwd=here, time_limit=300),
    )

asyncio.run(main())
"""


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


def running(pid: int) -> str:
    """The name of the program `pid` runs now ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def started(pids: list[int]) -> bool:
    """Whether each child runs its command: past setpriv, so that its death signal is set (a
    child forked a moment before its parent dies is the ledger's to sweep, not the kernel's)."""
    return len(pids) == 2 and all(running(pid) in ("sleep", "git") for pid in pids)


async def test_commands_and_git_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    # The first process of each: what the kernel kills (PR_SET_PDEATHSIG through setpriv).
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PARENT, str(tmp_path), cwd=ROOT, env={**os.environ, **ENV}
    )
    deadline = time.monotonic() + 20
    children: list[int] = []
    while not started(children) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        children = children_of(parent.pid)
    assert started(children), [(pid, running(pid)) for pid in children]
    parent.kill()
    await parent.wait()
    for pid in children:
        assert await wait_gone(pid)
