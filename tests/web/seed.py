"""A database with something to show: repos, tasks in every state, events, runs, patches."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg

from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_runs import RunOutcome, TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from worker.queue import submit_task

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

MBOX = b"From 0123 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] Add <b>\n\n---\n a | 1 +\n"
PATCH = b"From 0123 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 1/1] Add\n\n"
HOSTILE = '<script>alert(1)</script> & "quotes"'


@dataclass
class World:
    shop: Repo
    api: Repo
    running: Task
    queued_low: Task
    queued_high: Task
    done: Task
    blocked: Task


async def add_repo(pool: Pool, name: str) -> Repo:
    new = NewRepo(name=name, source=f"/srv/{name}.git", default_branch="main",
                  max_cost_usd=Decimal(4))  # fmt: skip
    return await RepoRepo(pool).add(new)


async def add_task(pool: Pool, repo: Repo, title: str, *, priority: int = 3,
                   description: str = "") -> Task:  # fmt: skip
    async with pool.acquire() as conn:
        return await submit_task(conn, NewTask(repo_id=repo.id, title=title, priority=priority,
                                               description=description))  # fmt: skip


async def move(pool: Pool, task: Task, *steps: TaskStatus, **payload: Any) -> Task:
    async with pool.acquire() as conn, conn.transaction():
        for step in steps:
            last = step is steps[-1]
            task = await record_move(conn, task, step, reason="why: " + step.value if last else "",
                                     **(payload if last else {}))  # fmt: skip
    return task


async def seed(pool: Pool) -> World:
    shop, api = await add_repo(pool, "shop"), await add_repo(pool, "api")
    running = await add_task(pool, shop, "Speed up the cart", description=HOSTILE)
    running = await move(pool, running, TaskStatus.PREPARING, TaskStatus.RUNNING)
    events = TaskEventRepo(pool)
    await events.add(running.id, EventKind.AGENT_STARTED, {"attempt": 2, "phase": "attempt",
                                                          "backend": "claude"})  # fmt: skip
    queued_low = await add_task(pool, api, "Low priority chore", priority=4)
    queued_high = await add_task(pool, shop, "Critical fix", priority=1)
    done = await add_task(pool, shop, f"Add a footer {HOSTILE}")
    runs = TaskRunRepo(pool)
    run_id = await runs.start(done.id, phase="attempt", attempt=1, backend="claude",
                              model="sonnet")  # fmt: skip
    await runs.finish(run_id, RunOutcome(True, 0, "s1", Decimal("0.42"), 7, 61.5, None, "",
                                         "agent says: all done"))  # fmt: skip
    await runs.record_verify(run_id, {"passed": True, "steps": [
        {"name": "test", "command": "pytest -q", "exit_code": 0, "timed_out": False,
         "seconds": 1.2, "tail": "3 passed"}]})  # fmt: skip
    await TaskRepo(pool).add_spend(done.id, cost_usd=Decimal("0.42"), wall_seconds=70, turns=7)
    await events.add(done.id, EventKind.REALITY_SIGNAL, {"score": 81, "confidence": 1.0,
        "threshold": None, "sources": [
            {"name": "repo_map", "signal": 0.9, "evidence": "2 of 2 names found"},
            {"name": "memory", "signal": None, "evidence": None, "error": "timeout"}]})  # fmt: skip
    passed = {"kind": "preflight", "commits": 1, "files": ["a"], "checked": 1}
    await events.add(done.id, EventKind.PREFLIGHT_PASSED, passed)
    await ArtifactRepo(pool).put(done.id, ArtifactKind.MBOX, "combined.mbox", MBOX)
    await ArtifactRepo(pool).put(done.id, ArtifactKind.PATCH, "0001-Add.patch", PATCH)
    done = await move(pool, done, TaskStatus.PREPARING, TaskStatus.RUNNING,
                      TaskStatus.DELIVERING, TaskStatus.DONE, commits=1)  # fmt: skip
    blocked = await add_task(pool, api, "Ship the deploy key")
    violations = [{"check": "secret", "path": "deploy.py", "line": 2,
                   "detail": "github-classic-token: ghp_…(40 chars)…2aQ9"}]  # fmt: skip
    await events.add(blocked.id, EventKind.PREFLIGHT_FAILED, {"kind": "preflight", "count": 1,
        "violations": violations, "reason": "preflight found 1 problem(s)"})  # fmt: skip
    blocked = await move(pool, blocked, TaskStatus.PREPARING, TaskStatus.RUNNING,
                         TaskStatus.DELIVERING, TaskStatus.BLOCKED, violations=violations,
                         count=1)  # fmt: skip
    return World(shop, api, running, queued_low, queued_high, done, blocked)
