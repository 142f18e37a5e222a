"""Rows and SQL of the `tasks` table; status changes only through guarded transitions."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import asyncpg

from storage.db import Executor
from storage.errors import InvalidTransition, NotFound, translate_errors
from storage.task_status import ACTIVE, TERMINAL, TaskStatus, allowed_sources

CANCEL_CHANNEL = "task_cancel"  # NOTIFY payload: the task id; see TaskRepo.request_cancel


_INSERT = """
    INSERT INTO tasks (key, repo_id, title, description, acceptance, priority, mode, git_flow,
                       skip_verify, agent_backend, agent_model, max_turns, max_cost_usd,
                       max_wall_seconds, created_by, chat_id, thread_id, message_id, kind,
                       idea_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20)
    RETURNING *
"""
_BY_KEY = "SELECT * FROM tasks WHERE key = $1"
_BY_ID = "SELECT * FROM tasks WHERE id = $1"
_LOCK = "SELECT * FROM tasks WHERE id = $1 FOR UPDATE"
# The guarded move; storage/task_events.py record_move wraps it with the move's events.
MOVE = """
    UPDATE tasks
       SET status = $2,
           status_reason = $4,
           updated_at = now(),
           started_at = CASE WHEN $2 = 'preparing' THEN coalesce(started_at, now())
                             ELSE started_at END,
           finished_at = CASE WHEN $2 = ANY($5::text[]) THEN now() ELSE NULL END,
           awaiting_since = CASE WHEN $2 = 'awaiting_approval' THEN now() ELSE NULL END
     WHERE id = $1 AND status = ANY($3::text[])
    RETURNING *
"""
_PAGE = """
    SELECT *
      FROM tasks
     WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))
       AND ($2::bigint IS NULL OR id < $2)
     ORDER BY id DESC
     LIMIT $3
"""
_STATUS = "SELECT status FROM tasks WHERE id = $1"
_REQUEST_CANCEL = """
    WITH marked AS (
        UPDATE tasks
           SET cancel_requested_at = coalesce(cancel_requested_at, now()),
               cancel_requested_by = coalesce(cancel_requested_by, $2),
               updated_at = now()
         WHERE id = $1
        RETURNING *
    )
    SELECT marked.*, pg_notify('task_cancel', marked.id::text) FROM marked
"""
_SET_PLAN = """
    UPDATE tasks
       SET plan = $2::jsonb, plan_round = plan_round + 1, plan_feedback = NULL,
           plan_approved_at = NULL, plan_rejected_at = NULL, plan_decided_by = NULL,
           updated_at = now()
     WHERE id = $1
    RETURNING *
"""
# A decision counts only for the round it was shown for, and only once.
_DECIDE_PLAN = """
    UPDATE tasks
       SET plan_approved_at = CASE WHEN $3 = 'approve' THEN now() END,
           plan_rejected_at = CASE WHEN $3 = 'reject' THEN now() END,
           plan_feedback = CASE WHEN $3 = 'revise' THEN $5 END,
           plan_decided_by = $4,
           updated_at = now()
     WHERE id = $1 AND plan_round = $2 AND status = 'awaiting_approval'
       AND plan_approved_at IS NULL AND plan_rejected_at IS NULL AND plan_decided_by IS NULL
    RETURNING *
"""
_SET_BUDGET = """
    UPDATE tasks
       SET max_cost_usd = $2, max_wall_seconds = $3, max_turns = $4, updated_at = now()
     WHERE id = $1
    RETURNING *
"""
# Only the limits the task has none of: one set meanwhile (by a person) stays.
_FILL_BUDGET = """
    UPDATE tasks
       SET max_cost_usd = coalesce(max_cost_usd, $2),
           max_wall_seconds = coalesce(max_wall_seconds, $3),
           max_turns = coalesce(max_turns, $4),
           updated_at = now()
     WHERE id = $1
    RETURNING *
"""
_SET_MESSAGE = "UPDATE tasks SET message_id = $2, updated_at = now() WHERE id = $1"
_CLEAR_CANCEL = """
    UPDATE tasks SET cancel_requested_at = NULL, cancel_requested_by = NULL WHERE id = $1
"""
_COUNTS = """
    SELECT count(*) FILTER (WHERE status = ANY($1::text[]))                 AS active,
           count(*) FILTER (WHERE status = 'queued')                        AS queued,
           count(*) FILTER (WHERE status = 'awaiting_approval')             AS awaiting,
           count(*) FILTER (WHERE status = 'done' AND finished_at >= $2)    AS done,
           count(*) FILTER (WHERE status = 'failed' AND finished_at >= $2)  AS failed,
           count(*) FILTER (WHERE status = 'blocked' AND finished_at >= $2) AS blocked,
           coalesce(sum(spent_cost_usd) FILTER (WHERE finished_at >= $2
                                                   OR status = ANY($1::text[])), 0) AS cost
      FROM tasks
     WHERE status = ANY($1::text[]) OR status IN ('queued', 'awaiting_approval')
        OR finished_at >= $2
