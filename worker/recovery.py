"""Recovery of tasks whose job died: requeued, or failed with the reason; never left active.

What PgQueuer does by itself: a worker that dies mid-job (crash, SIGKILL, host lost) leaves
its job row `picked`, and its heartbeat stops. The next dequeue of any worker takes a picked
job whose heartbeat is older than the heartbeat timeout (WORKER_HEARTBEAT_SECONDS) over, and
jobs.run_task finds its task still active. It calls take_over() here, which counts that as a
recovery too: the task starts over from `preparing` (on its branch, with what the lost run
left in the worktree committed), and a task that took its worker down MAX_RECOVERIES times
since it last ended (an agent that exhausts memory each time, so the OOM killer takes the
worker with it) fails, saying so, instead of taking down one worker after another.

What it does not cover, and this does: an active (or queued) task with no job that will
ever run it. Its job row is gone (deleted with status `canceled` when a stopping worker
interrupted it but could not requeue the task, e.g. the database was away; or deleted by
hand) or held as `failed` (the job raised before moving the task on, and jobs.fail_crashed
could not fail it either). Such a task is queued again with a new job, at most
MAX_RECOVERIES times since it last ended (takeovers count too); the next time it fails,
saying why. A task whose cancel was requested is cancelled.

Never against a live worker: only tasks untouched for the grace period are looked at; each
is re-checked under a row lock; and the round is skipped while live workers (the `workers`
table) report more running tasks than there are run_task jobs with a fresh heartbeat, which
means some worker runs a task whose job row is missing, and we cannot tell which. (A
takeover trusts PgQueuer's job heartbeat alone: a worker whose event loop stalled for longer
than WORKER_HEARTBEAT_SECONDS would look dead. Keep that timeout well above any stall.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from storage.db import Executor
from storage.housekeeping import HousekeepingRepo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_runs import RunOutcome, TaskRunRepo
from storage.task_status import ACTIVE, TaskStatus
from storage.tasks import Task
from storage.workers import WorkerRepo
from worker.deps import Pool
from worker.payloads import RunTaskPayload
from worker.queue import JobQueue, Priority, queue_task

log = logging.getLogger(__name__)

# Requeues or takeovers after a lost worker, per run of a task (a /retry starts the count over).
MAX_RECOVERIES = 2
RECOVERABLE = ACTIVE | {TaskStatus.QUEUED}  # a queued task needs a job as much
LOST_RUN = "worker_lost"  # error_class of an agent run whose worker died under it


@dataclass(slots=True)
class Recovery:
    """What one round did, by task key."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    skipped: bool = False  # a live worker runs a task without a job row: nothing was done


def lost_reason(status: TaskStatus, recovered: int) -> str:
    """Why a task fails after its job was lost once more than it may be recovered."""
    return (f"{_lost(status)} {_times(recovered + 1)}; it was queued again "
            f"{_times(recovered)} already, so it is not run again (/retry runs it)")  # fmt: skip


def takeover_reason(status: TaskStatus, recovered: int) -> str:
    """Why a task fails when its worker died under it once more than it may be recovered."""
    return (f"{_lost(status)} {_times(recovered + 1)}, the last time while it was "
            f"{status.value}; it was started again {_times(recovered)} already, so it is not "
            "run again (/retry runs it)")  # fmt: skip


async def take_over(pool: Pool, task: Task, *, now: datetime) -> Task | None:
    """jobs.run_task found `task` active: the worker that ran its job died mid-task. Close
    the agent runs it left open, then count the takeover (a task_recovered event with
    "takeover": true) and return the task to start over; or, past MAX_RECOVERIES, fail it
    and return None. None as well when the task moved on meanwhile. A task whose cancel was
    requested is returned as it is, uncounted: the job cancels it."""
    async with pool.acquire() as conn, conn.transaction():
        housekeeping = HousekeepingRepo(conn)
        locked = await housekeeping.lock_task(task.id, ACTIVE)
        if locked is None:
            return None
        await _close_lost_runs(conn, task.id, now)
        if locked.cancel_requested_at is not None:
            return locked
        recovered = await housekeeping.recoveries(task.id)
        extra = {"task_key": task.key, "status": locked.status.value, "recovered": recovered}
        if recovered >= MAX_RECOVERIES:
            reason = takeover_reason(locked.status, recovered)
            await record_move(conn, locked, TaskStatus.FAILED, reason=reason)
            log.warning("task taken over too often: failed", extra=extra)
            return None
        recovery = {
            "recovery": recovered + 1, "of": MAX_RECOVERIES, "takeover": True,
            "reason": f"{_lost(locked.status)} while it was {locked.status.value}",
        }  # fmt: skip
        await TaskEventRepo(conn).add(task.id, EventKind.TASK_RECOVERED, recovery)
        log.warning("task taken over from a dead worker", extra=extra)
        return locked


