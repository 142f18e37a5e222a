"""Rows and SQL of the `workers` table: one row per live worker process, its heartbeat."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Self

import asyncpg

from storage.db import Executor
from storage.errors import NotFound, translate_errors

_BEAT = """
    INSERT INTO workers (id, hostname, pid, concurrency, running, started_at, seen_at)
    VALUES ($1, $2, $3, $4, $5, now(), now())
    ON CONFLICT (id) DO UPDATE
       SET concurrency = excluded.concurrency, running = excluded.running, seen_at = now()
    RETURNING id, hostname, pid, concurrency, running, started_at, seen_at
"""
_GONE = "DELETE FROM workers WHERE id = $1"
_ALIVE = """
    SELECT id, hostname, pid, concurrency, running, started_at, seen_at
      FROM workers
     WHERE seen_at >= now() - make_interval(secs => $1)
     ORDER BY seen_at DESC, id
"""
_LATEST_SEEN = "SELECT max(seen_at) FROM workers"
_PRUNE = """
    WITH pruned AS (
        DELETE FROM workers
         WHERE seen_at < now() - make_interval(secs => $1)
        RETURNING id
    )
    SELECT count(*) FROM pruned
"""


@dataclass(frozen=True, slots=True)
class Worker:
    id: str  # "<hostname>:<pid>:<random>"
    hostname: str
    pid: int
    concurrency: int
    running: int  # run_task jobs the process ran at its last heartbeat
    started_at: datetime
    seen_at: datetime  # its last heartbeat

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(**{f.name: r[f.name] for f in fields(cls)})


class WorkerRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def beat(
        self, worker_id: str, *, hostname: str, pid: int, concurrency: int, running: int
    ) -> Worker:
        """Insert the worker's row or refresh it: seen_at = now()."""
        with translate_errors():
            row = await self._db.fetchrow(_BEAT, worker_id, hostname, pid, concurrency, running)
        if row is None:  # never: an upsert without a WHERE always returns its row
            raise NotFound("worker", worker_id)
        return Worker.from_record(row)

    async def gone(self, worker_id: str) -> None:
        """Delete the worker's row: it shut down cleanly."""
        with translate_errors():
            await self._db.execute(_GONE, worker_id)

    async def alive(self, within_seconds: float) -> list[Worker]:
        """Workers seen within the last `within_seconds`, the most recently seen first."""
        rows = await self._db.fetch(_ALIVE, float(within_seconds))
        return [Worker.from_record(r) for r in rows]

    async def latest_seen(self) -> datetime | None:
        """The newest heartbeat of any worker; None when no worker row is left."""
        value: datetime | None = await self._db.fetchval(_LATEST_SEEN)
        return value

    async def prune(self, older_than_seconds: float) -> int:
        """Delete the rows not seen for `older_than_seconds` (crashed workers); how many."""
        return int(await self._db.fetchval(_PRUNE, float(older_than_seconds)))
