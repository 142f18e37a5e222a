"""Run the real `git` binary as an asyncio subprocess, with a fixed, explicit environment."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
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
    proc = await asyncio.create_subprocess_exec(
        *program,
        cwd=cwd,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,  # None through setpriv: then Python can vfork()
    )
    try:
        async with asyncio.timeout(time_limit):
            stdout, stderr_bytes = await proc.communicate()
    except TimeoutError:
        await _kill(proc)
        log.warning("git timed out", extra={"argv": [mask_credentials(a) for a in argv]})
        raise GitError(argv, -1, f"timed out after {time_limit} s") from None
    except BaseException:
        await _kill(proc)
        raise
    stderr = stderr_bytes.decode("utf-8", errors="replace")
    returncode = proc.returncode if proc.returncode is not None else -1
    if check and returncode != 0:
        raise GitError(argv, returncode, stderr)
    return GitResult(returncode, stdout, stderr)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        # Shielded so that a second cancellation cannot leave a zombie behind.
        await asyncio.shield(proc.wait())
