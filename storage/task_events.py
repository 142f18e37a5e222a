"""The append-only event log of each task; every insert NOTIFYs channel `task_events`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

import asyncpg

from storage.db import Executor
from storage.notifications import FOR_EVENT
from storage.task_status import TaskStatus
from storage.tasks import MOVE, Task, TaskRepo, move_args

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
    PLAN_REMINDER = "plan_reminder"  # a plan still waits for a decision
    AGENT_STARTED = "agent_started"
    AGENT_FINISHED = "agent_finished"
    AGENT_FALLBACK = "agent_fallback"  # the API refused the run: the same attempt, another agent
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
    BRANCH_PUSHED = "branch_pushed"  # the change is on the remote (pr: agent/KEY; direct)
    PR_OPENED = "pr_opened"
    PATCHES_GENERATED = "patches_generated"
    MEMORY_WRITTEN = "memory_written"
    TASK_DONE = "task_done"
    TASK_FAILED = "task_failed"
    TASK_BLOCKED = "task_blocked"
    TASK_CANCELLED = "task_cancelled"
    TASK_RECOVERED = "task_recovered"  # its job was lost (worker crashed): queued again
    OPERATOR_ACTION = "operator_action"  # who pressed what (button or command), and when


# The outbox rows announcing events (storage/notifications.py): one per (event kind, notice
# kind) pair of the two arrays, for a task of a chat. Written in the events' own statement,
# so a chat hears about every event it should, even when the bot is down at the time.
_OUTBOX = """outbox AS (
        INSERT INTO notifications (chat_id, thread_id, task_id, kind, payload, dedupe_key)
        SELECT t.chat_id, t.thread_id, t.id, x.notice,
               jsonb_build_object('event_id', e.id, 'event', e.kind),
               x.notice || ':' || e.id
          FROM event e
          JOIN {task} t ON t.id = e.task_id
          JOIN unnest({event_kinds}::text[], {notices}::text[]) AS x(event_kind, notice)
            ON x.event_kind = e.kind
         WHERE t.chat_id IS NOT NULL
        ON CONFLICT (dedupe_key) DO NOTHING
    )"""
# Events of one task in order ({kinds}, {payloads}: two arrays), inserted from {source}
# (rows `i` of `input`, with the task's id as {task_id}).
_EVENTS = """input AS (
        SELECT i.kind, i.payload::jsonb AS payload, i.n
          FROM unnest({kinds}::text[], {payloads}::text[]) WITH ORDINALITY AS i(kind, payload, n)
    ), event AS (
        INSERT INTO task_events (task_id, kind, payload)
        SELECT {task_id}, i.kind, i.payload
          FROM {source}
         ORDER BY i.n
        RETURNING id, task_id, kind, payload, created_at
    )"""
# Events of task $1 ($2 kinds, $3 payloads, in order) in one statement, with their outbox
# rows for ($4, $5).
_INSERT = f"""
    WITH {_EVENTS.format(kinds="$2", payloads="$3", task_id="$1", source="input i")},
         {_OUTBOX.format(task="tasks", event_kinds="$4", notices="$5")}
    SELECT * FROM event ORDER BY id
"""  # noqa: S608  # constants of ours: no input goes into the text
# A move (storage/tasks.py MOVE, $1 to $5) and its events ($6 kinds, $7 payloads, in order)
# in one statement: no event unless the row moved; their outbox rows for ($8, $9).
_MOVED_EVENTS = _EVENTS.format(kinds="$6", payloads="$7", task_id="m.id",
                               source="moved m CROSS JOIN input i")  # fmt: skip
_MOVE_WITH_EVENTS = f"""
    WITH moved AS ({MOVE}),
         {_MOVED_EVENTS},
         {_OUTBOX.format(task="moved", event_kinds="$8", notices="$9")}
    SELECT * FROM moved
"""  # noqa: S608  # constants of ours: no input goes into the text
_LATEST = """
    SELECT id, task_id, kind, payload, created_at
      FROM task_events
     WHERE task_id = $1 AND kind <> 'operator_action'
     ORDER BY id DESC
     LIMIT $2
"""
_BY_ID = "SELECT id, task_id, kind, payload, created_at FROM task_events WHERE id = $1"
_TAIL = """
    SELECT id, task_id, kind, payload, created_at
      FROM task_events
     WHERE task_id = $1 AND ($3::bigint IS NULL OR id < $3)
     ORDER BY id DESC
     LIMIT $2
