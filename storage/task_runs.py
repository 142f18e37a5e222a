"""One row per agent invocation (plan or attempt) in `task_runs`."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import asyncpg

from storage.db import Executor

_START = """
    INSERT INTO task_runs (task_id, phase, attempt, backend, model)
    VALUES ($1, $2, $3, $4, $5)
    RETURNING id
"""
_FINISH = """
    UPDATE task_runs
       SET ok = $2, exit_code = $3, session_id = $4, cost_usd = $5, turns = $6,
           duration_seconds = $7, error_class = $8, error_message = $9, output_tail = $10,
           finished_at = now()
     WHERE id = $1
"""
_VERIFY = "UPDATE task_runs SET verify = $2::jsonb WHERE id = $1"
_FOR_TASK = "SELECT * FROM task_runs WHERE task_id = $1 ORDER BY id"
# A run the model API refused (rate limit, overload, out of quota) used no attempt
# (worker/backoff.py).
_ATTEMPTS = """
    SELECT count(*) FROM task_runs
     WHERE task_id = $1 AND phase = 'attempt'
       AND coalesce(error_class, '') NOT IN ('rate_limit', 'overloaded', 'quota')
"""


@dataclass(frozen=True, slots=True)
class TaskRun:
    id: int
    task_id: int
    phase: str
    attempt: int
    backend: str
    model: str | None
    session_id: str | None
    exit_code: int | None
    ok: bool | None
    cost_usd: Decimal | None
    turns: int | None
    duration_seconds: float | None
    error_class: str | None
    error_message: str
    output_tail: str
    verify: dict[str, Any] | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        values = {f.name: r[f.name] for f in fields(cls)}
        values["verify"] = json.loads(r["verify"]) if r["verify"] is not None else None
        return cls(**values)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    ok: bool
    exit_code: int | None
    session_id: str | None
    cost_usd: Decimal | None
    turns: int | None
    duration_seconds: float
    error_class: str | None
    error_message: str
    output_tail: str


class TaskRunRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def start(
        self, task_id: int, *, phase: str, attempt: int, backend: str, model: str | None
    ) -> int:
        run_id: int = await self._db.fetchval(_START, task_id, phase, attempt, backend, model)
        return run_id

    async def finish(self, run_id: int, o: RunOutcome) -> None:
        await self._db.execute(
            _FINISH, run_id, o.ok, o.exit_code, o.session_id, o.cost_usd, o.turns,
            o.duration_seconds, o.error_class, o.error_message, o.output_tail,
        )  # fmt: skip

    async def record_verify(self, run_id: int, verify: dict[str, Any]) -> None:
        await self._db.execute(_VERIFY, run_id, json.dumps(verify))

    async def for_task(self, task_id: int) -> list[TaskRun]:
        return [TaskRun.from_record(r) for r in await self._db.fetch(_FOR_TASK, task_id)]

    async def attempts_made(self, task_id: int) -> int:
        count: int = await self._db.fetchval(_ATTEMPTS, task_id)
        return count
