"""Rows and SQL of `nights` and `night_tasks`: the night cycle's state (worker/night.py).

One night is on at a time (a partial unique index). Its `tick` numbers the one live tick
job; `advance` moves it on only from the number a tick was given, so a duplicate tick is
inert. `night_tasks` records each task the night fed, once: the backlog, and failed tasks
retried (at most once a night).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Self

import asyncpg

from storage.db import Executor
from storage.errors import Conflict, translate_errors
from storage.task_status import ACTIVE
from storage.tasks import Task

_START = """
    INSERT INTO nights (chat_id, thread_id, started_by, ends_at)
    VALUES ($1, $2, $3, $4)
    RETURNING *
"""
_CURRENT = "SELECT * FROM nights WHERE stopped_at IS NULL"
_BY_ID = "SELECT * FROM nights WHERE id = $1"
_LOCK = "SELECT * FROM nights WHERE id = $1 FOR UPDATE"
_LAST = "SELECT * FROM nights ORDER BY id DESC LIMIT 1"
_ADVANCE = """
    UPDATE nights SET tick = tick + 1
     WHERE id = $1 AND tick = $2 AND stopped_at IS NULL
    RETURNING tick
"""
_STOP = """
    UPDATE nights SET stopped_at = $2, stop_reason = $3
     WHERE id = $1 AND stopped_at IS NULL
    RETURNING *
"""
_BUSY = "SELECT count(*) FROM tasks WHERE status = 'queued' OR status = ANY($1::text[])"
# The backlog: tasks waiting to be queued, most urgent first, oldest first.
_BACKLOG = """
    SELECT t.*
      FROM tasks t
     WHERE t.status = 'pending'
       AND NOT EXISTS (SELECT 1 FROM night_tasks n WHERE n.night_id = $1 AND n.task_id = t.id)
     ORDER BY t.priority, t.id
     LIMIT $2
"""
# Failed tasks worth one more try: failed in the last week, not for a reason another run
# cannot fix (an escalated hard failure class, a delivery that cannot happen, a conflict).
_RETRIES = """
    SELECT t.*
      FROM tasks t
     WHERE t.status = 'failed'
       AND t.finished_at >= $2::timestamptz - interval '7 days'
       AND t.status_reason NOT LIKE '%escalated:%'
       AND t.status_reason NOT LIKE '%cannot be delivered%'
       AND t.status_reason NOT LIKE '%conflicts in%'
       AND NOT EXISTS (SELECT 1 FROM night_tasks n WHERE n.night_id = $1 AND n.task_id = t.id)
     ORDER BY t.priority, t.finished_at
     LIMIT $3
"""
_FEED = "INSERT INTO night_tasks (night_id, task_id, reason) VALUES ($1, $2, $3)"
_FED = """
    SELECT t.*, n.reason AS fed_reason
      FROM night_tasks n
      JOIN tasks t ON t.id = n.task_id
     WHERE n.night_id = $1
     ORDER BY n.fed_at, t.id
"""


@dataclass(frozen=True, slots=True)
class Night:
    id: int
    chat_id: int | None
    thread_id: int | None
    started_by: str
    started_at: datetime
    ends_at: datetime
    tick: int
    stopped_at: datetime | None
    stop_reason: str | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(**{f.name: r[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class Fed:
    task: Task
    reason: str  # backlog | retry

    @property
    def cost(self) -> Decimal:
        return self.task.spent_cost_usd


class NightRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def start(
        self, *, chat_id: int | None, thread_id: int | None, by: str, ends_at: datetime
    ) -> Night:
        """Raises Conflict when a night is on already."""
        with translate_errors():
            row = await self._db.fetchrow(_START, chat_id, thread_id, by, ends_at)
        if row is None:
            raise Conflict("night")
        return Night.from_record(row)

    async def current(self) -> Night | None:
        row = await self._db.fetchrow(_CURRENT)
        return None if row is None else Night.from_record(row)

    async def last(self) -> Night | None:
        row = await self._db.fetchrow(_LAST)
        return None if row is None else Night.from_record(row)

    async def by_id(self, night_id: int) -> Night | None:
        row = await self._db.fetchrow(_BY_ID, night_id)
        return None if row is None else Night.from_record(row)

    async def lock(self, night_id: int) -> Night | None:
        """The night, row-locked to the end of the caller's transaction."""
        row = await self._db.fetchrow(_LOCK, night_id)
        return None if row is None else Night.from_record(row)

    async def advance(self, night_id: int, tick: int) -> int | None:
        """Move the live tick on from `tick`; None when `tick` was not the live one."""
        value: int | None = await self._db.fetchval(_ADVANCE, night_id, tick)
        return value

    async def stop(self, night_id: int, at: datetime, reason: str) -> Night | None:
        """Stop it; None when it was stopped already (so only one caller sums it up)."""
        row = await self._db.fetchrow(_STOP, night_id, at, reason)
        return None if row is None else Night.from_record(row)

    async def busy(self) -> int:
        """Tasks queued or running now, across all repos."""
        count: int = await self._db.fetchval(_BUSY, [s.value for s in ACTIVE])
        return count

    async def backlog(self, night_id: int, limit: int) -> list[Task]:
        return [Task.from_record(r) for r in await self._db.fetch(_BACKLOG, night_id, limit)]

    async def retries(self, night_id: int, now: datetime, limit: int) -> list[Task]:
        rows = await self._db.fetch(_RETRIES, night_id, now, limit)
        return [Task.from_record(r) for r in rows]

    async def feed(self, night_id: int, task_id: int, reason: str) -> None:
        await self._db.execute(_FEED, night_id, task_id, reason)

    async def fed(self, night_id: int) -> list[Fed]:
        rows = await self._db.fetch(_FED, night_id)
        return [Fed(Task.from_record(r), r["fed_reason"]) for r in rows]
