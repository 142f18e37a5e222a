"""The worker's job: take one task from queued through the agent attempts to its patches.

An interactive task takes this path only once its plan is approved; before that, the job
plans (worker/planning.py) and ends with the task awaiting approval. An `apply` task (a patch
series sent to the bot) runs no agent: `git am` and the checks (worker/apply.py), then delivery.

Three ways out besides the task's own end: its budget (worker/budget.py: what it made so far
is kept on the branch and as patches, the task ends `blocked` until Extend & resume queues it
again), a cancel request (the work is stopped, what it made so far is kept as patches, the
task ends `cancelled`) and the worker stopping (the work is stopped, the task goes back to
the queue; so does a task whose job met a database outage).

A task starts only while its repo has fewer active tasks than repos.max_parallel_tasks
(storage/repo_slots.py); otherwise its job is queued again for a little later. A job that
finds its task already active was taken over from a worker that died running it: that is
counted, and limited (worker/recovery.py take_over).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.errors import InvalidTransition
from storage.outage import is_outage
from storage.repo_slots import RepoSlotRepo
from storage.repos import Repo, RepoRepo
from storage.task_events import EventKind, record_move
from storage.task_status import ACTIVE, TERMINAL, TaskStatus
from storage.tasks import Task, TaskRepo
from worker import orphans
from worker.apply import apply_series
from worker.aside import drop
from worker.backoff import wait_or_give_up
from worker.budget import Budget, block
from worker.context import gather, recall_memories, remember_outcome
from worker.deliver import finish, keep_partial
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.forges.access import delivery_problem, git_credentials
from worker.git import GitError
from worker.implement import implement
from worker.memory_recall import Recall
from worker.payloads import RunTaskPayload
from worker.planning import needs_plan, plan
from worker.queue import JobQueue, Priority, queue_task
from worker.recovery import take_over
from worker.workspace import WorkspaceError, Worktree

log = logging.getLogger(__name__)

RUNNABLE = frozenset({TaskStatus.QUEUED}) | ACTIVE  # active: the last job died mid-task
OUTAGE_PATIENCE_SECONDS = 300.0  # how long a job waits for the database to requeue its task


async def run_task(task_id: int, deps: WorkerDeps) -> None:
    """Run a task to a terminal status, unless a cancel is requested first (then stop it).

    A status changed under us by someone else stops the job quietly.
    """
    with deps.control.watch(task_id) as cancel:  # watching before reading: no request is lost
        task = await TaskRepo(deps.pool).by_id(task_id)
        if task.status not in RUNNABLE:
            log.info("job skipped", extra={"task_key": task.key, "status": task.status.value})
            return
        if task.cancel_requested_at is not None:
            cancel.set()  # requested while the job was being picked up
        repo = await RepoRepo(deps.pool).by_id(task.repo_id)
        if task.status in ACTIVE:
            taken = await _take_over(task, repo, deps)
            if taken is None:
                return
            task = taken
        journal = TaskJournal(deps.pool, task)
        try:
            await _run(journal, repo, deps, cancel)
        except InvalidTransition as exc:
            log.info("task changed under the worker",
                     extra={"task_key": task.key, "error": str(exc)})  # fmt: skip
        except BaseException:  # the job's events are written even so; its error goes on
            with contextlib.suppress(Exception):
                await asyncio.shield(journal.flush())
            raise
        await journal.flush()  # what came after the last move (the memory written)


async def _run(journal: TaskJournal, repo: Repo, deps: WorkerDeps, cancel: asyncio.Event) -> None:
    task = journal.task
    if cancel.is_set():  # before any work: nothing to keep
        fresh = await TaskRepo(deps.pool).by_id(task.id)  # who asked, if it came by NOTIFY
        await journal.move(TaskStatus.CANCELLED, reason=_cancel_reason(fresh))
        return
    if not await _take_slot(journal, repo, deps):
        return
    budget = Budget(journal, repo, deps)
    await budget.adopt_defaults()
    problem = delivery_problem(repo, task.git_flow, deps.forge_env)
    if problem is not None:  # known now: no work is spent on a change that cannot land
        await journal.move(TaskStatus.FAILED, reason=problem)
        return
    recalling = None
    if task.kind != "apply":  # what happened before needs no worktree: recalled beside it
        recalling = asyncio.ensure_future(recall_memories(journal, deps))
    try:
        await _prepared(journal, repo, deps, budget, cancel, recalling=recalling)
    finally:
        if recalling is not None:
            await drop(recalling)


async def _prepared(
    journal: TaskJournal, repo: Repo, deps: WorkerDeps, budget: Budget, cancel: asyncio.Event,
    *, recalling: asyncio.Future[Recall | None] | None,
) -> None:  # fmt: skip
    """The task in its workspace, which is made first, and taken away at the end."""
    task = journal.task
    try:
        credentials = git_credentials(repo, deps.forge_env)
        mirror = await deps.workspace.sync_mirror(repo.name, repo.source, credentials=credentials)
        worktree = await deps.workspace.create_worktree(mirror, task.key, repo.default_branch)
    except GitError as exc:
        if recalling is not None:
            await asyncio.wait({recalling})  # its event before the task's end
        await journal.move(TaskStatus.FAILED, reason=f"could not prepare the workspace: {exc}")
        return
    await TaskRepo(deps.pool).set_branch(task.id, worktree.branch, worktree.base_commit)
    await journal.event(EventKind.WORKSPACE_READY, branch=worktree.branch,
                        base_commit=worktree.base_commit, resumed=worktree.resumed)  # fmt: skip
    try:
        work = await _work(journal, repo, worktree, deps, budget, recalling=recalling)
        if work is None:
            return
        if not await _unless_cancelled(work, cancel):
            await _stop_cancelled(journal, repo, worktree, deps)
        else:
            await remember_outcome(journal, worktree, deps)
    except asyncio.CancelledError:  # the worker is stopping; the task will be requeued
        message = f"{task.key}: work in progress"
        await asyncio.shield(_commit_agent_work(journal.task.status, repo, worktree, deps, message))
        raise
    finally:
        await asyncio.shield(deps.workspace.remove_worktree(worktree))
        # A blocked task may be resumed: its agent's sessions live in that home.
        if journal.task.status in TERMINAL - {TaskStatus.BLOCKED}:
            shutil.rmtree(deps.agent_homes / task.key, ignore_errors=True)


async def _take_over(task: Task, repo: Repo, deps: WorkerDeps) -> Task | None:
    """The worker that ran the task's job died mid-task, and PgQueuer handed its job to us.
    Kill what it left running on this host, keep what its agent wrote (committed on the
    branch), then count the takeover: the task to start over, or None (worker/recovery.py)."""
    orphans.sweep_dead()
    if task.status is TaskStatus.RUNNING:
        path = deps.workspace.worktree_path(task.key)
        if (path / ".git").exists():
            left = Worktree(path, f"agent/{task.key}", "", True,
                            deps.workspace.mirror_path(repo.name))  # fmt: skip
            deps.workspace.clear_dead_locks(path, left.mirror, left.branch)
            message = f"WIP: partial work, {task.key}: the worker running it stopped"
            try:
                await _commit_agent_work(task.status, repo, left, deps, message)
            except (GitError, WorkspaceError) as exc:
                log.warning("lost work not saved", extra={"task_key": task.key, "error": str(exc)})
    return await take_over(deps.pool, task, now=datetime.now(UTC))


async def _take_slot(journal: TaskJournal, repo: Repo, deps: WorkerDeps) -> bool:
    """Move the task to `preparing` if its repo has a slot free (repos.max_parallel_tasks;
    a task taken over holds its slot still); else queue its job again, a recheck interval
    later, and return False. Count and move are one transaction under the repo's lock."""
    task = journal.task
    async with deps.pool.acquire() as conn, conn.transaction():
        slots = RepoSlotRepo(conn)
        await slots.lock(repo.id)
        if task.status is TaskStatus.QUEUED and not await slots.free(repo.id, task.id, ACTIVE):
            later = timedelta(seconds=deps.settings.recheck_seconds)
            await JobQueue(conn).enqueue(RunTaskPayload(task_id=task.id),
                                         priority=Priority.for_task(task.priority),
                                         delay=later)  # fmt: skip
            moved = None
        else:
            moved = await record_move(conn, task, TaskStatus.PREPARING)
    extra = {"task_key": task.key, "repo": repo.name, "max_parallel": repo.max_parallel_tasks}
    if moved is None:
        log.info("task waits: its repo runs as many tasks as it may", extra=extra)
        return False
    log.info("task moved", extra={**extra, "from": task.status.value, "to": moved.status.value})
    journal.task = moved
    return True


