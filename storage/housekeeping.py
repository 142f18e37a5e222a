"""SQL of the housekeeping schedules (worker/schedules.py): tasks whose job died, and what
the disk clean-up must know about tasks and repos before it deletes anything.

A task's job is a `run_task` row in PgQueuer's `pgqueuer` table whose payload is
`RunTaskPayload` as JSON bytes (worker/payloads.py). A job that is `queued` will run, and
one that is `picked` runs now, or PgQueuer hands it to another worker once its heartbeat is
stale; any other row (`failed`, held by on_failure="hold") or no row means nobody will run
the task again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Self

import asyncpg

from storage.db import Executor
from storage.task_status import TaskStatus
from storage.tasks import Task

# Tasks in one of the statuses $1, untouched since $2, that no job will run: no queued or
# picked run_task row names them. (The CASE keeps the JSON cast off other entrypoints' rows.)
_ORPHANS = """
    SELECT t.*
      FROM tasks t
     WHERE t.status = ANY($1::text[])
       AND t.updated_at < $2
       AND NOT EXISTS (
           SELECT 1
             FROM pgqueuer j
            WHERE j.entrypoint = 'run_task'
              AND j.status IN ('queued', 'picked')
              AND CASE WHEN j.entrypoint = 'run_task'
                       THEN (convert_from(j.payload, 'UTF8')::jsonb ->> 'task_id')::bigint
                   END = t.id)
     ORDER BY t.id
"""
_LOCK_ORPHAN = """
    SELECT t.*
      FROM tasks t
     WHERE t.id = $1
       AND t.status = ANY($2::text[])
       AND NOT EXISTS (
           SELECT 1
             FROM pgqueuer j
            WHERE j.entrypoint = 'run_task'
              AND j.status IN ('queued', 'picked')
              AND CASE WHEN j.entrypoint = 'run_task'
                       THEN (convert_from(j.payload, 'UTF8')::jsonb ->> 'task_id')::bigint
                   END = t.id)
       FOR UPDATE OF t
"""
# The task, locked, if it is (still) in one of the statuses $2: a takeover of a task whose
# worker died (jobs.run_task) counts and records it under this lock.
_LOCK_TASK = """
    SELECT t.*
      FROM tasks t
     WHERE t.id = $1
       AND t.status = ANY($2::text[])
       FOR UPDATE OF t
"""
# run_task jobs being run now: picked, with a heartbeat fresher than $1 seconds.
_RUNNING_JOBS = """
    SELECT count(*)
      FROM pgqueuer
     WHERE entrypoint = 'run_task'
       AND status = 'picked'
       AND heartbeat >= now() - make_interval(secs => $1)
"""
# Recoveries since the task last ended (a /retry starts the count again): requeues by the
# recovery round, and takeovers of a job whose worker died (payload "takeover": true).
_RECOVERIES = """
    SELECT count(*)
      FROM task_events e
     WHERE e.task_id = $1
       AND e.kind = 'task_recovered'
       AND e.id > coalesce((SELECT max(f.id)
                              FROM task_events f
                             WHERE f.task_id = $1
                               AND f.kind IN ('task_failed', 'task_blocked', 'task_cancelled')),
                           0)
"""
_TASK_STATES = """
    SELECT t.id, t.key, t.status, t.updated_at, t.finished_at,
           EXISTS (SELECT 1
                     FROM artifacts a
                    WHERE a.task_id = t.id AND a.filename = 'combined.mbox') AS has_mbox,
           EXISTS (SELECT 1
                     FROM pgqueuer j
                    WHERE j.entrypoint = 'run_task'
                      AND j.status IN ('queued', 'picked')
                      AND CASE WHEN j.entrypoint = 'run_task'
                               THEN (convert_from(j.payload, 'UTF8')::jsonb ->> 'task_id')::bigint
                           END = t.id) AS has_job
      FROM tasks t
     WHERE t.key = ANY($1::text[])
"""
# `busy`: the repo has a task that may still use its mirror (not done, failed or cancelled;
# a blocked task may resume from its branch).
_REPO_STATES = """
    SELECT r.name, r.active, r.default_branch,
           EXISTS (SELECT 1
                     FROM tasks t
                    WHERE t.repo_id = r.id
                      AND t.status NOT IN ('done', 'failed', 'cancelled')) AS busy
      FROM repos r
     ORDER BY r.name
"""


@dataclass(frozen=True, slots=True)
class TaskState:
    """What the disk clean-up asks about a task it finds a worktree or a branch of."""

    id: int
    key: str
    status: TaskStatus
    updated_at: datetime
    finished_at: datetime | None
    has_mbox: bool  # its patches are stored (artifacts: combined.mbox)
    has_job: bool  # a run_task job will run it, or runs it now

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(r["id"], r["key"], TaskStatus(r["status"]), r["updated_at"],
                   r["finished_at"], r["has_mbox"], r["has_job"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class RepoState:
    name: str
    active: bool
    default_branch: str
    busy: bool  # some task of it is not done, failed or cancelled


class HousekeepingRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def orphans(
        self, statuses: Iterable[TaskStatus], untouched_since: datetime
    ) -> list[Task]:
        """Tasks in `statuses` not updated since `untouched_since` that no job will run."""
        rows = await self._db.fetch(_ORPHANS, sorted(statuses), untouched_since)
        return [Task.from_record(r) for r in rows]

    async def running_jobs(self, fresh_within_seconds: float) -> int:
        """run_task jobs picked by a worker whose heartbeat for them is fresh."""
        return int(await self._db.fetchval(_RUNNING_JOBS, float(fresh_within_seconds)))

    async def lock_orphan(self, task_id: int, statuses: Iterable[TaskStatus]) -> Task | None:
        """The task, locked, if it is still in `statuses` with no job; inside a transaction."""
        row = await self._db.fetchrow(_LOCK_ORPHAN, task_id, sorted(statuses))
        return None if row is None else Task.from_record(row)

    async def lock_task(self, task_id: int, statuses: Iterable[TaskStatus]) -> Task | None:
        """The task, locked, if it is in `statuses`; inside a transaction."""
        row = await self._db.fetchrow(_LOCK_TASK, task_id, sorted(statuses))
        return None if row is None else Task.from_record(row)

    async def recoveries(self, task_id: int) -> int:
        """How often the task was recovered since it last ended: requeued by the recovery
        round, or taken over from a dead worker."""
        return int(await self._db.fetchval(_RECOVERIES, task_id))

    async def task_states(self, keys: Collection[str]) -> dict[str, TaskState]:
        rows = await self._db.fetch(_TASK_STATES, sorted(keys))
        return {r["key"]: TaskState.from_record(r) for r in rows}

    async def repo_states(self) -> Sequence[RepoState]:
        rows = await self._db.fetch(_REPO_STATES)
        return [RepoState(r["name"], r["active"], r["default_branch"], r["busy"]) for r in rows]