"""
_SET_BRANCH = """
    UPDATE tasks SET branch = $2, base_commit = $3, updated_at = now() WHERE id = $1
"""
_SET_HEAD = "UPDATE tasks SET head_commit = $2, updated_at = now() WHERE id = $1"
_SET_PR_URL = "UPDATE tasks SET pr_url = $2, updated_at = now() WHERE id = $1"
_ADD_SPEND = """
    UPDATE tasks
       SET spent_cost_usd = spent_cost_usd + $2,
           spent_wall_seconds = spent_wall_seconds + $3,
           spent_turns = spent_turns + $4,
           cost_unknown = cost_unknown OR $5,
           updated_at = now()
     WHERE id = $1
    RETURNING *
"""
# Each limit is warned about once per task: only the first caller gets the row back.
_MARK_BUDGET_WARNED = """
    UPDATE tasks
       SET budget_warned = array_append(budget_warned, $2::text), updated_at = now()
     WHERE id = $1 AND NOT ($2::text = ANY(budget_warned))
    RETURNING id
"""


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    key: str
    repo_id: int
    title: str
    description: str
    acceptance: str
    priority: int
    mode: str
    git_flow: str
    skip_verify: bool
    agent_backend: str | None
    agent_model: str | None
    max_turns: int | None
    max_cost_usd: Decimal | None
    max_wall_seconds: int | None
    spent_cost_usd: Decimal
    spent_wall_seconds: float
    spent_turns: int
    cost_unknown: bool  # an agent run reported no cost (subscription): spent_cost_usd is short
    status: TaskStatus
    status_reason: str
    branch: str | None
    base_commit: str | None
    head_commit: str | None
    pr_url: str | None
    chat_id: int | None
    thread_id: int | None
    message_id: int | None
    plan: dict[str, Any] | None
    plan_round: int
    plan_feedback: str | None
    plan_approved_at: datetime | None
    plan_rejected_at: datetime | None
    plan_decided_by: str | None
    awaiting_since: datetime | None
    budget_warned: list[str]
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    kind: str  # change | apply (see NewTask)
    idea_id: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        values = {f.name: r[f.name] for f in fields(cls)}
        values["status"] = TaskStatus(r["status"])
        values["plan"] = None if r["plan"] is None else json.loads(r["plan"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class NewTask:
    repo_id: int
    title: str
    description: str = ""
    acceptance: str = ""
    priority: int = 3
    mode: str = "autonomous"
    git_flow: str = "patch"
    skip_verify: bool = False
    agent_backend: str | None = None
    agent_model: str | None = None
    max_turns: int | None = None
    max_cost_usd: Decimal | None = None
    max_wall_seconds: int | None = None
    created_by: str = "cli"
    chat_id: int | None = None
    thread_id: int | None = None
    message_id: int | None = None  # the status card, when the bot sent it before creating
    kind: str = "change"  # change: an agent makes it; apply: a forwarded patch series
    idea_id: int | None = None  # the idea it was made from


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """What /status shows: now (active, queued, awaiting) and since `since` (finished)."""

    active: int
    queued: int
    awaiting: int
    done: int
    failed: int
    blocked: int
    cost: Decimal


def move_args(task_id: int, to: TaskStatus, reason: str) -> tuple[object, ...]:
    """MOVE's parameters $1 to $5."""
    sources = [s.value for s in allowed_sources(to)]
    return task_id, to.value, sources, reason, [s.value for s in TERMINAL]


class TaskRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def create(self, key: str, new: NewTask) -> Task:
        with translate_errors():
            row = await self._db.fetchrow(
                _INSERT, key, new.repo_id, new.title, new.description, new.acceptance,
                new.priority, new.mode, new.git_flow, new.skip_verify, new.agent_backend,
                new.agent_model, new.max_turns, new.max_cost_usd, new.max_wall_seconds,
                new.created_by, new.chat_id, new.thread_id, new.message_id, new.kind,
                new.idea_id,
            )  # fmt: skip
        assert row is not None  # noqa: S101  # INSERT ... RETURNING always returns the row
        return Task.from_record(row)

    async def by_key(self, key: str) -> Task:
        row = await self._db.fetchrow(_BY_KEY, key)
        if row is None:
            raise NotFound("task", key)
        return Task.from_record(row)

    async def by_id(self, task_id: int) -> Task:
        row = await self._db.fetchrow(_BY_ID, task_id)
        if row is None:
            raise NotFound("task", task_id)
        return Task.from_record(row)

    async def lock(self, task_id: int) -> Task:
        """The task, its row locked until the caller's transaction ends: a decision or a move
        made meanwhile by someone else waits, then sees what this transaction did."""
        row = await self._db.fetchrow(_LOCK, task_id)
        if row is None:
            raise NotFound("task", task_id)
        return Task.from_record(row)

    async def page(
        self,
        *,
        statuses: Collection[TaskStatus] | None = None,
        before_id: int | None = None,
        limit: int = 10,
    ) -> list[Task]:
        """Newest first (of any of `statuses`, or all), keyset-paged: the next page starts
        below the last id shown."""
        wanted = None if statuses is None else [s.value for s in statuses]
        rows = await self._db.fetch(_PAGE, wanted, before_id, limit)
        return [Task.from_record(r) for r in rows]

    async def counts(self, since: datetime) -> TaskCounts:
        active = [s.value for s in ACTIVE]
        row = await self._db.fetchrow(_COUNTS, active, since)
        assert row is not None  # noqa: S101  # an aggregate always returns one row
        return TaskCounts(**dict(row))

    async def request_cancel(self, task_id: int, by: str) -> Task:
        """Mark the task for cancelling and NOTIFY `task_cancel`; the worker running it obeys."""
        row = await self._db.fetchrow(_REQUEST_CANCEL, task_id, by)
        if row is None:
            raise NotFound("task", task_id)
        return Task.from_record(row)

    async def clear_cancel(self, task_id: int) -> None:
        """A cancelled task queued again must not be cancelled by the old request."""
        await self._db.execute(_CLEAR_CANCEL, task_id)

    async def set_plan(self, task_id: int, plan: dict[str, Any]) -> Task:
        """A new plan (round + 1) awaiting a decision; an earlier decision is forgotten."""
        row = await self._db.fetchrow(_SET_PLAN, task_id, json.dumps(plan))
        if row is None:
            raise NotFound("task", task_id)
        return Task.from_record(row)

    async def decide_plan(
        self, task_id: int, plan_round: int, decision: str, by: str, feedback: str | None = None
    ) -> Task | None:
        """Record approve/reject/revise for `plan_round`; None if that round is already
        decided or no longer shown (a double click, a stale button)."""
        row = await self._db.fetchrow(_DECIDE_PLAN, task_id, plan_round, decision, by, feedback)
        return None if row is None else Task.from_record(row)

    async def set_budget(
        self, task_id: int, *, cost_usd: Decimal | None, wall_seconds: int | None,
        turns: int | None,
    ) -> Task:  # fmt: skip
        """Replace the task's limits (None: no limit of its own; defaults apply)."""
        with translate_errors():
            row = await self._db.fetchrow(_SET_BUDGET, task_id, cost_usd, wall_seconds, turns)
        if row is None:
            raise NotFound("task", task_id)
        return Task.from_record(row)

    async def fill_budget(
        self, task_id: int, *, cost_usd: Decimal | None, wall_seconds: int | None,
        turns: int | None,
    ) -> Task:  # fmt: skip
        """Give the task these limits where it has none of its own (its own stay)."""
        with translate_errors():
            row = await self._db.fetchrow(_FILL_BUDGET, task_id, cost_usd, wall_seconds, turns)
        if row is None:
            raise NotFound("task", task_id)
        return Task.from_record(row)

    async def set_message(self, task_id: int, message_id: int) -> None:
        await self._db.execute(_SET_MESSAGE, task_id, message_id)

    async def move(self, task_id: int, to: TaskStatus, *, reason: str = "") -> Task:
        """Change status only along TRANSITIONS; the SQL checks the current status atomically."""
        row = await self._db.fetchrow(MOVE, *move_args(task_id, to, reason))
        if row is None:
            raise await self.refused(task_id, to)
        return Task.from_record(row)

    async def refused(self, task_id: int, to: TaskStatus) -> InvalidTransition:
        """The error for a move to `to` that MOVE did not make, naming the current status."""
        return InvalidTransition(task_id, await self._db.fetchval(_STATUS, task_id), to.value)

    async def set_branch(self, task_id: int, branch: str, base_commit: str) -> None:
        await self._db.execute(_SET_BRANCH, task_id, branch, base_commit)

    async def set_head(self, task_id: int, head_commit: str) -> None:
        await self._db.execute(_SET_HEAD, task_id, head_commit)

    async def set_pr_url(self, task_id: int, url: str) -> None:
        await self._db.execute(_SET_PR_URL, task_id, url)

    async def add_spend(
        self, task_id: int, *, cost_usd: Decimal = Decimal(0), wall_seconds: float = 0.0,
        turns: int = 0, cost_unknown: bool = False,
    ) -> Task:  # fmt: skip
        """Add to what the task spent; `cost_unknown` marks it for good (see Task). Returns
        the task's row after it."""
        row = await self._db.fetchrow(_ADD_SPEND, task_id, cost_usd, wall_seconds, turns,
                                      cost_unknown)  # fmt: skip
        if row is None:
            raise NotFound("task", task_id)
        return Task.from_record(row)

    async def mark_budget_warned(self, task_id: int, limit: str) -> bool:
        """Record that `limit` ("cost", "wall", "turns") was warned about; True only the
        first time for the task, atomically, so concurrent callers warn once between them."""
        row = await self._db.fetchrow(_MARK_BUDGET_WARNED, task_id, limit)
        return row is not None
