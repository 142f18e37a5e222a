"""The night cycle over a backlog of scripted tasks, driven tick by tick with an injected
clock: feeding within the concurrency, retries once a night, duplicate ticks after a
restart, and the stop at the end time with its summary."""

from __future__ import annotations

import asyncio
import json
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import night_texts
from storage.db import create_pool
from storage.errors import Conflict
from storage.nights import Night, NightRepo
from storage.notifications import NoticeKind
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from tests.gitrepos import make_repo
from tests.worker.running import PY, Pool, running_worker, worker_deps
from worker import jobs, night
from worker.payloads import NightTickPayload
from worker.queue import submit_task

# The injected clock starts just after the real one: the database stamps `started_at` itself,
# and a night must end after it started.
START = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
CHAT = 1001


async def _repo(pool: Pool, tmp_path: Path) -> Repo:
    upstream = make_repo(tmp_path / "up", {"README.md": "# Demo\n"})
    agent = tmp_path / "agent.py"
    agent.write_text("import pathlib, sys\npathlib.Path('out.txt').write_text(sys.argv[1][:50])\n")
    new = NewRepo(name="shop", source=str(upstream), default_branch="main",
                  agent_backend="command",
                  agent_command=f"{PY} {shlex.quote(str(agent))} {{prompt}}")  # fmt: skip
    return await RepoRepo(pool).add(new)


async def _backlog(pool: Pool, repo: Repo, *priorities: int) -> list[Task]:
    out = []
    async with pool.acquire() as conn:
        for n, priority in enumerate(priorities):
            new = NewTask(repo_id=repo.id, title=f"Backlog item {n}", priority=priority)
            out.append(await submit_task(conn, new, later=True))
    return out


async def _start(pool: Pool, hours: float = 8) -> Night:
    async with pool.acquire() as conn, conn.transaction():
        started = await NightRepo(conn).start(chat_id=CHAT, thread_id=None, by="Alice",
                                              ends_at=START + timedelta(hours=hours))  # fmt: skip
        await night.begin(conn, started)
    return started


async def _due_tick(pool: Pool) -> NightTickPayload:
    """The night's pending tick job (the newest), as the worker would take it."""
    raw = await pool.fetchval("SELECT payload FROM pgqueuer WHERE entrypoint = 'night_tick' "
                              "ORDER BY id DESC LIMIT 1")  # fmt: skip
    return NightTickPayload.model_validate_json(raw)


async def _tick(pool: Pool, at: datetime, payload: NightTickPayload | None = None,
                concurrency: int = 2) -> NightTickPayload:  # fmt: skip
    payload = payload or await _due_tick(pool)
    async with pool.acquire() as conn:
        await night.tick(conn, payload, concurrency=concurrency, now=at)
    return payload


async def _statuses(pool: Pool, tasks: list[Task]) -> list[str]:
    return [(await TaskRepo(pool).by_id(t.id)).status.value for t in tasks]


async def test_a_night_feeds_the_backlog_within_the_concurrency_by_priority(
    pool: Pool, tmp_path: Path
) -> None:
    repo = await _repo(pool, tmp_path)
    low, urgent, normal = await _backlog(pool, repo, 4, 1, 3)
    await _start(pool)
    await _tick(pool, START)
    assert await _statuses(pool, [low, urgent, normal]) == ["pending", "queued", "queued"]
    await _tick(pool, START + timedelta(seconds=30))  # full: nothing more
    assert await _statuses(pool, [low]) == ["pending"]
    deps = worker_deps(pool, tmp_path)
    await jobs.run_task(urgent.id, deps)
    await _tick(pool, START + timedelta(minutes=1))
    assert await _statuses(pool, [low, urgent]) == ["queued", "done"]


async def test_failed_tasks_worth_it_are_retried_once_a_night(pool: Pool, tmp_path: Path) -> None:
    repo = await _repo(pool, tmp_path)
    tasks = TaskRepo(pool)
    worth, hard = await _backlog(pool, repo, 3, 3)
    for task, reason in ((worth, "verification failed at step test (pytest.assertion)"),
                         (hard, "agent run 1 ended; escalated: agent.auth")):  # fmt: skip
        await tasks.move(task.id, TaskStatus.QUEUED)
        await tasks.move(task.id, TaskStatus.FAILED, reason=reason)
    started = await _start(pool)
    await pool.execute("UPDATE tasks SET finished_at = $1", START - timedelta(hours=1))
    await _tick(pool, START, concurrency=4)
    assert await _statuses(pool, [worth, hard]) == ["queued", "failed"]
    await tasks.move(worth.id, TaskStatus.PREPARING)
    await tasks.move(worth.id, TaskStatus.FAILED, reason="verification failed again")
    await _tick(pool, START + timedelta(minutes=1), concurrency=4)
    assert await _statuses(pool, [worth]) == ["failed"]  # once a night
    fed = await NightRepo(pool).fed(started.id)
    assert [(f.task.key, f.reason) for f in fed] == [(worth.key, "retry")]


