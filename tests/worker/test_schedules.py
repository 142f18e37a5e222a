"""The housekeeping schedules: registered with PgQueuer, fired by its scheduler once at a time
across workers, and each scheduled job doing its work (called directly, with a clock)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pgqueuer import AsyncpgPoolDriver, Queries, SchedulerManager
from pgqueuer.models import Schedule

from storage.notifications import NoticeKind, NotificationRepo
from storage.repos import NewRepo, RepoRepo
from storage.task_events import record_move
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from tests.worker.running import SETTINGS, Pool, running_worker, wait_until, worker_deps
from worker import recovery, schedules
from worker.queue import submit_task
from worker.schedules import Housekeeping
from worker.settings import WorkerSettings
from worker.workspace import Workspace

EXPECTED = {
    "recover_tasks": "* * * * *",
    "outbox_upkeep": "*/10 * * * *",
    "collect_garbage": "17 * * * *",
    "daily_report": "0 8 * * *",
}


def _housekeeping(pool: Pool, tmp_path: Path, *, later: timedelta, **settings: Any) -> Housekeeping:
    """The scheduled jobs with a clock `later` ahead of the real one."""
    workspace = Workspace(tmp_path / "workspaces")
    chosen = WorkerSettings(**settings)
    return Housekeeping(pool, workspace, tmp_path / "repo-maps", chosen,
                        clock=lambda: datetime.now(UTC) + later)  # fmt: skip


async def _orphan(pool: Pool, *, chat_id: int | None = None) -> Task:
    """A task left running by a worker that died: its job row is gone."""
    repo = await RepoRepo(pool).add(NewRepo(name="web", source="/x", default_branch="main"))
    async with pool.acquire() as conn:
        task = await submit_task(conn, NewTask(repo_id=repo.id, title="Fix", chat_id=chat_id))
    async with pool.acquire() as conn, conn.transaction():
        for step in (TaskStatus.PREPARING, TaskStatus.RUNNING):
            task = await record_move(conn, task, step)
    await pool.execute("DELETE FROM pgqueuer")
    return task


def test_each_schedule_has_its_time_and_the_report_its_hour() -> None:
    assert schedules.expressions(WorkerSettings()) == EXPECTED
    assert schedules.expressions(WorkerSettings(daily_report_hour=23))["daily_report"] == (
        "0 23 * * *"
    )
    assert "daily_report" not in schedules.expressions(WorkerSettings(daily_report_hour=-1))


async def test_register_adds_every_schedule_to_the_scheduler(pool: Pool, tmp_path: Path) -> None:
    scheduler = SchedulerManager(Queries(AsyncpgPoolDriver(pool)))
    schedules.register(scheduler, _housekeeping(pool, tmp_path, later=timedelta(0)))
    registered = {(k.entrypoint, k.expression) for k in scheduler.registry}
    assert registered == set(EXPECTED.items())


async def test_a_running_worker_stores_its_schedules_in_pgqueuer(
    db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    async def stored() -> bool:
        count = await pool.fetchval("SELECT count(*) FROM pgqueuer_schedules")
        return int(count) == len(EXPECTED)

    async with running_worker(db_dsn, tmp_path / "home"):
        await wait_until(stored, "the schedules in pgqueuer_schedules", within=10)
    rows = await pool.fetch("SELECT entrypoint, expression, status::text FROM pgqueuer_schedules")
    assert {(r["entrypoint"], r["expression"]) for r in rows} == set(EXPECTED.items())
    assert {r["status"] for r in rows} == {"queued"}


@contextlib.asynccontextmanager
async def _scheduler(pool: Pool, housekeeping: Housekeeping) -> AsyncIterator[None]:
    """A SchedulerManager as a worker runs it, plus a schedule firing every second so that
    its loop looks for due schedules often (ours are a minute apart at the closest)."""
    scheduler = SchedulerManager(Queries(AsyncpgPoolDriver(pool)))
    schedules.register(scheduler, housekeeping)

    @scheduler.schedule("test_tick", "* * * * * *")
    async def tick(_: Schedule) -> None:
        return None

    runner = asyncio.create_task(scheduler.run())
    try:
        yield
    finally:
        scheduler.shutdown.set()
        await asyncio.wait_for(runner, timeout=10)


async def test_pgqueuer_fires_a_due_schedule_once_though_two_workers_run_it(
    pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await _orphan(pool)
    runs: list[datetime] = []
    real_recover = recovery.recover

    async def counted(*args: Any, **kwargs: Any) -> recovery.Recovery:
        runs.append(datetime.now(UTC))
        await asyncio.sleep(1.5)  # long enough for the other worker to look meanwhile
        return await real_recover(*args, **kwargs)

    monkeypatch.setattr(recovery, "recover", counted)
    housekeeping = _housekeeping(pool, tmp_path, later=timedelta(hours=1))
    async with _scheduler(pool, housekeeping), _scheduler(pool, housekeeping):

        async def inserted() -> bool:
            query = "SELECT count(*) FROM pgqueuer_schedules WHERE entrypoint = 'recover_tasks'"
            return int(await pool.fetchval(query)) == 1

        await wait_until(inserted, "the schedule row", within=10)
        await pool.execute("UPDATE pgqueuer_schedules SET next_run = now() - interval '1 second' "
                           "WHERE entrypoint = 'recover_tasks'")  # fmt: skip

        async def requeued() -> bool:
            return (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED

        await wait_until(requeued, "the orphan requeued by the scheduled recovery", within=15)
        await asyncio.sleep(3)  # both schedulers poll again meanwhile
    # Once per due time. (The schedule is every minute: when the forced run falls just before
    # a minute turns, that minute's own run follows in the sleep above, rightly.)
    assert runs
    minutes = [run.replace(second=0, microsecond=0) for run in runs]
    assert len(set(minutes)) == len(runs), runs
    row = await pool.fetchrow("SELECT status::text, last_run, next_run FROM pgqueuer_schedules "
                              "WHERE entrypoint = 'recover_tasks'")  # fmt: skip
    assert row is not None
    assert row["status"] == "queued"
    assert row["last_run"] is not None
    assert row["next_run"] > datetime.now(UTC)  # the next minute


async def test_the_scheduled_jobs_do_their_work(pool: Pool, tmp_path: Path, upstream: Path) -> None:
    orphan = await _orphan(pool, chat_id=77)
    housekeeping = _housekeeping(pool, tmp_path, later=timedelta(hours=1))

    assert (await housekeeping.recover_tasks()).requeued == [orphan.key]

    rows = NotificationRepo(pool)
    old = await rows.add(77, NoticeKind.MESSAGE, "old", payload={"html": "x"})
    assert old is not None
    await rows.mark_sent(old)
    await pool.execute("UPDATE notifications SET sent_at = now() - interval '15 days' "
                       "WHERE dedupe_key = 'old'")  # fmt: skip
    revived, deleted = await housekeeping.outbox_upkeep()
    assert (revived, deleted) == ([], 1)

    workspace = housekeeping.workspace
    mirror = await workspace.sync_mirror("web", str(upstream))
    await workspace.create_worktree(mirror, "WEB-7", "main")  # a task that no longer exists
    assert (await housekeeping.collect_garbage()).worktrees == ["WEB-7"]

    assert await housekeeping.daily_report() == [77]
    assert await housekeeping.daily_report() == []  # once per chat and day
    [report] = await pool.fetch("SELECT * FROM notifications WHERE kind = 'report'")
    today = (datetime.now(UTC) + timedelta(hours=1)).date()
    assert report["dedupe_key"] == f"report:77:{today.isoformat()}"


async def test_a_broken_scheduler_is_logged_and_the_worker_goes_on(
    pool: Pool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="worker.schedules")
    await pool.execute("DROP TABLE pgqueuer_schedules")
    deps = worker_deps(pool, tmp_path, settings=SETTINGS)
    async with schedules.running(deps, repo_maps=tmp_path / "repo-maps"):
        await wait_until(_logged(caplog), "the scheduler's error logged", within=10)
    assert "pgqueuer_schedules table is missing" in caplog.text


def _logged(caplog: pytest.LogCaptureFixture) -> Any:
    async def found() -> bool:
        return any(r.getMessage() == "housekeeping schedules stopped" for r in caplog.records)

    return found
