from __future__ import annotations

import json
from datetime import timedelta
from typing import TypeAlias

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.models import Job
from pgqueuer.types import QueueExecutionMode

from storage.repos import NewRepo, RepoRepo
from storage.task_events import TaskEventRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, TaskRepo
from worker.payloads import RunTaskPayload
from worker.queue import submit_task

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def test_submit_creates_queued_task_with_job_and_events(pool: Pool) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="web", source="/x", default_branch="main"))
    async with pool.acquire() as conn:
        task = await submit_task(conn, NewTask(repo_id=repo.id, title="Fix it"))
    assert task.key == "WEB-1"
    assert task.status is TaskStatus.QUEUED
    jobs = await pool.fetch("SELECT entrypoint, payload, priority FROM pgqueuer")
    assert [(j["entrypoint"], json.loads(j["payload"])) for j in jobs] == [
        ("run_task", {"task_id": task.id})
    ]
    kinds = [e.kind.value for e in await TaskEventRepo(pool).for_task(task.id)]
    assert kinds == ["task_created", "status_changed", "task_queued"]


async def test_rollback_removes_task_and_job(pool: Pool) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="web", source="/x", default_branch="main"))
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await submit_task(conn, NewTask(repo_id=repo.id, title="Fix it"))
                raise RuntimeError("caller fails after submitting")
        except RuntimeError:
            pass
    assert await pool.fetchval("SELECT count(*) FROM pgqueuer") == 0
    assert await TaskRepo(pool).page() == []


async def test_critical_tasks_dequeue_before_low_ones(pool: Pool, db_dsn: str) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="web", source="/x", default_branch="main"))
    keys_by_id = {}
    async with pool.acquire() as conn:
        for priority in (4, 2, 1, 3, 4, 1):
            task = await submit_task(conn, NewTask(repo_id=repo.id, title="t", priority=priority))
            keys_by_id[task.id] = priority
    seen: list[int] = []
    listener = await asyncpg.connect(db_dsn)
    try:
        pgq = PgQueuer.from_asyncpg_connection(listener)

        @pgq.entrypoint("run_task", concurrency_limit=1)
        async def run_task(job: Job) -> None:
            payload = RunTaskPayload.model_validate_json(job.payload or b"")
            seen.append(keys_by_id[payload.task_id])

        await pgq.run(
            mode=QueueExecutionMode.drain, batch_size=1, dequeue_timeout=timedelta(seconds=1)
        )
    finally:
        await listener.close()
    assert seen == [1, 1, 2, 3, 4, 4]
