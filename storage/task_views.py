"""Read-only views of `tasks` for the status page: what runs now and its current step, the
queue in the order the worker takes it, filtered pages, and counts per repo.

The queue order follows PgQueuer: the highest job priority first (task priority 1 first),
then the job enqueued first (the task's latest `task_queued` event). A task waiting for the
model API (rate_limit_backoff) is in the queue too, with when it runs again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.db import Executor
from storage.task_status import ACTIVE, TaskStatus
from storage.tasks import Task

_RUNNING = """
    SELECT t.*, r.name AS repo_name, e.kind AS step_kind, e.payload::text AS step_payload,
           e.created_at AS step_at
      FROM tasks t
      JOIN repos r ON r.id = t.repo_id
      LEFT JOIN LATERAL (
            SELECT kind, payload, created_at
              FROM task_events
             WHERE task_id = t.id AND kind <> 'operator_action'
             ORDER BY id DESC
             LIMIT 1
      ) e ON true
     WHERE t.status = ANY($1::text[])
     ORDER BY t.started_at NULLS LAST, t.id
"""
_QUEUE = """
    SELECT t.*, r.name AS repo_name, q.queued_event, w.payload->>'resume_at' AS resume_at
      FROM tasks t
      JOIN repos r ON r.id = t.repo_id
      LEFT JOIN LATERAL (
            SELECT id AS queued_event
              FROM task_events
             WHERE task_id = t.id AND kind = 'task_queued'
             ORDER BY id DESC
             LIMIT 1
      ) q ON true
      LEFT JOIN LATERAL (
            SELECT payload
              FROM task_events
             WHERE task_id = t.id AND kind = 'rate_limit_backoff' AND id > q.queued_event
             ORDER BY id DESC
             LIMIT 1
      ) w ON true
     WHERE t.status = 'queued'
     ORDER BY t.priority, q.queued_event NULLS LAST, t.id
     LIMIT $1
"""
_SEARCH = """
    SELECT t.*, r.name AS repo_name, count(*) OVER () AS total
      FROM tasks t
      JOIN repos r ON r.id = t.repo_id
     WHERE ($1::text IS NULL OR t.status = $1)
       AND ($2::text IS NULL OR r.name = $2)
       AND ($3::smallint IS NULL OR t.priority = $3)
       AND ($4::text IS NULL OR t.key ILIKE $4 || '%' OR t.title ILIKE '%' || $4 || '%')
     ORDER BY t.id DESC
     LIMIT $5 OFFSET $6
"""
_PER_REPO = """
    SELECT r.name,
           count(t.id) FILTER (WHERE t.status = 'queued')                         AS queued,
           count(t.id) FILTER (WHERE t.status = ANY($1::text[]))                  AS active,
           count(t.id) FILTER (WHERE t.status = 'done' AND t.finished_at >= $2)   AS done,
           count(t.id) FILTER (WHERE t.status = 'failed' AND t.finished_at >= $2) AS failed,
           count(t.id) FILTER (WHERE t.status = 'blocked' AND t.finished_at >= $2)
                                                                                  AS blocked,
           count(t.id)                                                            AS total
      FROM repos r
      LEFT JOIN tasks t ON t.repo_id = r.id
     GROUP BY r.name
     ORDER BY r.name
"""
_REPO_NAMES = "SELECT name FROM repos ORDER BY name"


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A task with its repo's name, and what the view adds (the current step, the wait)."""

    task: Task
    repo_name: str
    step_kind: str | None = None
    step_payload: dict[str, Any] | None = None
    step_at: datetime | None = None
    resume_at: str | None = None  # queued, waiting for the model API until then (ISO)


@dataclass(frozen=True, slots=True)
class TaskPage:
    rows: list[TaskRow]
    total: int


@dataclass(frozen=True, slots=True)
class RepoCounts:
    name: str
    queued: int
    active: int
    done: int
    failed: int
    blocked: int
    total: int


def _row(r: asyncpg.Record, **extra: Any) -> TaskRow:
    return TaskRow(Task.from_record(r), r["repo_name"], **extra)


class TaskViews:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def running(self) -> list[TaskRow]:
        """Active tasks (preparing … delivering), each with its latest event."""
        rows = await self._db.fetch(_RUNNING, [s.value for s in ACTIVE])
        return [
            _row(r, step_kind=r["step_kind"], step_at=r["step_at"],
                 step_payload=json.loads(r["step_payload"]) if r["step_payload"] else None)
            for r in rows
        ]  # fmt: skip

    async def queue(self, limit: int = 50) -> list[TaskRow]:
        """Queued tasks in the order the worker takes them."""
        rows = await self._db.fetch(_QUEUE, limit)
        return [_row(r, resume_at=r["resume_at"]) for r in rows]

    async def search(
        self, *, status: TaskStatus | None = None, repo: str | None = None,
        priority: int | None = None, text: str | None = None, limit: int = 50, offset: int = 0,
    ) -> TaskPage:  # fmt: skip
        """Newest first, filtered; `text` matches a key prefix or any part of a title."""
        like = None if not text else text.replace("\\", "\\\\").replace("%", r"\%").replace(
            "_", r"\_")  # fmt: skip
        rows = await self._db.fetch(_SEARCH, status.value if status else None, repo, priority,
                                    like, limit, offset)  # fmt: skip
        total = int(rows[0]["total"]) if rows else 0
        return TaskPage([_row(r) for r in rows], total)

    async def per_repo(self, since: datetime) -> list[RepoCounts]:
        rows = await self._db.fetch(_PER_REPO, [s.value for s in ACTIVE], since)
        return [RepoCounts(**dict(r)) for r in rows]

    async def repo_names(self) -> list[str]:
        return [r["name"] for r in await self._db.fetch(_REPO_NAMES)]
