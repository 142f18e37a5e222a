"""Pausing the worker: no new job is taken while paused; running tasks finish; resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from storage.worker_state import WorkerStateRepo
from tests.worker.running import (
    Pool,
    add_repo,
    hang_agent,
    job_status,
    pipeline_agent,
    running_worker,
    submit,
    wait_pids,
    wait_status,
    wait_until,
)

SWITCH_MESSAGES = ("worker paused", "worker resumed")


async def _stays_queued(pool: Pool, task: Task, seconds: float) -> None:
    """Throughout `seconds`: the task is queued, and so is its job in PgQueuer's table."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED
        assert await job_status(pool, task) == "queued"
        await asyncio.sleep(0.1)


def _switches(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage() in SWITCH_MESSAGES]


async def test_a_paused_worker_takes_no_job_until_resumed(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="worker.control")
    repo = await add_repo(pool, upstream, pipeline_agent("write"))
    await WorkerStateRepo(pool).set_paused(True)
    async with running_worker(db_dsn, tmp_path / "home"):
        task = await submit(pool, repo)
        await _stays_queued(pool, task, seconds=1.5)
        await WorkerStateRepo(pool).set_paused(False)
        done = await wait_status(pool, task.id, TaskStatus.DONE)
    assert done.status_reason == "1 commit(s) ready as patches"
    assert _switches(caplog) == ["worker paused", "worker resumed"]  # once per change


async def test_a_task_running_when_the_pause_arrives_finishes(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="worker.control")
    pids, release = tmp_path / "pids", tmp_path / "release"
    agent = hang_agent(pids, "--write", "partial.txt", "--until", str(release))
    repo = await add_repo(pool, upstream, agent)
    running = await submit(pool, repo, "first")
    async with running_worker(db_dsn, tmp_path / "home"):  # two tasks at once when not paused
        await wait_status(pool, running.id, TaskStatus.RUNNING)
        await wait_pids(pids)
        await WorkerStateRepo(pool).set_paused(True)

        async def pause_seen() -> bool:
            return _switches(caplog) == ["worker paused"]

        await wait_until(pause_seen, "the worker saw the pause", within=10)
        waiting = await submit(pool, repo, "second")
        await _stays_queued(pool, waiting, seconds=1.0)

        release.touch()  # the running task finishes, pause or not
        await wait_status(pool, running.id, TaskStatus.DONE)
        await _stays_queued(pool, waiting, seconds=0.5)
        await WorkerStateRepo(pool).set_paused(False)
        await wait_status(pool, waiting.id, TaskStatus.DONE)
    assert _switches(caplog) == ["worker paused", "worker resumed"]


async def test_a_paused_worker_stops_without_being_interrupted(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="worker.app")
    repo = await add_repo(pool, upstream, pipeline_agent("write"))
    await WorkerStateRepo(pool).set_paused(True)
    async with running_worker(db_dsn, tmp_path / "home"):  # leaving it waits for the stop
        task = await submit(pool, repo)
        await _stays_queued(pool, task, seconds=0.3)
    assert await job_status(pool, task) == "queued"
    messages = [r.getMessage() for r in caplog.records if r.name == "worker.app"]
    assert "worker stopped" in messages
    assert "worker interrupting running tasks; they are requeued" not in messages
