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
# The total is counted over ids only (index-only), then 50 full rows are fetched: counting
# over full rows spilled to disk (bench/WEB.md: 28 ms to 6 ms at 10,000 tasks).
_SEARCH = """
    WITH page AS (
        SELECT t.id, count(*) OVER () AS total
          FROM tasks t
          JOIN repos r ON r.id = t.repo_id
         WHERE ($1::text IS NULL OR t.status = $1)
           AND ($2::text IS NULL OR r.name = $2)
           AND ($3::smallint IS NULL OR t.priority = $3)
           AND ($4::text IS NULL OR t.key ILIKE $4 || '%' OR t.title ILIKE '%' || $4 || '%')
         ORDER BY t.id DESC
         LIMIT $5 OFFSET $6
    )
    SELECT t.*, r.name AS repo_name, page.total
      FROM page
      JOIN tasks t ON t.id = page.id
      JOIN repos r ON r.id = t.repo_id
     ORDER BY t.id DESC
"""
# Today's counts from the rows the status and finished_at indexes find; totals index-only
# (bench/WEB.md: 8.7 ms to 0.9 ms at 10,000 tasks).
_PER_REPO = """
    SELECT r.name,
           coalesce(c.queued, 0)  AS queued,
           coalesce(c.active, 0)  AS active,
           coalesce(c.done, 0)    AS done,
           coalesce(c.failed, 0)  AS failed,
           coalesce(c.blocked, 0) AS blocked,
           (SELECT count(*) FROM tasks t WHERE t.repo_id = r.id) AS total
      FROM repos r
      LEFT JOIN (
            SELECT repo_id,
                   count(*) FILTER (WHERE status = 'queued')                        AS queued,
                   count(*) FILTER (WHERE status = ANY($1::text[]))                 AS active,
                   count(*) FILTER (WHERE status = 'done' AND finished_at >= $2)    AS done,
                   count(*) FILTER (WHERE status = 'failed' AND finished_at >= $2)  AS failed,
                   count(*) FILTER (WHERE status = 'blocked' AND finished_at >= $2) AS blocked
              FROM tasks
             WHERE status = ANY($1::text[]) OR status = 'queued' OR finished_at >= $2
             GROUP BY repo_id
      ) c ON c.repo_id = r.id
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
