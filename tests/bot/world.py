"""Shared set-up for bot tests: people, repos and tasks in the test database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeAlias

import asyncpg

from bot.app import run_bot
from bot.deps import BotDeps
from bot.settings import BotSettings
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from worker.app import run_worker
from worker.queue import submit_task
from worker.settings import ClaudeSettings, WorkerSettings

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

ALICE = 1001  # allow-listed
MALLORY = 6666  # a stranger


def settings(**overrides: object) -> BotSettings:
    values: dict[str, object] = {
        "bot_token": "42:TEST",
        "allowed_users": frozenset({ALICE}),
        "private_chat_interval": 0.0,
        "group_chat_interval": 0.0,
    }
    return BotSettings(**(values | overrides))  # type: ignore[arg-type]


def make_deps(pool: Pool, **overrides: object) -> BotDeps:
    return BotDeps(pool=pool, settings=settings(**overrides))


async def add_repo(pool: Pool, name: str = "shop", source: str = "/tmp/none", **kw: object) -> Repo:
    new = NewRepo(name=name, source=source, default_branch="main", **kw)  # type: ignore[arg-type]
    return await RepoRepo(pool).add(new)


async def add_task(
    pool: Pool, repo: Repo, title: str = "Add a health endpoint", *, chat_id: int | None = ALICE,
    status: TaskStatus | None = None, thread_id: int | None = None,
) -> Task:  # fmt: skip
    """A queued task (from Alice's chat), optionally moved on to `status` along TRANSITIONS."""
    async with pool.acquire() as conn:
        new = NewTask(repo_id=repo.id, title=title, chat_id=chat_id, thread_id=thread_id,
                      created_by="test")  # fmt: skip
        task = await submit_task(conn, new)
    path = {
        TaskStatus.RUNNING: [TaskStatus.PREPARING, TaskStatus.RUNNING],
        TaskStatus.FAILED: [TaskStatus.PREPARING, TaskStatus.FAILED],
        TaskStatus.DONE: [TaskStatus.PREPARING, TaskStatus.RUNNING, TaskStatus.DELIVERING,
                          TaskStatus.DONE],
    }.get(status, [])  # type: ignore[arg-type]  # fmt: skip
    for step in path:
        task = await TaskRepo(pool).move(task.id, step)
    return task


@contextlib.asynccontextmanager
async def bot_and_worker(
    tg_url: str, db_dsn: str, home: Path, worker: WorkerSettings | None = None
) -> AsyncIterator[None]:
    """The real bot (long polling against the fake Bot API, outbox) and the real worker,
    running until the block ends."""
    stop = asyncio.Event()
    services = [
        asyncio.create_task(run_bot(settings(api_base_url=tg_url), db_dsn, stop)),
        asyncio.create_task(run_worker(db_dsn, worker or WorkerSettings(recheck_seconds=0.5),
                                       ClaudeSettings(), home, stop)),
    ]  # fmt: skip
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*services), timeout=30)