async def _close_lost_runs(db: Executor, task_id: int, now: datetime) -> None:
    """End the agent runs a dead worker left open: failed, with no outcome of their own."""
    runs = TaskRunRepo(db)
    for run in await runs.for_task(task_id):
        if run.finished_at is None:
            seconds = max(0.0, (now - run.started_at).total_seconds())
            await runs.finish(run.id, RunOutcome(
                ok=False, exit_code=None, session_id=None, cost_usd=None, turns=None,
                duration_seconds=seconds, error_class=LOST_RUN,
                error_message="the worker running it stopped", output_tail="",
            ))  # fmt: skip


def _lost(status: TaskStatus) -> str:
    if status is TaskStatus.QUEUED:
        return "its job in the queue was lost"
    return "the worker running it stopped (crashed or host lost)"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


async def recover(
    pool: Pool, *, now: datetime, grace: timedelta, heartbeat_seconds: float
) -> Recovery:
    """Requeue, fail or cancel every active task that no job will run (see the module doc).

    `grace`: how long a task must be untouched first; `heartbeat_seconds`: the workers'
    heartbeat interval (WORKER_HEARTBEAT_SECONDS)."""
    result = Recovery()
    housekeeping = HousekeepingRepo(pool)
    orphans = await housekeeping.orphans(RECOVERABLE, now - grace)
    if not orphans:
        return result
    workers = await WorkerRepo(pool).alive(2 * heartbeat_seconds)
    running = sum(w.running for w in workers)
    with_job = await housekeeping.running_jobs(2 * heartbeat_seconds)
    if running > with_job:
        log.warning(
            "recovery waits: a live worker runs a task without a job row",
            extra={"running": running, "jobs": with_job, "orphans": [t.key for t in orphans]},
        )
        result.skipped = True
        return result
    for orphan in orphans:
        await _recover_one(pool, orphan, result)
    return result


async def _recover_one(pool: Pool, orphan: Task, result: Recovery) -> None:
    async with pool.acquire() as conn, conn.transaction():
        housekeeping = HousekeepingRepo(conn)
        task = await housekeeping.lock_orphan(orphan.id, RECOVERABLE)
        if task is None:  # it moved on, or got a job, since we looked
            return
        recovered = await housekeeping.recoveries(task.id)
        extra = {"task_key": task.key, "status": task.status.value, "recovered": recovered}
        if task.cancel_requested_at is not None:
            who = task.cancel_requested_by or "unknown"
            reason = f"cancelled by {who}; {_lost(task.status)}"
            await record_move(conn, task, TaskStatus.CANCELLED, reason=reason)
            result.cancelled.append(task.key)
            log.info("lost task cancelled", extra=extra)
        elif recovered >= MAX_RECOVERIES:
            reason = lost_reason(task.status, recovered)
            await record_move(conn, task, TaskStatus.FAILED, reason=reason)
            result.failed.append(task.key)
            log.warning("lost task failed", extra=extra)
        else:
            recovery = {
                "recovery": recovered + 1, "of": MAX_RECOVERIES,
                "reason": f"{_lost(task.status)} while it was {task.status.value}",
            }  # fmt: skip
            events = TaskEventRepo(conn)
            await events.add(task.id, EventKind.TASK_RECOVERED, recovery)
            if task.status is TaskStatus.QUEUED:  # only its job is missing
                priority = Priority.for_task(task.priority)
                job_id = await JobQueue(conn).enqueue(RunTaskPayload(task_id=task.id),
                                                      priority=priority)  # fmt: skip
                payload = {"job_id": job_id, "priority": task.priority}
                await events.add(task.id, EventKind.TASK_QUEUED, payload)
            else:
                await queue_task(conn, task)
            result.requeued.append(task.key)
            log.warning("lost task requeued", extra=extra)
