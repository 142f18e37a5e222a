"""run_git on the real git binary: output of any size on both streams, exit codes, the
time limit and cancellation (the process is killed and reaped, never left behind)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.gitrepos import git, make_repo
from worker.git import GitError, run_git


def _alive(pid: int) -> bool:
    """Whether `pid` is still a process of ours (a zombie counts: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children() -> set[int]:
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return {int(child) for child in listing.read().split()}


async def test_output_and_exit_code(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    result = await run_git("rev-parse", "HEAD", cwd=repo)
    head = git(repo, "rev-parse", "HEAD")
    assert (result.returncode, result.text, result.stderr) == (0, head, "")
    failed = await run_git("rev-parse", "--verify", "no-such-ref", cwd=repo, check=False)
    assert failed.returncode == 128
    assert "fatal" in failed.stderr
    with pytest.raises(GitError) as raised:
        await run_git("rev-parse", "--verify", "no-such-ref", cwd=repo)
    assert raised.value.returncode == 128
    assert raised.value.argv == ("git", "rev-parse", "--verify", "no-such-ref")


async def test_much_output_on_both_streams_at_once_is_read_whole(tmp_path: Path) -> None:
    """More than a pipe holds (64 KiB) on stdout and stderr together: neither may block."""
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    script = "head -c 300000 /dev/zero | tr '\\0' o; head -c 200000 /dev/zero | tr '\\0' e >&2"
    result = await run_git("-c", f"alias.both=!{script}", "both", cwd=repo)
    assert result.stdout == b"o" * 300000
    assert result.stderr == "e" * 200000


async def test_a_missing_directory_raises_as_popen_does(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await run_git("status", cwd=tmp_path / "missing")


async def test_the_time_limit_kills_the_command(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    before = _children()
    with pytest.raises(GitError, match=r"timed out after 0\.5 s") as raised:
        await run_git("-c", "alias.wait=!sleep 30", "wait", cwd=repo, time_limit=0.5)
    assert raised.value.returncode == -1
    assert _children() <= before  # killed and reaped: not even a zombie is left


async def test_cancelling_kills_and_reaps_the_command(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.txt": "a\n"})
    before = _children()
    running = asyncio.ensure_future(run_git("-c", "alias.wait=!sleep 30", "wait", cwd=repo))
    for _ in range(200):
        started = _children() - before
        if started:
            break
        await asyncio.sleep(0.01)
    [pid] = started
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not _alive(pid)
