"""Run the real `git` binary from the event loop, with a fixed, explicit environment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker import orphans

log = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 2000

# Variables that would point git at some other repository or index than the one we ask for,
# e.g. when DevServer itself runs inside a git hook.
_REPOSITORY_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
)

# scheme://user:password@host -> scheme://***@host (also user-only tokens: scheme://token@host)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def mask_credentials(text: str) -> str:
    """Hide the userinfo part of any URL in `text`."""
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)


class GitError(Exception):
    """A git command failed. Carries the masked argv, the exit code and the stderr tail."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv: tuple[str, ...] = tuple(mask_credentials(arg) for arg in argv)
        self.returncode = returncode
        self.stderr = mask_credentials(stderr)[-STDERR_TAIL_CHARS:].strip()
        super().__init__(f"{' '.join(self.argv)} exited with {returncode}: {self.stderr}")


@dataclass(frozen=True, slots=True)
class GitResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """stdout decoded, with surrounding whitespace stripped."""
        return self.stdout.decode("utf-8", errors="replace").strip()


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The inherited environment, made non-interactive and locale-stable for parsing."""
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    if extra:
        env.update(extra)
    return env


async def run_git(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    time_limit: float | None = None,
) -> GitResult:
    """Run `git <args>`; raise GitError on a non-zero exit unless check is False.

    `env` adds to (or overrides) the base environment from git_env(). After `time_limit`
    seconds, or on cancellation, the process is killed before the exception propagates.

    A command given a `time_limit` (one that talks to the network or may run long: fetch,
    push, ls-remote, am, gc) dies with the worker, through orphans.dying_with_parent: none
    of a dead worker's goes on beside the next one's in the same mirror. A short local one
    (rev-parse, diff, commit, checkout ...) is started directly, about 1 ms sooner than
    through the wrapper (bench/RESULTS.md); should the worker die under it, it ends on its
    own long before another worker may take the task over (after the heartbeat timeout).
    """
    argv = ("git", *args)
    environment = git_env(env)
    program, die_with_parent = list(argv), None
    if time_limit is not None:
        program, die_with_parent = orphans.dying_with_parent(argv, environment)
    proc = subprocess.Popen(  # noqa: ASYNC220  # started here, awaited below
        program, cwd=cwd, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,  # noqa: PLW1509  # None through setpriv: then vfork()
    )  # fmt: skip
    try:
        async with asyncio.timeout(time_limit):
            stdout, stderr_bytes = await _output(proc)
            returncode = await _exit(proc)
    except TimeoutError:
        await _kill(proc)
        log.warning("git timed out", extra={"argv": [mask_credentials(a) for a in argv]})
        raise GitError(argv, -1, f"timed out after {time_limit} s") from None
    except BaseException:
        await _kill(proc)
        raise
    stderr = stderr_bytes.decode("utf-8", errors="replace")
    if check and returncode != 0:
        raise GitError(argv, returncode, stderr)
    return GitResult(returncode, stdout, stderr)


# The child is read and awaited by the event loop itself, not through asyncio's subprocess
# transports: those cost twice the worker's CPU per command (bench/RESULTS.md), and a task
# runs a dozen git commands.


async def _output(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """stdout and stderr, read as they come (neither pipe can fill up) until both end."""
    assert proc.stdout is not None  # noqa: S101  # PIPE above
    assert proc.stderr is not None  # noqa: S101
    loop = asyncio.get_running_loop()
    chunks: dict[int, list[bytes]] = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    open_fds = set(chunks)
    ended: asyncio.Future[None] = loop.create_future()

    def readable(fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # as good as the end
        if data:
            chunks[fd].append(data)
            return
        loop.remove_reader(fd)
        open_fds.discard(fd)
        if not open_fds and not ended.done():
            ended.set_result(None)

    for fd in chunks:
        os.set_blocking(fd, False)
        loop.add_reader(fd, readable, fd)
    try:
        await ended
    finally:
        for fd in open_fds:
            loop.remove_reader(fd)
        proc.stdout.close()
        proc.stderr.close()
    out, err = chunks.values()
    return b"".join(out), b"".join(err)


async def _exit(proc: subprocess.Popen[bytes]) -> int:
    """The child's exit status, once it has exited: watched through a pidfd where Linux has
    them; else waited for in a thread."""
    returncode = proc.poll()
    if returncode is not None:
        return returncode
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfds (not Linux, before 5.3, a sandbox)
        return await asyncio.to_thread(proc.wait)
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    loop.add_reader(pidfd, _settle, exited)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return proc.wait()  # reaps it; it has exited


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the child and reap it. Shielded, so that a second cancellation cannot leave a
    zombie behind."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.shield(_exit(proc))
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
