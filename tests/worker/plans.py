"""Helpers of the plan-gate tests: plans as agents answer them, repos, tasks, decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.actions import decide_plan
from bot.callbacks import PlanDecision
from bot.deps import Operator
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind, TaskEvent, TaskEventRepo
from storage.tasks import NewTask, Task, TaskRepo
from tests.worker.running import SETTINGS, Pool
from worker.queue import submit_task
from worker.settings import WorkerSettings

ALICE = Operator(1001, "alice")

SUMMARY = "Add a greeting file"


def plan_dict(summary: str = SUMMARY, files: tuple[str, ...] = ("hello.txt",)) -> dict[str, Any]:
    return {
        "summary": summary,
        "approach": "Write the file in the repository root.",
        "steps": ["Create hello.txt with a greeting", "Check it reads well"],
        "files_to_touch": list(files),
        "risks": ["None worth naming"],
        "acceptance_check": "hello.txt says hello",
    }


def fenced(plan: dict[str, Any]) -> str:
    """The way agents like to answer: prose, a fence, more prose."""
    return f"I read the code. My plan:\n\n```json\n{json.dumps(plan, indent=2)}\n```\n\nDone."


HELLO = {"write": {"hello.txt": "hello from the agent\n"}}


async def plan_repo(pool: Pool, upstream: Path, command: str, max_attempts: int = 3,
                name: str = "demo", **checks: str) -> Repo:  # fmt: skip
    new = NewRepo(name=name, source=str(upstream), default_branch="main",
                  agent_backend="command", agent_command=command, max_attempts=max_attempts,
                  git_author_name="Agent", git_author_email="agent@example.invalid",
                  **checks)  # type: ignore[arg-type]  # fmt: skip
    return await RepoRepo(pool).add(new)


async def submit_interactive(pool: Pool, repo: Repo, title: str = "Say hello") -> Task:
    async with pool.acquire() as conn:
        new = NewTask(repo_id=repo.id, title=title, mode="interactive", chat_id=42)
        return await submit_task(conn, new)


async def decide(pool: Pool, task_id: int, decision: PlanDecision,
                 feedback: str | None = None) -> Task:  # fmt: skip
    """What the bot does on Approve / Revise: its own decide_plan, for the round shown."""
    shown = await TaskRepo(pool).by_id(task_id)
    return await decide_plan(pool, task_id, shown.plan_round, decision, ALICE,
                             feedback=feedback)  # fmt: skip


async def events(pool: Pool, task: Task, kind: EventKind | None = None) -> list[TaskEvent]:
    events = await TaskEventRepo(pool).for_task(task.id)
    return [e for e in events if kind is None or e.kind is kind]


async def plan_jobs(pool: Pool) -> list[tuple[str, dict[str, Any], float]]:
    """Scheduled plan jobs still in PgQueuer's table: entrypoint, payload, delay (s)."""
    rows = await pool.fetch(
        "SELECT entrypoint, convert_from(payload, 'UTF8') AS payload,"
        "       extract(epoch FROM execute_after - created)::float AS delay"
        "  FROM pgqueuer WHERE entrypoint LIKE 'plan_%' ORDER BY id"
    )
    return [(r["entrypoint"], json.loads(r["payload"]), r["delay"]) for r in rows]


def worker_settings(**changes: Any) -> WorkerSettings:
    """The running worker's test settings, with `changes`."""
    return SETTINGS.model_copy(update=changes)