async def test_a_restart_mid_night_runs_nothing_twice_and_the_night_ends_on_time(
    pool: Pool, db_dsn: str, tmp_path: Path
) -> None:
    repo = await _repo(pool, tmp_path)
    backlog = await _backlog(pool, repo, 3, 3, 3, 2, 3)
    started = await _start(pool, hours=2)
    deps = worker_deps(pool, tmp_path)
    clock = START
    first = await _tick(pool, clock)
    for task in backlog:
        if (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED:
            await jobs.run_task(task.id, deps)

    # The worker dies and comes back: a new pool, and the tick it had run is run again.
    fresh = await create_pool(db_dsn)
    try:
        await _tick(fresh, clock + timedelta(minutes=1), payload=first)  # stale: nothing
        assert sum(s == "queued" for s in await _statuses(fresh, backlog)) == 0
        while clock < started.ends_at + timedelta(minutes=5):
            clock += timedelta(seconds=30)
            await _tick(fresh, clock)
            for task in backlog:
                if (await TaskRepo(fresh).by_id(task.id)).status is TaskStatus.QUEUED:
                    await jobs.run_task(task.id, worker_deps(fresh, tmp_path))
            if (await NightRepo(fresh).by_id(started.id)).stopped_at is not None:  # type: ignore[union-attr]
                break
    finally:
        await fresh.close()

    ended = await NightRepo(pool).by_id(started.id)
    assert ended is not None
    assert ended.stopped_at == started.ends_at
    assert ended.stop_reason == f"ended at {started.ends_at:%H:%M} UTC"
    assert await _statuses(pool, backlog) == ["done"] * 5
    for task in backlog:  # each ran exactly once
        assert len(await TaskRunRepo(pool).for_task(task.id)) == 1
    fed = await NightRepo(pool).fed(started.id)
    assert sorted(f.task.key for f in fed) == sorted(t.key for t in backlog)
    [summary] = await pool.fetch("SELECT chat_id, kind, payload::text FROM notifications "
                                 "WHERE dedupe_key = $1", f"night:{started.id}")  # fmt: skip
    assert (summary["chat_id"], summary["kind"]) == (CHAT, NoticeKind.NIGHT.value)
    assert json.loads(summary["payload"]) == {"night_id": started.id}
    text = night_texts.summary(ended, fed, UTC, "https://ds.example/")
    assert "<b>Night summary</b>" in text
    assert "5 task(s) run: done 5" in text
    assert all(f'<a href="https://ds.example/tasks/{t.key}">{t.key}</a>' in text for t in backlog)
    await _tick(pool, clock + timedelta(minutes=1))  # a tick after the end: nothing
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE dedupe_key LIKE "
                               "'night:%'") == 1  # fmt: skip


async def test_one_night_at_a_time_and_stop_sums_it_up_once(pool: Pool, tmp_path: Path) -> None:
    repo = await _repo(pool, tmp_path)
    await _backlog(pool, repo, 3)
    started = await _start(pool)
    with pytest.raises(Conflict):
        await _start(pool)
    async with pool.acquire() as conn, conn.transaction():
        assert await night.finish(conn, started, START + timedelta(hours=1), "stopped by Alice")
    async with pool.acquire() as conn, conn.transaction():
        assert not await night.finish(conn, started, START + timedelta(hours=2), "again")
    assert await NightRepo(pool).current() is None
    payload = json.loads(
        await pool.fetchval(
            "SELECT payload FROM notifications WHERE dedupe_key = $1", f"night:{started.id}"
        )
    )
    ended = await NightRepo(pool).by_id(payload["night_id"])
    assert ended is not None
    text = night_texts.summary(ended, [], UTC, None)
    assert "stopped by Alice" in text
    assert "0 task(s) run: none" in text


async def test_the_real_worker_runs_a_short_night_to_its_end(
    pool: Pool, db_dsn: str, tmp_path: Path
) -> None:
    repo = await _repo(pool, tmp_path)
    backlog = await _backlog(pool, repo, 3, 2)
    ends_at = datetime.now(UTC) + timedelta(seconds=4)
    async with pool.acquire() as conn, conn.transaction():
        short = await NightRepo(conn).start(chat_id=CHAT, thread_id=None, by="Alice",
                                            ends_at=ends_at)  # fmt: skip
        await night.begin(conn, short)
    async with running_worker(db_dsn, tmp_path / "home"):
        async with asyncio.timeout(60):
            while not await _settled(pool, short.id, backlog):  # noqa: ASYNC110  # polls the DB
                await asyncio.sleep(0.2)
    assert await _statuses(pool, backlog) == ["done", "done"]
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE dedupe_key = $1",
                               f"night:{short.id}") == 1  # fmt: skip


async def _settled(pool: Pool, night_id: int, tasks: list[Task]) -> bool:
    """The night has stopped and none of `tasks` is queued or running any more."""
    ended = await NightRepo(pool).by_id(night_id)
    busy = {"queued", "preparing", "running", "verifying", "delivering"}
    statuses = await _statuses(pool, tasks)
    return ended is not None and ended.stopped_at is not None and not busy & set(statuses)
