"""The worker's job: take one task from queued through the agent attempts to its patches."""

from __future__ import annotations

import asyncio
import logging
import shutil

from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.errors import InvalidTransition
from storage.repos import Repo, RepoRepo
from storage.task_events import EventKind
from storage.tasks import ACTIVE, TERMINAL, TaskRepo, TaskStatus
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.git import GitError
from worker.implement import implement
from worker.patches import format_patches
from worker.queue import queue_task
from worker.workspace import Worktree

log = logging.getLogger(__name__)

RUNNABLE = frozenset({TaskStatus.QUEUED}) | ACTIVE  # active: the last job died mid-task


async def run_task(task_id: int, deps: WorkerDeps) -> None:
    """Run a task to a terminal status. A status changed under us (a cancel) stops quietly."""
    task = await TaskRepo(deps.pool).by_id(task_id)
    if task.status not in RUNNABLE:
        log.info("job skipped", extra={"task_key": task.key, "status": task.status.value})
        return
    journal = TaskJournal(deps.pool, task)
    repo = await RepoRepo(deps.pool).by_id(task.repo_id)
    try:
        await _run(journal, repo, deps)
    except InvalidTransition as exc:
        log.info("task changed under the worker", extra={"task_key": task.key, "error": str(exc)})


async def _run(journal: TaskJournal, repo: Repo, deps: WorkerDeps) -> None:
    task = journal.task
    await journal.move(TaskStatus.PREPARING)
    if task.git_flow != "patch":
        await journal.move(TaskStatus.FAILED, reason=f"delivery flow {task.git_flow!r} needs a "
                           "forge, and this repo has none configured")  # fmt: skip
        return
    try:
        mirror = await deps.workspace.sync_mirror(repo.name, repo.source)
        worktree = await deps.workspace.create_worktree(mirror, task.key, repo.default_branch)
    except GitError as exc:
        await journal.move(TaskStatus.FAILED, reason=f"could not prepare the workspace: {exc}")
        return
    await TaskRepo(deps.pool).set_branch(task.id, worktree.branch, worktree.base_commit)
    await journal.event(EventKind.WORKSPACE_READY, branch=worktree.branch,
                        base_commit=worktree.base_commit, resumed=worktree.resumed)  # fmt: skip
    try:
        verdict = await implement(journal, repo, worktree, deps)
        if not verdict.passed:
            await journal.move(TaskStatus.FAILED, reason=verdict.reason)
            return
        await journal.move(TaskStatus.DELIVERING)
        commits = await _deliver(journal, worktree, deps)
        await journal.move(TaskStatus.DONE, reason=f"{commits} commit(s) ready as patches",
                           commits=commits)  # fmt: skip
    finally:
        await asyncio.shield(deps.workspace.remove_worktree(worktree))
        if journal.task.status in TERMINAL:
            shutil.rmtree(deps.agent_homes / task.key, ignore_errors=True)


async def _deliver(journal: TaskJournal, worktree: Worktree, deps: WorkerDeps) -> int:
    """`patch` flow: the format-patch series and combined.mbox, stored as artifacts."""
    files = await format_patches(worktree.path, worktree.base_commit)
    async with deps.pool.acquire() as conn, conn.transaction():
        artifacts = ArtifactRepo(conn)
        await artifacts.replace_patches(journal.task.id)
        for f in files:
            kind = ArtifactKind.MBOX if f.filename.endswith(".mbox") else ArtifactKind.PATCH
            await artifacts.put(journal.task.id, kind, f.filename, f.content)
    commits = sum(1 for f in files if f.filename.endswith(".patch"))
    await TaskRepo(deps.pool).set_head(journal.task.id, await deps.workspace.head(worktree))
    mbox_bytes = sum(len(f.content) for f in files if f.filename.endswith(".mbox"))
    await journal.event(EventKind.PATCHES_GENERATED, commits=commits,
                        files=[f.filename for f in files], mbox_bytes=mbox_bytes)  # fmt: skip
    return commits


async def requeue_interrupted(task_id: int, deps: WorkerDeps) -> None:
    """The worker is shutting down mid-task: put the task back in the queue, job and all."""
    task = await TaskRepo(deps.pool).by_id(task_id)
    if task.status not in ACTIVE:
        return
    async with deps.pool.acquire() as conn, conn.transaction():
        await queue_task(conn, task)
    log.info("task requeued after shutdown", extra={"task_key": task.key})


async def fail_crashed(task_id: int, deps: WorkerDeps, error: str) -> None:
    """An unexpected error escaped the pipeline: the task must not stay `running` forever."""
    task = await TaskRepo(deps.pool).by_id(task_id)
    if task.status in TERMINAL:
        return
    try:
        await TaskJournal(deps.pool, task).move(
            TaskStatus.FAILED, reason=f"internal error: {error}"
        )
    except InvalidTransition:
        log.warning("crashed task could not be failed", extra={"task_key": task.key})