async def _work(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps, budget: Budget, *,
    recalling: asyncio.Future[Recall | None] | None,
) -> Coroutine[Any, Any, None] | None:  # fmt: skip
    """What the task does in its worktree: apply a forwarded series, plan, or implement;
    None when the reality signal blocked it first. `recalling`: None for an `apply` task."""
    if recalling is None:  # an `apply` task, a forwarded patch series: no context, no agent
        return _apply_and_deliver(journal, repo, worktree, deps)
    context = await gather(journal, repo, worktree, deps, recalling)
    if context.blocked is not None:  # below the repo's reality threshold: no agent run
        await journal.move(TaskStatus.BLOCKED, reason=context.blocked)
        return None
    if needs_plan(journal.task):
        return plan(journal, repo, worktree, deps, budget, context=context.prompt)
    return _implement_and_deliver(journal, repo, worktree, deps, budget, context=context.prompt)


async def _implement_and_deliver(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps, budget: Budget, *,
    context: str,
) -> None:  # fmt: skip
    verdict = await implement(journal, repo, worktree, deps, budget, context=context)
    if verdict.wait is not None:  # the model API refused the run: try later, keep the work
        await wait_or_give_up(journal, deps, verdict.wait, phase="attempt")
        return
    if verdict.budget is not None:  # the work so far is on the branch; deliver it too
        commits = 0
        if await deps.workspace.commits_since_base(worktree):
            commits = await keep_partial(journal, repo, worktree, deps)
        await block(journal, verdict.budget, commits=commits, branch=worktree.branch)
        return
    if verdict.blocked:  # the work is kept: on the branch, and as patches
        commits = await keep_partial(journal, repo, worktree, deps)
        await journal.move(TaskStatus.BLOCKED, reason=verdict.reason, commits=commits,
                           branch=worktree.branch)  # fmt: skip
        return
    if not verdict.passed:
        await journal.move(TaskStatus.FAILED, reason=verdict.reason)
        return
    await journal.move(TaskStatus.DELIVERING)
    await finish(journal, repo, worktree, deps)


