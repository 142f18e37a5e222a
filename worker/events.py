"""The worker's journal of one task: status moves and typed events, written together."""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

import asyncpg

from storage.task_events import EventKind, TaskEventRepo
from storage.tasks import Task, TaskRepo, TaskStatus

log = logging.getLogger(__name__)

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

_TERMINAL_EVENTS = {
    TaskStatus.DONE: EventKind.TASK_DONE,
    TaskStatus.FAILED: EventKind.TASK_FAILED,
    TaskStatus.BLOCKED: EventKind.TASK_BLOCKED,
    TaskStatus.CANCELLED: EventKind.TASK_CANCELLED,
}


class TaskJournal:
    def __init__(self, pool: Pool, task: Task) -> None:
        self._pool = pool
        self.task = task

    async def event(self, kind: EventKind, **payload: Any) -> None:
        await TaskEventRepo(self._pool).add(self.task.id, kind, payload)
        log.info("task event", extra={"task_key": self.task.key, "event": kind.value})

    async def move(self, to: TaskStatus, *, reason: str = "", **payload: Any) -> Task:
        """Guarded status change plus its events, in one transaction; raises InvalidTransition."""
        async with self._pool.acquire() as conn, conn.transaction():
            moved = await TaskRepo(conn).move(self.task.id, to, reason=reason)
            events = TaskEventRepo(conn)
            change = {"from": self.task.status.value, "to": to.value, "reason": reason}
            await events.add(self.task.id, EventKind.STATUS_CHANGED, change)
            if to in _TERMINAL_EVENTS:
                await events.add(self.task.id, _TERMINAL_EVENTS[to], {"reason": reason, **payload})
        log.info(
            "task moved",
            extra={"task_key": self.task.key, "from": self.task.status.value, "to": to.value},
        )
        self.task = moved
        return moved
