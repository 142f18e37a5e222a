"""The worker's journal of one task: status moves and typed events, written together.

Events are written behind the work, in order: `event()` returns at once, and the journal's
writer puts what is waiting in the table in one statement, while the job goes on with its
next step (a git command, the agent). A status move carries the events still waiting in its
own statement, so each move comes after every event emitted before it. Who reads the task's
timeline, or writes to it other than through the journal, calls `flush()` first; the job
flushes when it ends. A write that failed is raised by the next `flush()` or move.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeAlias

import asyncpg

from storage.errors import InvalidTransition
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import Task

log = logging.getLogger(__name__)

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Event: TypeAlias = tuple[EventKind, dict[str, Any]]


class TaskJournal:
    def __init__(self, pool: Pool, task: Task) -> None:
        self._pool = pool
        self.task = task
        self._waiting: list[Event] = []  # emitted, not yet being written
        self._writer: asyncio.Task[None] | None = None
        self._writing = False  # a batch is on its way to the table
        self._failed: BaseException | None = None  # a write's error, for the next flush

    async def event(self, kind: EventKind, /, **payload: Any) -> None:
        self._waiting.append((kind, payload))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        log.info("task event", extra={"task_key": self.task.key, "event": kind.value})

    async def flush(self) -> None:
        """Until every event emitted so far is in the table; raises a failed write's error."""
        while True:
            if self._writer is not None and not self._writer.done():
                await asyncio.wait({self._writer})
            elif self._waiting:
                self._writer = asyncio.ensure_future(self._write())
            else:
                break
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    async def move(self, to: TaskStatus, *, reason: str = "", **payload: Any) -> Task:
        """Guarded status change plus its events, in one statement with the events still
        waiting; raises InvalidTransition (the waiting events are written all the same)."""
        while self._writing and self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})  # the batch on its way goes first
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed
        carried, self._waiting = self._waiting, []  # the writer, if it wakes, finds none
        try:
            moved = await record_move(self._pool, self.task, to, reason=reason, carried=carried,
                                      **payload)  # fmt: skip
        except InvalidTransition:
            if carried:
                await TaskEventRepo(self._pool).add_many(self.task.id, carried)
            raise
        log.info(
            "task moved",
            extra={"task_key": self.task.key, "from": self.task.status.value, "to": to.value},
        )
        self.task = moved
        return moved

    async def _write(self) -> None:
        # One turn of the loop first: a move that follows its events at once (the usual
        # case) then carries them, one statement instead of two in a row.
        await asyncio.sleep(0)
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                self._writing = True
                try:
                    await TaskEventRepo(self._pool).add_many(self.task.id, batch)
                finally:
                    self._writing = False
        except Exception as exc:  # raised where the job next waits for its events
            self._failed = exc