async def _apply_and_deliver(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps
) -> None:
    """An `apply` task: `git am` of its series and the checks (worker/apply.py), then the
    usual delivery."""
    applied = await apply_series(journal, repo, worktree, deps)
    if applied is None:  # failed: a patch did not apply, or a check failed
        return
    await journal.move(TaskStatus.DELIVERING)
    await finish(journal, repo, applied, deps)


async def _unless_cancelled(work: Coroutine[Any, Any, None], cancel: asyncio.Event) -> bool:
    """Await `work`; if `cancel` is set first, cancel it (which kills any agent or check it
    runs, process group and all) and return False."""
    if cancel.is_set():
        work.close()
        return False
    running = asyncio.ensure_future(work)
    cancelled = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({running, cancelled}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when the worker is stopping and cancels us: stop the work, then go on
        cancelled.cancel()
        if not running.done():
            running.cancel()
            await asyncio.wait({running})
    if running.cancelled():
        return False
    running.result()  # raise what the work raised
    return True


async def _stop_cancelled(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps
) -> None:
    """The cancel won: keep the partial work on the branch and as patches, then cancel."""
    task = await TaskRepo(deps.pool).by_id(journal.task.id)
    if task.status not in ACTIVE:
        return  # the task ended before the cancel took effect
    reason = _cancel_reason(task)
    commits = 0
    try:
        message = f"WIP: partial work, {reason}"
        await _commit_agent_work(task.status, repo, worktree, deps, message)
        planning = task.status is TaskStatus.PLANNING  # a plan is no work to keep
        if not planning and await deps.workspace.commits_since_base(worktree):
            commits = await keep_partial(journal, repo, worktree, deps)
    except GitError as exc:
        log.warning("partial work not saved", extra={"task_key": task.key, "error": str(exc)})
    await journal.move(TaskStatus.CANCELLED, reason=reason, commits=commits,
                       branch=worktree.branch)  # fmt: skip


async def _commit_agent_work(
    status: TaskStatus, repo: Repo, worktree: Worktree, deps: WorkerDeps, message: str
) -> None:
    """An agent stopped mid-run leaves its edits uncommitted: keep them on the task branch.
    What a stopped check leaves behind is not work; it goes with the worktree."""
    if status is TaskStatus.RUNNING:
        await deps.workspace.commit_all(worktree, message, repo.git_author_name,
                                        repo.git_author_email)  # fmt: skip


def _cancel_reason(task: Task) -> str:
    return f"cancelled by {task.cancel_requested_by or 'unknown'}"


async def requeue_interrupted(task_id: int, deps: WorkerDeps) -> None:
    """The worker is shutting down mid-task: put the task back in the queue, job and all.
    A task whose cancel was requested meanwhile is cancelled instead."""
    task = await TaskRepo(deps.pool).by_id(task_id)
    if task.status not in ACTIVE:
        return
    if task.cancel_requested_at is not None:
        await TaskJournal(deps.pool, task).move(TaskStatus.CANCELLED, reason=_cancel_reason(task))
        return
    async with deps.pool.acquire() as conn, conn.transaction():
        await queue_task(conn, task)
    log.info("task requeued after shutdown", extra={"task_key": task.key})


async def requeue_after_outage(task_id: int, deps: WorkerDeps) -> None:
    """The database went away under the task's job: once it is back, put the task in the
    queue again (a task still queued gets a new job). Tried for OUTAGE_PATIENCE_SECONDS;
    after that, the recovery schedule finds the task (worker/recovery.py)."""
    deadline, pause = time.monotonic() + OUTAGE_PATIENCE_SECONDS, 1.0
    while True:
        try:
            task = await TaskRepo(deps.pool).by_id(task_id)
            if task.status is not TaskStatus.QUEUED:
                await requeue_interrupted(task_id, deps)
                return
            async with deps.pool.acquire() as conn, conn.transaction():
                await JobQueue(conn).enqueue(RunTaskPayload(task_id=task.id),
                                             priority=Priority.for_task(task.priority))  # fmt: skip
            return
        except Exception as exc:
            if not is_outage(exc) or time.monotonic() > deadline:
                log.warning("task not requeued after the outage; the recovery will find it",
                            extra={"task_id": task_id, "error": str(exc)})  # fmt: skip
                return
        await asyncio.sleep(pause)
        pause = min(2 * pause, 10.0)


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
