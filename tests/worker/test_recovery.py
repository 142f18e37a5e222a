"""Recovery of tasks whose worker died, against real task and PgQueuer job rows.

A worker takes a job with PgQueuer's own dequeue and moves the task on as jobs.run_task
does; it "dies" the way PgQueuer records it (the job row deleted as `canceled`, or held as
`failed`), or by just stopping its heartbeat.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from pgqueuer import AsyncpgPoolDriver, Queries
from pgqueuer.models import Job
from pgqueuer.ports.repository import EntrypointExecutionParameter
from pgqueuer.types import JOB_STATUS, QueueEntrypoint, QueueManagerId

from storage.repos import NewRepo, RepoRepo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from storage.workers import WorkerRepo
from tests.worker.running import Pool
from worker.queue import queue_task, submit_task
from worker.recovery import MAX_RECOVERIES, Recovery, recover

HEARTBEAT = timedelta(seconds=30)


async def _task(pool: Pool, **fields: object) -> Task:
    repo = await RepoRepo(pool).add(NewRepo(name="web", source="/x", default_branch="main"))
    async with pool.acquire() as conn:
        new = NewTask(repo_id=repo.id, title="Fix it", **fields)  # type: ignore[arg-type]
        return await submit_task(conn, new)


async def _dequeue(pool: Pool) -> list[Job]:
    """What a worker's QueueManager asks for: PgQueuer's own dequeue of run_task jobs."""
    return await Queries(AsyncpgPoolDriver(pool)).dequeue(
        batch_size=1,
        entrypoints={QueueEntrypoint("run_task"): EntrypointExecutionParameter(2)},
        queue_manager_id=QueueManagerId(uuid.uuid4()),
        global_concurrency_limit=None,
        heartbeat_timeout=HEARTBEAT,
    )


async def _take(pool: Pool, task: Task, to: TaskStatus = TaskStatus.RUNNING) -> Job:
    """A worker dequeues the task's job and starts on the task."""
    [job] = await _dequeue(pool)
    assert json.loads(job.payload or b"") == {"task_id": task.id}
    async with pool.acquire() as conn, conn.transaction():
        current = await TaskRepo(conn).by_id(task.id)
        path = [TaskStatus.PREPARING, TaskStatus.RUNNING, to]  # as jobs.run_task moves it
        for step in path[: path.index(to) + 1]:
            if current.status is not step:
                current = await record_move(conn, current, step)
    return job


async def _dies(pool: Pool, job: Job, status: JOB_STATUS) -> None:
    """What PgQueuer records for a job whose run ended without finishing the task:
    `canceled` deletes the row, `failed` (on_failure="hold") keeps it as failed."""
    await Queries(AsyncpgPoolDriver(pool)).log_jobs([(job, status, None)])


async def _recover(pool: Pool, *, later: timedelta = timedelta(hours=1)) -> Recovery:
    """A recovery round, as if `later` had passed (the grace period is long over)."""
    now = datetime.now(UTC) + later
    return await recover(pool, now=now, grace=timedelta(seconds=60), heartbeat_seconds=30)


async def _jobs(pool: Pool, task: Task) -> list[str]:
    rows = await pool.fetch(
        "SELECT status::text FROM pgqueuer WHERE convert_from(payload, 'UTF8') = $1 ORDER BY id",
        f'{{"task_id":{task.id}}}',
    )
    return [r["status"] for r in rows]


async def _recover_events(pool: Pool, task: Task) -> list[int]:
    events = await TaskEventRepo(pool).for_task(task.id)
    return [e.payload["recovery"] for e in events if e.kind is EventKind.TASK_RECOVERED]


async def test_a_task_whose_worker_died_is_requeued_twice_then_failed(pool: Pool) -> None:
    task = await _task(pool)
    assert MAX_RECOVERIES == 2
    deaths: list[JOB_STATUS] = ["canceled", "failed"]
    for death, status in enumerate(deaths, 1):
        job = await _take(pool, task, TaskStatus.RUNNING if death == 1 else TaskStatus.VERIFYING)
        await _dies(pool, job, status)
        result = await _recover(pool)
        assert result.requeued == [task.key]
        task = await TaskRepo(pool).by_id(task.id)
        assert task.status is TaskStatus.QUEUED
        assert (await _jobs(pool, task))[-1] == "queued"  # a new job will run it
        assert await _recover_events(pool, task) == list(range(1, death + 1))
    assert await _jobs(pool, task) == ["failed", "queued"]  # the held row stays for the page

    await _dies(pool, await _take(pool, task, TaskStatus.DELIVERING), "canceled")
    result = await _recover(pool)
    assert (result.requeued, result.failed) == ([], [task.key])
    task = await TaskRepo(pool).by_id(task.id)
    assert task.status is TaskStatus.FAILED
    assert task.status_reason.startswith(
        "the worker running it stopped (crashed or host lost) 3 times; it was queued again twice"
    )
    assert await _jobs(pool, task) == ["failed"]  # no new job
    events = [e.kind for e in await TaskEventRepo(pool).for_task(task.id)]
    assert events[-2:] == [EventKind.STATUS_CHANGED, EventKind.TASK_FAILED]
    assert (await _recover(pool)).failed == []  # it stays failed


