"""The git side of delivery: push a task's commits, and rebase them onto a fresh upstream.

Pushes run from the task's worktree to the mirror's `origin` (the repo's source). A forge
token reaches git only through the environment (http.extraHeader via GIT_CONFIG_*), never
through argv or a URL, and never the agent. Nothing here force-pushes: a rejected push is
reported as such, so upstream work is never overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from worker.git import GitError, run_git

PUSH_SECONDS = 300.0
_COMMIT_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false")
_REJECTED = ("[rejected]", "non-fast-forward", "fetch first", "stale info")


class PushRejected(Exception):
    """The remote has commits the pushed branch does not (someone pushed meanwhile)."""


class RebaseConflict(Exception):
    def __init__(self, upstream: str, files: list[str]) -> None:
        self.files = files
        names = ", ".join(files) if files else "(git named no file)"
        super().__init__(f"rebasing onto {upstream} conflicts in: {names}")


async def push(worktree: Path, ref: str, *, credentials: Mapping[str, str]) -> None:
    """Push HEAD to `ref` (e.g. refs/heads/agent/WEB-3) of origin, fast-forward only."""
    result = await run_git(
        "-c", "core.hooksPath=/dev/null", "push", "--porcelain", "origin", f"HEAD:{ref}",
        cwd=worktree, env=credentials, check=False, time_limit=PUSH_SECONDS,
    )  # fmt: skip
    if result.returncode == 0:
        return
    text = f"{result.stdout.decode('utf-8', errors='replace')}\n{result.stderr}"
    if any(marker in text for marker in _REJECTED):
        raise PushRejected(f"the remote's {ref.removeprefix('refs/heads/')} has commits this "
                           "task does not; nothing was overwritten")  # fmt: skip
    raise GitError(("git", "push", "origin", f"HEAD:{ref}"), result.returncode, text)


async def rebase(worktree: Path, upstream: str, *, name: str, email: str) -> None:
    """Replay the branch's own commits onto `upstream` as `name <email>` (the committer).

    On a conflict the rebase is aborted (the branch is as it was) and RebaseConflict names
    the conflicting files."""
    identity = {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    result = await run_git(
        "-c", f"user.name={name}", "-c", f"user.email={email}", *_COMMIT_CONFIG,
        "rebase", "--quiet", upstream, cwd=worktree, env=identity, check=False,
    )  # fmt: skip
    if result.returncode == 0:
        return
    conflicted = await run_git("diff", "--name-only", "--diff-filter=U", "-z", cwd=worktree,
                               check=False)  # fmt: skip
    files = sorted(n for n in conflicted.stdout.decode("utf-8", "replace").split("\0") if n)
    await run_git("rebase", "--abort", cwd=worktree, check=False)
    if not files:  # not a conflict: some other failure
        raise GitError(("git", "rebase", upstream), result.returncode, result.stderr)
    raise RebaseConflict(upstream.removeprefix("refs/remotes/origin/"), files)


async def remote_url(worktree: Path) -> str:
    result = await run_git("config", "--get", "remote.origin.url", cwd=worktree)
    return result.text