"""
_COUNT_BEFORE = "SELECT count(*) FROM task_events WHERE task_id = $1 AND id < $2"
_LAST_OF = """
    SELECT id, task_id, kind, payload, created_at
      FROM task_events
     WHERE task_id = $1 AND kind = ANY($2::text[])
       AND ($3::text IS NULL OR payload->>'kind' = $3)
     ORDER BY id DESC
     LIMIT 1
"""
_FOR_TASK = """
    SELECT id, task_id, kind, payload, created_at
      FROM task_events
     WHERE task_id = $1 AND id > $2
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
        [event] = await self.add_many(task_id, [(kind, payload)])
        return event

    async def add_many(
        self, task_id: int, events: Sequence[tuple[EventKind, dict[str, Any]]]
    ) -> list[TaskEvent]:
        """`events`, in this order, in one statement."""
        notices = _notices(events)
        rows = await self._db.fetch(
            _INSERT, task_id, [kind.value for kind, _ in events],
            [json.dumps(p) for _, p in events], [kind for kind, _ in notices],
            [notice for _, notice in notices],
        )  # fmt: skip
        return [TaskEvent.from_record(r) for r in rows]

    async def latest(self, task_id: int, limit: int = 1) -> list[TaskEvent]:
        """The task's last `limit` pipeline events (operator actions left out), oldest first."""
        rows = await self._db.fetch(_LATEST, task_id, limit)
        return [TaskEvent.from_record(r) for r in reversed(rows)]

    async def by_id(self, event_id: int) -> TaskEvent | None:
        row = await self._db.fetchrow(_BY_ID, event_id)
        return None if row is None else TaskEvent.from_record(row)

    async def tail(
        self, task_id: int, limit: int, *, before: int | None = None
    ) -> tuple[list[TaskEvent], int]:
        """The task's last `limit` events (before event id `before`, if given), oldest
        first, and how many older ones there are."""
        rows = await self._db.fetch(_TAIL, task_id, limit, before)
        events = [TaskEvent.from_record(r) for r in reversed(rows)]
        older: int = await self._db.fetchval(_COUNT_BEFORE, task_id, events[0].id) if events else 0
        return events, older

    async def last_of(
        self, task_id: int, kinds: list[EventKind], *, payload_kind: str | None = None
    ) -> TaskEvent | None:
        """The task's newest event of one of `kinds` (and payload "kind", if given)."""
        row = await self._db.fetchrow(_LAST_OF, task_id, [k.value for k in kinds], payload_kind)
        return None if row is None else TaskEvent.from_record(row)

    async def for_task(self, task_id: int, *, after: int = 0) -> list[TaskEvent]:
        """The task's events, oldest first; with `after`, only those with a larger id."""
        rows = await self._db.fetch(_FOR_TASK, task_id, after)
        return [TaskEvent.from_record(r) for r in rows]


_TERMINAL_EVENTS = {
    TaskStatus.DONE: EventKind.TASK_DONE,
    TaskStatus.FAILED: EventKind.TASK_FAILED,
    TaskStatus.BLOCKED: EventKind.TASK_BLOCKED,
    TaskStatus.CANCELLED: EventKind.TASK_CANCELLED,
}


def _notices(events: Sequence[tuple[EventKind, object]]) -> list[tuple[str, str]]:
    """(event kind, notice kind) of each outbox row `events` call for."""
    return [(kind.value, n.value) for kind, _ in events for n in FOR_EVENT.get(kind.value, ())]


async def record_move(
    conn: Executor, task: Task, to: TaskStatus, *, reason: str = "",
    carried: Sequence[tuple[EventKind, dict[str, Any]]] = (), **payload: Any,
) -> Task:  # fmt: skip
    """A guarded status change and its events (`carried`, then status_changed, then task_done
    & co. for a terminal status), with their outbox rows: one statement, so one round trip,
    atomic by itself and inside a caller's transaction alike. Raises InvalidTransition (and
    then writes nothing, not even `carried`)."""
    events = [*carried, (EventKind.STATUS_CHANGED, {"from": task.status.value, "to": to.value,
                                                   "reason": reason})]  # fmt: skip
    if to in _TERMINAL_EVENTS:
        events.append((_TERMINAL_EVENTS[to], {"reason": reason, **payload}))
    notices = _notices(events)
    row = await conn.fetchrow(
        _MOVE_WITH_EVENTS, *move_args(task.id, to, reason),
        [kind.value for kind, _ in events], [json.dumps(p) for _, p in events],
        [kind for kind, _ in notices], [notice for _, notice in notices],
    )  # fmt: skip
    if row is None:
        raise await TaskRepo(conn).refused(task.id, to)
    return Task.from_record(row)
