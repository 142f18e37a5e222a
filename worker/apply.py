"""An `apply` task: a patch series sent to the bot (its `source` artifact, checked there by
bot/series.py) is applied instead of an agent making the change, then checked.

`git am --3way` applies it onto the task branch in the task's worktree. The commits keep
their original authors (and author dates, messages); the committer is the repo's identity,
with hooks off and no signing. A patch that does not apply ends the task `failed`, naming
the patch and the conflicting files, with the branch back where it was. Then the repo's
checks run once: with no agent to fix a failure, a failed check fails the task with the
check's tail. What passes goes on to the usual delivery (worker/deliver.py), whose
preflight checks the committer of these commits, not their authors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path

from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.repos import Repo
from storage.task_events import EventKind
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from worker.agents.environment import agent_environment
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.git import GitError, run_git
from worker.processes import tail
from worker.prompts import verify_commands
from worker.verify import VerifyStep, run_verify
from worker.workspace import Worktree

AM_SECONDS = 300.0
REASON_TAIL = 1200  # characters of a failed check's output in the task's reason
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false")
_FAILED_AT = re.compile(r"^Patch failed at (\d+) (.*)$", re.MULTILINE)
_FILE_ERRORS = re.compile(  # when no 3-way merge was possible, nothing is left unmerged
    r"^error: (?:patch failed: (.+):\d+|(.+): (?:patch does not apply|does not exist in index"
    r"|already exists in (?:index|working directory)|does not match index)"
    r"|sha1 information is lacking or useless \((.+)\)\.)$",
    re.MULTILINE,
)


class ApplyFailed(Exception):
    """The series did not apply; the message says which patch and which files."""


async def apply_series(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps
) -> Worktree | None:
    """Apply the task's series and run the checks. Returns the worktree to deliver (the task
    is then `running` or `verifying`), or None when the task failed."""
    series = await _source(deps, journal.task.id)
    if series is None:
        await journal.move(TaskStatus.FAILED, reason="the task has no patch series to apply")
        return None
    fresh = await _from_upstream(worktree, repo, deps)
    if fresh.base_commit != worktree.base_commit:
        await TaskRepo(deps.pool).set_branch(journal.task.id, fresh.branch, fresh.base_commit)
    worktree = fresh
    await journal.move(TaskStatus.RUNNING, reason="applying the series with git am --3way")
    home = deps.agent_homes / journal.task.key
    home.mkdir(parents=True, exist_ok=True)
    source = home / "source.mbox"
    await asyncio.to_thread(source.write_bytes, series)
    try:
        await am(worktree.path, source, name=repo.git_author_name, email=repo.git_author_email)
    except ApplyFailed as exc:
        await journal.move(TaskStatus.FAILED, reason=f"{exc}; nothing was applied")
        return None
    commits = await deps.workspace.commits_since_base(worktree)
    if not commits:
        reason = f"every patch of the series is already in {repo.default_branch}: nothing to apply"
        await journal.move(TaskStatus.FAILED, reason=reason)
        return None
    if not await _verify(journal, repo, worktree, home):
        return None
    return worktree


async def am(worktree: Path, mbox: Path, *, name: str, email: str) -> None:
    """`git am --3way` of `mbox` in `worktree`, committed as name <email>; on failure the
    branch is left as it was and ApplyFailed names the patch and the files."""
    committer = {"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
    identity = ("-c", f"user.name={name}", "-c", f"user.email={email}")
    try:
        result = await run_git(*identity, *_NO_HOOKS, "am", "--3way", "--no-gpg-sign",
                               str(mbox), cwd=worktree, env=committer, check=False,
                               time_limit=AM_SECONDS)  # fmt: skip
    except GitError as exc:  # timed out
        await _abort(worktree)
        raise ApplyFailed(f"git am did not finish: {exc.stderr}") from exc
    except BaseException:  # stopped (the task cancelled): the branch goes back as it was
        await asyncio.shield(_abort(worktree))
        raise
    if result.returncode == 0:
        return
    output = f"{result.stdout.decode('utf-8', 'replace')}\n{result.stderr}"
    unmerged = await run_git("diff", "--name-only", "--diff-filter=U", cwd=worktree, check=False)
    files = dict.fromkeys([*unmerged.text.splitlines(), *_named(output)])
    await _abort(worktree)
    raise ApplyFailed(_failure(output, list(files)))


def _named(output: str) -> list[str]:
    """The files git am's errors name."""
    return [next(g for g in m.groups() if g) for m in _FILE_ERRORS.finditer(output)]


def _failure(output: str, files: list[str]) -> str:
    at = _FAILED_AT.search(output)
    which = f'patch {int(at.group(1))} "{at.group(2).strip()}"' if at else "the series"
    if files:
        return f"{which} does not apply: conflicts in {', '.join(files[:20])}"
    lines = output.strip().splitlines()
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    why = (errors or lines[-1:] or ["no reason given"])[0]
    return f"{which} does not apply: {why[:300]}"


async def _abort(worktree: Path) -> None:
    await run_git(*_NO_HOOKS, "am", "--abort", cwd=worktree, check=False)


async def _source(deps: WorkerDeps, task_id: int) -> bytes | None:
    artifacts = ArtifactRepo(deps.pool)
    sources = [a for a in await artifacts.for_task(task_id) if a.kind is ArtifactKind.SOURCE]
    if not sources:
        return None
    return await artifacts.content(task_id, sources[0].filename)


async def _from_upstream(worktree: Worktree, repo: Repo, deps: WorkerDeps) -> Worktree:
    """A retried task applies the series afresh: its branch goes back to the fresh default
    branch (what an earlier run applied is on it already)."""
    if not worktree.resumed:
        return worktree
    upstream = f"refs/remotes/origin/{repo.default_branch}"
    try:
        base = (await run_git("rev-parse", "--verify", f"{upstream}^{{commit}}",
                              cwd=worktree.path)).text  # fmt: skip
    except GitError:
        return worktree
    await deps.workspace.discard_changes(worktree, to=base)
    return dataclasses.replace(worktree, base_commit=base)


async def _verify(journal: TaskJournal, repo: Repo, worktree: Worktree, home: Path) -> bool:
    """The repo's checks, once; a failure fails the task with the check's tail."""
    steps = [VerifyStep(name, command) for name, command in verify_commands(repo)]
    if journal.task.skip_verify or not steps:
        await journal.event(EventKind.VERIFY_PASSED, attempt=1, steps=[], skipped=True)
        return True
    await journal.move(TaskStatus.VERIFYING)
    await journal.event(EventKind.VERIFY_STARTED, attempt=1, steps=[s.name for s in steps])
    result = await run_verify(steps, cwd=worktree.path, env=agent_environment(home),
                              timeout_per_step=repo.verify_timeout_seconds)  # fmt: skip
    failed = result.failed_step
    if failed is None:
        await journal.event(EventKind.VERIFY_PASSED, attempt=1,
                            steps=[s.name for s in result.steps])  # fmt: skip
        return True
    await journal.event(EventKind.VERIFY_FAILED, attempt=1, step=failed.name,
                        exit_code=failed.exit_code, timed_out=failed.timed_out,
                        tail=tail(failed.output_tail, 1500))  # fmt: skip
    how = "timed out" if failed.timed_out else f"exited with {failed.exit_code}"
    output = tail(failed.output_tail, REASON_TAIL).strip() or "(no output)"
    await journal.move(TaskStatus.FAILED, reason=f"the series applies, but check {failed.name} "
                       f"({failed.command}) {how}:\n{output}")  # fmt: skip
    return False
