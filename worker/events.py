"""The worker's journal of one task: status moves and typed events, written together."""

from __future__ import annotations

import logging
from typing import Any, TypeAlias

import asyncpg

from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import Task

log = logging.getLogger(__name__)

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


class TaskJournal:
    def __init__(self, pool: Pool, task: Task) -> None:
        self._pool = pool
        self.task = task

    async def event(self, kind: EventKind, /, **payload: Any) -> None:
        await TaskEventRepo(self._pool).add(self.task.id, kind, payload)
        log.info("task event", extra={"task_key": self.task.key, "event": kind.value})

    async def move(self, to: TaskStatus, *, reason: str = "", **payload: Any) -> Task:
        """Guarded status change plus its events, in one statement; raises InvalidTransition."""
        moved = await record_move(self._pool, self.task, to, reason=reason, **payload)
        log.info(
            "task moved",
            extra={"task_key": self.task.key, "from": self.task.status.value, "to": to.value},
        )
        self.task = moved
        return moved
