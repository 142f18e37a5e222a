"""Hard budgets on real git, a real database and scripted agents: cost, wall time and turns
add up over the plan phase and every attempt; 80 % warns once, 100 % blocks with the work
kept as patches; Extend & resume goes on from there."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from storage.artifacts import ArtifactRepo
from storage.limits import Limits
from storage.task_events import EventKind
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.worker.budgets import (
    PLAN,
    budget_repo,
    claude_argv,
    claude_deps,
    extend_and_resume,
    flag,
    submit_task_with,
    task_events,
)
from tests.worker.plans import decide
from tests.worker.running import (
    Planner,
    Pool,
    Sequence,
    worker_deps,
)
from worker import jobs
from worker.budget import Usage, global_limits
from worker.deps import WorkerDeps
from worker.settings import WorkerSettings


async def test_cost_adds_up_over_attempts_from_claude_output(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    deps = claude_deps(pool, tmp_path, "success_json", "success_json")
    repo = await budget_repo(pool, upstream, backend="claude", test_command="test -f change-2.txt")
    task = await submit_task_with(pool, repo, max_cost_usd=Decimal("0.01"))
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert [r.cost_usd for r in runs] == [Decimal("0.0032"), Decimal("0.0032")]
    assert (done.spent_cost_usd, done.spent_turns, done.cost_unknown) == (
        Decimal("0.0064"), 8, False)  # fmt: skip
    first, second = claude_argv(tmp_path)
    assert flag(first, "--max-budget-usd") == "0.01"
    assert flag(second, "--max-budget-usd") == "0.0068"  # what is left after attempt 1
    assert flag(second, "--resume") == "032b95d9-f392-4928-a402-563becd1ccdd"
    assert flag(second, "--max-turns") == "40"
    assert await task_events(pool, task, EventKind.BUDGET_WARNING) == []


async def test_cost_warns_at_80_percent_and_blocks_at_the_limit(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    deps = claude_deps(pool, tmp_path, "success_json", "success_json", "error_max_budget")
    repo = await budget_repo(pool, upstream, backend="claude", test_command="false")
    task = await submit_task_with(pool, repo, max_cost_usd=Decimal("0.008"))
    await jobs.run_task(task.id, deps)

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.spent_cost_usd == Decimal("0.0080")
    budgets = [flag(argv, "--max-budget-usd") for argv in claude_argv(tmp_path)]
    assert budgets == ["0.008", "0.0048", "0.0016"]
    [warning] = await task_events(pool, task, EventKind.BUDGET_WARNING)
    assert warning.payload == {"limit": "cost", "used": 0.0064, "max": 0.008, "percent": 80}
    [exceeded] = await task_events(pool, task, EventKind.BUDGET_EXCEEDED)
    assert exceeded.payload == {"limit": "cost", "used": 0.008, "max": 0.008}
    [ended] = await task_events(pool, task, EventKind.TASK_BLOCKED)
    assert ended.payload["budget_exceeded"] == exceeded.payload
    assert ended.payload["commits"] == 3
    assert blocked.status_reason == "cost limit $0.0080 reached ($0.0080 used)"
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"WIP: partial work, cost limit" in mbox  # the run the CLI stopped itself


async def test_turn_limit_spans_attempts_and_binds_when_no_cost_is_reported(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    """Subscription mode: no cost reported, so the cost limit is not enforced; turns are."""
    agent = Sequence(tmp_path, [{"write": {f"f{n}.txt": f"{n}\n"}, "report": {"num_turns": 3}}
                                for n in range(1, 6)])  # fmt: skip
    repo = await budget_repo(pool, upstream, agent.command, max_attempts=5, test_command="false")
    task = await submit_task_with(pool, repo, max_turns=7, max_cost_usd=Decimal("0.01"))
    await jobs.run_task(task.id, deps)

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.status_reason == "turn limit 7 reached (9 used)"
    assert (blocked.spent_turns, blocked.spent_cost_usd, blocked.cost_unknown) == (
        9, Decimal(0), True)  # fmt: skip
    calls = agent.calls()
    assert [c["env"]["DEVSERVER_MAX_TURNS"] for c in calls] == ["7", "4", "1"]  # turns left
    # the dollars went to the first run only: after it, the cost is known to be unknown
    assert [c["env"].get("DEVSERVER_MAX_BUDGET_USD") for c in calls] == ["0.0100", None, None]
    warnings = [e.payload for e in await task_events(pool, task, EventKind.BUDGET_WARNING)]
    assert warnings == [{"limit": "turns", "used": 6, "max": 7, "percent": 80}]
    [exceeded] = await task_events(pool, task, EventKind.BUDGET_EXCEEDED)
    assert exceeded.payload == {"limit": "turns", "used": 9, "max": 7}


async def test_the_plan_phase_counts_toward_the_budget(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[json.dumps(PLAN)],
                      implement=[{"write": {"hello.txt": "hello\n"}}])  # fmt: skip
    repo = await budget_repo(pool, upstream, planner.command)
    task = await submit_task_with(pool, repo, mode="interactive", max_cost_usd=Decimal("0.5"))
    await jobs.run_task(task.id, deps)
    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.AWAITING_APPROVAL  # a finished plan is shown
    assert (waiting.spent_cost_usd, waiting.spent_turns) == (Decimal("0.5"), 2)
    assert waiting.spent_wall_seconds > 0

    await decide(pool, task.id, "approve")
    await jobs.run_task(task.id, deps)  # the plan used the whole budget: no attempt starts
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    [ended] = await task_events(pool, task, EventKind.TASK_BLOCKED)
    assert ended.payload["budget_exceeded"] == {"limit": "cost", "used": 0.5, "max": 0.5}
    assert ended.payload["commits"] == 0
    assert [c["phase"] for c in planner.calls()] == ["plan"]

    await extend_and_resume(pool, task.id, cost_usd=Decimal("1.00"))
    await jobs.run_task(task.id, deps)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    implement = planner.calls("implement")[0]
    assert implement["max_budget_usd"] == "0.5000"  # what the plan left of the raised limit
    assert "Your earlier work" not in implement["prompt"]  # nothing was implemented yet
    assert done.spent_cost_usd == Decimal("1.0")


async def test_repo_and_global_defaults_become_the_task_limits(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    settings = WorkerSettings(agent_timeout_seconds=20, default_max_cost_usd=Decimal(5),
                              default_max_total_turns=100)  # fmt: skip
    deps = worker_deps(pool, tmp_path, settings=settings)
    agent = Sequence(tmp_path, [{"write": {"hello.txt": "hi\n"}, "report": {"num_turns": 1}}])
    repo = await budget_repo(pool, upstream, agent.command, max_wall_seconds=600)
    task = await submit_task_with(pool, repo, max_turns=50)
    await jobs.run_task(task.id, deps)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert (done.max_cost_usd, done.max_wall_seconds, done.max_turns) == (Decimal(5), 600, 50)
    assert agent.calls()[0]["env"]["DEVSERVER_MAX_BUDGET_USD"] == "5.0000"


def test_global_limits_and_reasons() -> None:
    assert global_limits(WorkerSettings()) == Limits(None, None, None)
    assert Usage("wall", 602.4, 600).reason == "wall-time limit 10m reached (10m 02s used)"
    assert Usage("wall", 4.05, 4).reason == "wall-time limit 4s reached (4s used)"
    assert Usage("wall", 5410, 5400).reason == "wall-time limit 90m reached (90m 10s used)"
    assert Usage("cost", 5.1234, 5).reason == "cost limit $5.00 reached ($5.1234 used)"
    assert Usage("turns", 83, 80).reason == "turn limit 80 reached (83 used)"
    assert Usage("wall", 602.44, 600).payload() == {"limit": "wall", "used": 602.4, "max": 600}
    assert Usage("cost", 0.00641, 0.008).payload() == {"limit": "cost", "used": 0.0064,
                                                       "max": 0.008}  # fmt: skip


async def test_a_limit_is_warned_about_once_even_by_racing_callers(
    pool: Pool, upstream: Path
) -> None:
    task = await submit_task_with(pool, await budget_repo(pool, upstream, "true"))
    tasks = TaskRepo(pool)
    first = await asyncio.gather(*(tasks.mark_budget_warned(task.id, "cost") for _ in range(5)))
    assert sorted(first) == [False, False, False, False, True]
    assert await tasks.mark_budget_warned(task.id, "wall")
    assert not await tasks.mark_budget_warned(task.id, "wall")
    assert (await tasks.by_id(task.id)).budget_warned == ["cost", "wall"]
