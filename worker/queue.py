"""Enqueue jobs inside the caller's transaction, so a task and its job exist together or not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from pgqueuer import AsyncpgDriver, Queries

from storage.db import Connection
from storage.repos import RepoRepo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from worker.payloads import Payload, RunTaskPayload


class Priority:
    """PgQueuer runs the HIGHEST number first; tasks say 1 = critical … 4 = low."""

    CRITICAL = 40
    HIGH = 30
    NORMAL = 20
    LOW = 10

    @staticmethod
    def for_task(task_priority: int) -> int:
        return {1: Priority.CRITICAL, 2: Priority.HIGH, 3: Priority.NORMAL, 4: Priority.LOW}[
            task_priority
        ]


class JobQueue:
    def __init__(self, conn: Connection) -> None:
        self._queries = Queries(AsyncpgDriver(conn))  # type: ignore[arg-type]  # a pool proxy works

    async def enqueue(
        self, payload: Payload, *, priority: int, delay: timedelta | None = None
    ) -> int:
        ids = await self._queries.enqueue(
            payload.ENTRYPOINT, payload.model_dump_json().encode(), priority, delay
        )
        return int(ids[0])


async def submit_task(conn: Connection, new: NewTask, *, later: bool = False) -> Task:
    """Create a task and queue its job, atomically: a rollback removes both. With `later`,
    the task stays `pending` in the backlog (a night cycle queues it; worker/night.py)."""
    async with conn.transaction():
        key = await RepoRepo(conn).next_task_key(new.repo_id)
        tasks = TaskRepo(conn)
        task = await tasks.create(key, new)
        created = {"key": key, "title": new.title, "by": new.created_by, "later": later}
        if later:
            await TaskEventRepo(conn).add(task.id, EventKind.TASK_CREATED, created)
            return task
        return await queue_task(conn, task, carried=[(EventKind.TASK_CREATED, created)])


async def queue_task(
    conn: Connection, task: Task, *, carried: Sequence[tuple[EventKind, dict[str, Any]]] = ()
) -> Task:
    """Move a task to `queued` and enqueue its job; call inside a transaction. `carried`:
    events to write before the move's, in its statement.

    An earlier cancel request is cleared: it was for the run that was cancelled.
    """
    moved = await record_move(conn, task, TaskStatus.QUEUED, carried=carried)
    if moved.cancel_requested_at is not None:  # after the guarded move: never for a task
        await TaskRepo(conn).clear_cancel(task.id)  # not requeued; a new one has none
    job_id = await JobQueue(conn).enqueue(
        RunTaskPayload(task_id=task.id), priority=Priority.for_task(task.priority)
    )
    await TaskEventRepo(conn).add(task.id, EventKind.TASK_QUEUED,
                                  {"job_id": job_id, "priority": task.priority})  # fmt: skip
    return replace(moved, cancel_requested_at=None, cancel_requested_by=None)
