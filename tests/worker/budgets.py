"""Helpers of the budget tests: repos, tasks, Extend & resume, scripted Claude runs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind, TaskEvent, TaskEventRepo
from storage.tasks import NewTask, Task, TaskRepo
from tests.claude_samples import SAMPLES
from tests.procs import is_gone
from tests.worker.running import Pool, fake_claude, worker_deps
from worker.agents.claude import ClaudeBackend
from worker.deps import WorkerDeps
from worker.queue import queue_task, submit_task
from worker.settings import WorkerSettings

SETTINGS = WorkerSettings(agent_timeout_seconds=20)
PLAN = {"summary": "Add a greeting file", "approach": "Write it.", "risks": [],
        "steps": ["Write hello.txt"], "files_to_touch": ["hello.txt"],
        "acceptance_check": "it says hello"}  # fmt: skip


async def budget_repo(pool: Pool, upstream: Path, command: str = "", *, max_attempts: int = 3,
                backend: str = "command", **options: Any) -> Repo:  # fmt: skip
    new = NewRepo(name="demo", source=str(upstream), default_branch="main",
                  agent_backend=backend, agent_command=command, max_attempts=max_attempts,
                  git_author_name="Agent", git_author_email="agent@example.invalid",
                  **options)  # fmt: skip
    return await RepoRepo(pool).add(new)


async def submit_task_with(pool: Pool, repo: Repo, **options: Any) -> Task:
    async with pool.acquire() as conn:
        return await submit_task(conn, NewTask(repo_id=repo.id, title="Say hello", **options))


async def extend_and_resume(
    pool: Pool, task_id: int, *, cost_usd: Decimal | None = None, wall_seconds: int | None = None,
    turns: int | None = None,
) -> Task:  # fmt: skip
    """What the bot's Extend & resume does: new limits, then queued again, together."""
    async with pool.acquire() as conn, conn.transaction():
        tasks = TaskRepo(conn)
        task = await tasks.by_id(task_id)
        task = await tasks.set_budget(
            task_id, cost_usd=cost_usd or task.max_cost_usd,
            wall_seconds=wall_seconds or task.max_wall_seconds, turns=turns or task.max_turns,
        )  # fmt: skip
        return await queue_task(conn, task)


async def task_events(pool: Pool, task: Task, kind: EventKind | None = None) -> list[TaskEvent]:
    events = await TaskEventRepo(pool).for_task(task.id)
    return [e for e in events if kind is None or e.kind is kind]


async def gone_at(pids: list[int], within: float) -> float:
    """The wall-clock time (time.time()) by which every one of `pids` is gone."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        if all(is_gone(pid) for pid in pids):
            return time.time()
        await asyncio.sleep(0.02)
    raise AssertionError(f"still running after {within} s: {pids}")


def claude_deps(pool: Pool, tmp_path: Path, *samples: str) -> WorkerDeps:
    """Every agent run is fake_claude.py replaying the next of `samples` (real CLI output);
    call N also writes change-N.txt, and its argv lands in tmp_path/claude-calls."""
    backend = ClaudeBackend(fake_claude(tmp_path), extra_env={
        "FAKE_CLAUDE_SAMPLE": os.pathsep.join(str(SAMPLES / name) for name in samples),
        "FAKE_CLAUDE_CALLS": str(tmp_path / "claude-calls"), "FAKE_CLAUDE_WRITE": "change",
    })  # fmt: skip
    deps = worker_deps(pool, tmp_path, settings=SETTINGS)
    return dataclasses.replace(deps, backend_for=lambda repo, name: backend)


def claude_argv(tmp_path: Path) -> list[list[str]]:
    calls = sorted((tmp_path / "claude-calls").glob("*.json"))
    return [json.loads(p.read_text())["argv"] for p in calls]


def flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None
