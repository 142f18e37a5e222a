"""The PgQueuer consumer: concurrency, and shutdown in the middle of a task."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path
from typing import TypeAlias

import asyncpg

from storage.repos import NewRepo, RepoRepo
from storage.task_events import TaskEventRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, TaskRepo
from tests.gitrepos import git, make_repo
from tests.procs import wait_gone
from worker.app import run_worker
from worker.queue import submit_task
from worker.settings import ClaudeSettings, WorkerSettings
from worker.workspace import Workspace

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
AGENTS = Path(__file__).resolve().parents[1] / "fakes" / "agents"
PY = shlex.quote(sys.executable)


async def _wait_status(pool: Pool, task_id: int, status: TaskStatus, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if (await TaskRepo(pool).by_id(task_id)).status is status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"task never reached {status}")


async def test_shutdown_mid_task_kills_the_agent_and_requeues_the_task(
    pool: Pool, db_dsn: str, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "up", {"README.md": "x\n"})
    pids = tmp_path / "pids"
    agent = f"{PY} {shlex.quote(str(AGENTS / 'hang.py'))} {shlex.quote(str(pids))} --write wip.txt"
    repo = await RepoRepo(pool).add(NewRepo(name="up", source=str(upstream),
                                            default_branch="main", agent_backend="command",
                                            agent_command=agent))  # fmt: skip
    async with pool.acquire() as conn:
        task = await submit_task(conn, NewTask(repo_id=repo.id, title="never ends"))
    stop = asyncio.Event()
    settings = WorkerSettings(concurrency=1, shutdown_grace_seconds=0.2)
    worker = asyncio.create_task(
        run_worker(db_dsn, settings, ClaudeSettings(), tmp_path / "home", stop)
    )
    await _wait_status(pool, task.id, TaskStatus.RUNNING, within=20)
    for _ in range(200):  # the agent has started its child
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(worker, timeout=20)

    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED
    queued = await pool.fetch("SELECT payload FROM pgqueuer WHERE status = 'queued'")
    assert [bytes(r["payload"]) for r in queued] == [f'{{"task_id":{task.id}}}'.encode()]
    for pid in map(int, pids.read_text().split()):
        assert await wait_gone(pid)
    kinds = [e.kind.value for e in await TaskEventRepo(pool).for_task(task.id)]
    assert kinds[-1] == "task_queued"
    # what the agent wrote so far waits on the task branch for the next run
    mirror = Workspace(tmp_path / "home" / "workspaces").mirror_path("up")
    branch = f"agent/{task.key}"
    assert git(mirror, "log", "-1", "--format=%s", branch) == f"{task.key}: work in progress"
    assert git(mirror, "show", f"{branch}:wip.txt") == "partial work"
