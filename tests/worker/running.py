"""Helpers for tests of the worker as it runs for real: run_worker, waits, scripted agents."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from worker.agents.registry import backend_factory
from worker.app import run_worker
from worker.control import WorkerControl
from worker.deps import WorkerDeps
from worker.embedder import EmbedderSettings, HashedEmbedder
from worker.forges.base import RetryPolicy
from worker.queue import submit_task
from worker.repo_map import RepoMapper
from worker.settings import ClaudeSettings, WorkerSettings
from worker.workspace import Workspace

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
AGENTS = Path(__file__).resolve().parents[1] / "fakes" / "agents"
PY = shlex.quote(sys.executable)
# Fast re-checks, a short grace: a failing test stops its worker quickly.
SETTINGS = WorkerSettings(concurrency=2, recheck_seconds=0.5, shutdown_grace_seconds=0.5)


def worker_deps(
    pool: Pool,
    tmp_path: Path,
    workspace: Workspace | None = None,
    settings: WorkerSettings | None = None,
) -> WorkerDeps:
    """What a job needs, for calling worker.jobs directly (no consumer)."""
    return WorkerDeps(
        pool=pool,
        workspace=workspace or Workspace(tmp_path / "workspaces"),
        settings=settings or WorkerSettings(),
        agent_homes=tmp_path / "agent-homes",
        backend_for=backend_factory(ClaudeSettings()),
        control=WorkerControl(),
        repo_maps=RepoMapper(tmp_path / "repo-maps"),
        embedder=HashedEmbedder(),
        memory=EmbedderSettings(),
        forge_env={},
        forge_retry=RetryPolicy(tries=3, first_delay=0.01, request_timeout=2.0),
    )


def hang_agent(pids: Path, *options: str) -> str:
    """tests/fakes/agents/hang.py as an agent or check command line."""
    return " ".join([PY, shlex.quote(str(AGENTS / "hang.py")), shlex.quote(str(pids)),
                     *map(shlex.quote, options)])  # fmt: skip


def fake_claude(tmp_path: Path) -> str:
    """An executable `claude` that runs tests/fakes/agents/fake_claude.py."""
    wrapper = tmp_path / "claude"
    wrapper.write_text(f'#!/bin/sh\nexec {PY} {shlex.quote(str(AGENTS / "fake_claude.py"))} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def pipeline_agent(mode: str) -> str:
    return f"{PY} {shlex.quote(str(AGENTS / 'pipeline_agent.py'))} {{prompt}} {mode}"


async def add_repo(pool: Pool, upstream: Path, agent_command: str, **checks: str) -> Repo:
    new = NewRepo(name="demo", source=str(upstream), default_branch="main",
                  agent_backend="command", agent_command=agent_command, max_attempts=1,
                  git_author_name="Agent", git_author_email="agent@example.invalid",
                  **checks)  # type: ignore[arg-type]  # fmt: skip
    return await RepoRepo(pool).add(new)


async def submit(pool: Pool, repo: Repo, title: str = "Say hello") -> Task:
    async with pool.acquire() as conn:
        return await submit_task(conn, NewTask(repo_id=repo.id, title=title))


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within} s: {what}")


async def wait_status(pool: Pool, task_id: int, status: TaskStatus, within: float = 20) -> Task:
    async def reached() -> bool:
        return (await TaskRepo(pool).by_id(task_id)).status is status

    await wait_until(reached, f"task {task_id} {status.value}", within)
    return await TaskRepo(pool).by_id(task_id)


def _pids(pid_file: Path) -> list[int]:
    text = pid_file.read_text() if pid_file.exists() else ""
    return [int(pid) for pid in text.split()]


async def wait_pids(pid_file: Path) -> list[int]:
    """The pids hang.py wrote once it and its child run."""

    async def written() -> bool:
        return len(_pids(pid_file)) == 2

    await wait_until(written, f"{pid_file.name} written", within=10)
    return _pids(pid_file)


async def job_status(pool: Pool, task: Task) -> str | None:
    """The status of the task's PgQueuer job; None once the job is gone."""
    value = await pool.fetchval(
        "SELECT status::text FROM pgqueuer WHERE convert_from(payload, 'UTF8') = $1",
        f'{{"task_id":{task.id}}}',
    )
    return str(value) if value is not None else None


@contextlib.asynccontextmanager
async def running_worker(
    db_dsn: str, home: Path, settings: WorkerSettings = SETTINGS
) -> AsyncIterator[None]:
    """run_worker() in the background; stopped (and its error raised) on leaving."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(db_dsn, settings, ClaudeSettings(), home, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=20)


class Planner:
    """One planner.py script: what the agent answers and does, and what it was told."""

    def __init__(self, tmp_path: Path, **script: Any) -> None:
        self.calls_dir = tmp_path / "calls"
        self.path = tmp_path / "script.json"
        self.path.write_text(json.dumps({"calls": str(self.calls_dir), **script}))

    @property
    def command(self) -> str:
        agent = shlex.quote(str(AGENTS / "planner.py"))
        return f"{PY} {agent} {{prompt}} {{phase}} {shlex.quote(str(self.path))}"

    def calls(self, phase: str | None = None) -> list[dict[str, Any]]:
        if not self.calls_dir.exists():
            return []
        found = [json.loads(p.read_text()) for p in sorted(self.calls_dir.iterdir())]
        return [c for c in found if phase is None or c["phase"] == phase]


class Sequence:
    """tests/fakes/agents/sequence.py: the Nth call follows the Nth step."""

    def __init__(self, tmp_path: Path, steps: list[dict[str, Any]]) -> None:
        self.calls_dir = tmp_path / "sequence-calls"
        self.path = tmp_path / "sequence.json"
        self.path.write_text(json.dumps({"calls": str(self.calls_dir), "steps": steps}))

    @property
    def command(self) -> str:
        agent = shlex.quote(str(AGENTS / "sequence.py"))
        return f"{PY} {agent} {{prompt}} {{phase}} {{session}} {shlex.quote(str(self.path))}"

    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_dir.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.calls_dir.glob("*.json"))]

    async def pids(self, call: int) -> list[int]:
        """The agent's and its child's pid, once the `call`th call hangs."""
        pid_file = self.calls_dir / f"{call:02d}.pids"

        async def written() -> bool:
            return len(pid_file.read_text().split()) == 2 if pid_file.exists() else False

        await wait_until(written, f"{pid_file.name} written", within=10)
        return [int(pid) for pid in pid_file.read_text().split()]
