"""The append-only event log of each task; every insert NOTIFYs channel `task_events`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

import asyncpg

from storage.db import Executor

CHANNEL = "task_events"


class EventKind(StrEnum):
    TASK_CREATED = "task_created"
    TASK_QUEUED = "task_queued"
    STATUS_CHANGED = "status_changed"
    WORKSPACE_READY = "workspace_ready"
    REPO_MAP_BUILT = "repo_map_built"
    REALITY_SIGNAL = "reality_signal"
    MEMORY_RECALL = "memory_recall"
    PLAN_PENDING = "plan_pending"
    PLAN_APPROVED = "plan_approved"
    PLAN_REJECTED = "plan_rejected"
    AGENT_STARTED = "agent_started"
    AGENT_FINISHED = "agent_finished"
    VERIFY_STARTED = "verify_started"
    VERIFY_PASSED = "verify_passed"
    VERIFY_FAILED = "verify_failed"
    ERROR_CLASSIFIED = "error_classified"
    RETRY_SCHEDULED = "retry_scheduled"
    RATE_LIMIT_BACKOFF = "rate_limit_backoff"
    BUDGET_WARNING = "budget_warning"
    BUDGET_EXCEEDED = "budget_exceeded"
    PREFLIGHT_PASSED = "preflight_passed"
    PREFLIGHT_FAILED = "preflight_failed"
    PR_OPENED = "pr_opened"
    PATCHES_GENERATED = "patches_generated"
    MEMORY_WRITTEN = "memory_written"
    TASK_DONE = "task_done"
    TASK_FAILED = "task_failed"
    TASK_BLOCKED = "task_blocked"
    TASK_CANCELLED = "task_cancelled"


_INSERT = """
    INSERT INTO task_events (task_id, kind, payload)
    VALUES ($1, $2, $3::jsonb)
    RETURNING id, task_id, kind, payload, created_at
"""
_FOR_TASK = """
    SELECT id, task_id, kind, payload, created_at
      FROM task_events
     WHERE task_id = $1
     ORDER BY id
"""


@dataclass(frozen=True, slots=True)
class TaskEvent:
    id: int
    task_id: int
    kind: EventKind
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(r["id"], r["task_id"], EventKind(r["kind"]), json.loads(r["payload"]),
                   r["created_at"])  # fmt: skip


class TaskEventRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(self, task_id: int, kind: EventKind, payload: dict[str, Any]) -> TaskEvent:
        row = await self._db.fetchrow(_INSERT, task_id, kind.value, json.dumps(payload))
        assert row is not None  # noqa: S101  # INSERT ... RETURNING always returns the row
        return TaskEvent.from_record(row)

    async def for_task(self, task_id: int) -> list[TaskEvent]:
        return [TaskEvent.from_record(r) for r in await self._db.fetch(_FOR_TASK, task_id)]
