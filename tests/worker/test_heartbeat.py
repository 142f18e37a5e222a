"""Worker heartbeats: beat_forever against a real database, and run_worker's own row."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from storage.workers import Worker, WorkerRepo
from tests.worker.running import (
    SETTINGS,
    Pool,
    add_repo,
    hang_agent,
    running_worker,
    submit,
    wait_until,
)
from worker.heartbeat import RunningCount, beat_forever, worker_id


async def _row(pool: Pool, wid: str) -> Worker | None:
    return next((w for w in await WorkerRepo(pool).alive(3600) if w.id == wid), None)


def test_worker_id_names_the_host_and_process_and_differs_per_call() -> None:
    first, second = worker_id(), worker_id()
    assert re.fullmatch(rf"{re.escape(socket.gethostname())}:{os.getpid()}:[0-9a-f]{{6}}", first)
    assert first != second


async def test_beats_at_once_then_refreshes_and_deletes_its_row_on_stop(pool: Pool) -> None:
    wid, running, stop = worker_id(), RunningCount(), asyncio.Event()
    heart = asyncio.create_task(
        beat_forever(pool, wid, concurrency=3, running=running, every=0.1, stop=stop)
    )

    async def stored() -> bool:
        return await _row(pool, wid) is not None

    await wait_until(stored, "first heartbeat", within=5)
    first = await _row(pool, wid)
    assert first is not None
    assert (first.hostname, first.pid, first.concurrency, first.running) == (
        socket.gethostname(), os.getpid(), 3, 0,
    )  # fmt: skip
    running.value = 2

    async def refreshed() -> bool:
        row = await _row(pool, wid)
        return row is not None and row.seen_at > first.seen_at and row.running == 2

    await wait_until(refreshed, "a later heartbeat with running=2", within=5)
    assert not heart.done()
    stop.set()
    await asyncio.wait_for(heart, timeout=5)
    assert await _row(pool, wid) is None


async def test_a_database_error_is_logged_and_the_next_beat_tries_again(
    pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.heartbeat")
    await pool.execute("ALTER TABLE workers RENAME TO workers_away")  # every beat fails
    wid, stop = worker_id(), asyncio.Event()
    heart = asyncio.create_task(
        beat_forever(pool, wid, concurrency=1, running=RunningCount(), every=0.05, stop=stop)
    )

    def failures() -> int:
        return sum(r.getMessage() == "worker heartbeat failed" for r in caplog.records)

    async def failed_twice() -> bool:
        return failures() >= 2

    await wait_until(failed_twice, "two failed heartbeats", within=5)
    assert not heart.done()
    failed = [r for r in caplog.records if r.getMessage() == "worker heartbeat failed"]
    assert failed[0].levelno == logging.WARNING
    assert failed[0].__dict__["worker_id"] == wid
    assert failed[0].exc_info is not None

    await pool.execute("ALTER TABLE workers_away RENAME TO workers")  # the database is back

    async def stored() -> bool:
        return await _row(pool, wid) is not None

    await wait_until(stored, "a heartbeat after the error", within=5)
    await pool.execute("ALTER TABLE workers RENAME TO workers_away")  # gone again at stop
    stop.set()
    await asyncio.wait_for(heart, timeout=5)  # the failed delete is not raised either
    assert any(r.getMessage() == "worker row not deleted; it goes stale" for r in caplog.records)
    await pool.execute("ALTER TABLE workers_away RENAME TO workers")


async def test_run_worker_keeps_a_row_while_it_runs_and_deletes_it_on_stop(
    pool: Pool, db_dsn: str, tmp_path: Path
) -> None:
    workers = WorkerRepo(pool)

    async def registered() -> bool:
        return len(await workers.alive(60)) == 1

    async with running_worker(db_dsn, tmp_path / "home"):
        await wait_until(registered, "the worker's row", within=10)
        [row] = await workers.alive(60)
        assert (row.hostname, row.pid, row.concurrency, row.running) == (
            socket.gethostname(), os.getpid(), SETTINGS.concurrency, 0,
        )  # fmt: skip
        assert row.id.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert await workers.alive(3600) == []
    assert await workers.latest_seen() is None


async def test_run_worker_reports_how_many_tasks_it_runs(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    agent = hang_agent(tmp_path / "pids", "--until", str(release))
    task = await submit(pool, await add_repo(pool, upstream, agent))
    fast = SETTINGS.model_copy(update={"heartbeat_seconds": 1.0})  # a beat every second
    workers = WorkerRepo(pool)

    def running_is(count: int) -> Callable[[], Awaitable[bool]]:
        async def reported() -> bool:
            rows = await workers.alive(60)
            return len(rows) == 1 and rows[0].running == count

        return reported

    async with running_worker(db_dsn, tmp_path / "home", fast):
        await wait_until(running_is(1), f"{task.key} counted as running", within=20)
        release.touch()  # the agent finishes; so does the task
        await wait_until(running_is(0), f"{task.key} no longer counted", within=20)
    assert await workers.alive(3600) == []


async def test_a_starting_worker_deletes_rows_of_workers_long_gone(pool: Pool) -> None:
    repo = WorkerRepo(pool)
    await repo.beat("crashed:1:aa", hostname="crashed", pid=1, concurrency=1, running=1)
    await repo.beat("recent:2:bb", hostname="recent", pid=2, concurrency=1, running=0)
    await pool.execute("UPDATE workers SET seen_at = now() - interval '2 days' "
                       "WHERE id = 'crashed:1:aa'")  # fmt: skip
    stop = asyncio.Event()
    stop.set()  # one pass: prune, then straight to the clean stop
    await beat_forever(pool, "new:3:cc", concurrency=1, running=lambda: 0, every=1, stop=stop)
    left = {r["id"] for r in await pool.fetch("SELECT id FROM workers")}
    assert left == {"recent:2:bb"}