async def test_a_retry_after_that_starts_the_count_again(pool: Pool) -> None:
    task = await _task(pool)
    for _ in range(MAX_RECOVERIES + 1):
        await _dies(pool, await _take(pool, task), "canceled")
        await _recover(pool)
        task = await TaskRepo(pool).by_id(task.id)
    assert task.status is TaskStatus.FAILED
    async with pool.acquire() as conn, conn.transaction():
        task = await queue_task(conn, task)  # /retry
    await _dies(pool, await _take(pool, task), "canceled")
    assert (await _recover(pool)).requeued == [task.key]


async def test_a_task_of_a_live_worker_is_left_alone(pool: Pool) -> None:
    task = await _task(pool)
    await _take(pool, task)  # picked, with a fresh heartbeat
    await WorkerRepo(pool).beat("host:1:aa", hostname="host", pid=1, concurrency=2, running=1)
    before = await TaskEventRepo(pool).for_task(task.id)
    result = await _recover(pool)
    assert (result.requeued, result.failed, result.skipped) == ([], [], False)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.RUNNING
    assert await TaskEventRepo(pool).for_task(task.id) == before
    assert await _jobs(pool, task) == ["picked"]


async def test_a_stale_job_is_left_to_pgqueuer_which_hands_it_to_another_worker(
    pool: Pool,
) -> None:
    task = await _task(pool)
    job = await _take(pool, task)
    await pool.execute("UPDATE pgqueuer SET heartbeat = now() - interval '10 minutes'")  # host lost
    assert (await _recover(pool)).requeued == []
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.RUNNING
    again = await _dequeue(pool)
    assert [j.id for j in again] == [job.id]  # PgQueuer re-delivers it; run_task starts over


async def test_recovery_waits_while_a_live_worker_runs_a_task_without_a_job(pool: Pool) -> None:
    task = await _task(pool)
    await _dies(pool, await _take(pool, task), "canceled")  # the row is gone (deleted by hand?)
    workers = WorkerRepo(pool)
    await workers.beat("host:1:aa", hostname="host", pid=1, concurrency=2, running=1)
    result = await _recover(pool)
    assert result.skipped
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.RUNNING
    await workers.beat("host:1:aa", hostname="host", pid=1, concurrency=2, running=0)
    assert (await _recover(pool)).requeued == [task.key]


async def test_a_task_touched_within_the_grace_period_waits(pool: Pool) -> None:
    task = await _task(pool)
    await _dies(pool, await _take(pool, task), "failed")
    assert (await _recover(pool, later=timedelta(0))).requeued == []
    assert (await _recover(pool)).requeued == [task.key]


async def test_a_task_with_a_cancel_request_is_cancelled_not_requeued(pool: Pool) -> None:
    task = await _task(pool)
    await _dies(pool, await _take(pool, task), "canceled")
    await TaskRepo(pool).request_cancel(task.id, "alice")
    result = await _recover(pool)
    assert result.cancelled == [task.key]
    task = await TaskRepo(pool).by_id(task.id)
    assert task.status is TaskStatus.CANCELLED
    assert task.status_reason == (
        "cancelled by alice; the worker running it stopped (crashed or host lost)"
    )
    assert await _jobs(pool, task) == []


async def test_a_queued_task_whose_job_is_lost_gets_a_new_one_and_the_backlog_waits(
    pool: Pool,
) -> None:
    queued = await _task(pool)
    async with pool.acquire() as conn:
        repo = await RepoRepo(conn).by_name("web")
        pending = await submit_task(conn, NewTask(repo_id=repo.id, title="later"), later=True)
    await pool.execute("DELETE FROM pgqueuer")  # e.g. cleared by hand
    result = await _recover(pool)
    assert (result.requeued, result.failed) == ([queued.key], [])
    assert (await TaskRepo(pool).by_id(queued.id)).status is TaskStatus.QUEUED
    assert await _jobs(pool, queued) == ["queued"]
    kinds = [e.kind for e in await TaskEventRepo(pool).for_task(queued.id)]
    assert kinds[-2:] == [EventKind.TASK_RECOVERED, EventKind.TASK_QUEUED]
    assert (await TaskRepo(pool).by_id(pending.id)).status is TaskStatus.PENDING  # no job due
