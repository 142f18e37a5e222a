"""Hard budgets on real git, a real database and scripted agents: cost, wall time and turns
add up over the plan phase and every attempt; 80 % warns once, 100 % blocks with the work
kept as patches; Extend & resume goes on from there."""

from __future__ import annotations

import asyncio
import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from storage.artifacts import ArtifactRepo
from storage.limits import Limits
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind, TaskEvent, TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.tasks import NewTask, Task, TaskRepo, TaskStatus
from tests.claude_samples import SAMPLES
from tests.gitrepos import git, make_repo
from tests.procs import is_gone
from tests.worker.running import (
    Planner,
    Pool,
    Sequence,
    fake_claude,
    hang_agent,
    wait_pids,
    wait_until,
    worker_deps,
)
from worker import jobs
from worker.agents.claude import ClaudeBackend
from worker.budget import Usage, global_limits
from worker.control import WorkerControl
from worker.deps import WorkerDeps
from worker.queue import queue_task, submit_task
from worker.settings import WorkerSettings
from worker.workspace import Workspace

SETTINGS = WorkerSettings(agent_timeout_seconds=20)
PLAN = {"summary": "Add a greeting file", "approach": "Write it.", "risks": [],
        "steps": ["Write hello.txt"], "files_to_touch": ["hello.txt"],
        "acceptance_check": "it says hello"}  # fmt: skip


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})


@pytest.fixture
def deps(pool: Pool, tmp_path: Path) -> WorkerDeps:
    return worker_deps(pool, tmp_path, settings=SETTINGS)


async def _repo(pool: Pool, upstream: Path, command: str = "", *, max_attempts: int = 3,
                backend: str = "command", **options: Any) -> Repo:  # fmt: skip
    new = NewRepo(name="demo", source=str(upstream), default_branch="main",
                  agent_backend=backend, agent_command=command, max_attempts=max_attempts,
                  git_author_name="Agent", git_author_email="agent@example.invalid",
                  **options)  # fmt: skip
    return await RepoRepo(pool).add(new)


async def _submit(pool: Pool, repo: Repo, **options: Any) -> Task:
    async with pool.acquire() as conn:
        return await submit_task(conn, NewTask(repo_id=repo.id, title="Say hello", **options))


async def _extend_and_resume(
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


async def _events(pool: Pool, task: Task, kind: EventKind | None = None) -> list[TaskEvent]:
    events = await TaskEventRepo(pool).for_task(task.id)
    return [e for e in events if kind is None or e.kind is kind]


async def _gone_at(pids: list[int], within: float) -> float:
    """The wall-clock time (time.time()) by which every one of `pids` is gone."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        if all(is_gone(pid) for pid in pids):
            return time.time()
        await asyncio.sleep(0.02)
    raise AssertionError(f"still running after {within} s: {pids}")


def _claude_deps(pool: Pool, tmp_path: Path, *samples: str) -> WorkerDeps:
    """Every agent run is fake_claude.py replaying the next of `samples` (real CLI output);
    call N also writes change-N.txt, and its argv lands in tmp_path/claude-calls."""
    backend = ClaudeBackend(fake_claude(tmp_path), extra_env={
        "FAKE_CLAUDE_SAMPLE": os.pathsep.join(str(SAMPLES / name) for name in samples),
        "FAKE_CLAUDE_CALLS": str(tmp_path / "claude-calls"), "FAKE_CLAUDE_WRITE": "change",
    })  # fmt: skip
    return WorkerDeps(pool=pool, workspace=Workspace(tmp_path / "workspaces"), settings=SETTINGS,
                      agent_homes=tmp_path / "agent-homes",
                      backend_for=lambda repo, name: backend, control=WorkerControl())  # fmt: skip


def _claude_argv(tmp_path: Path) -> list[list[str]]:
    calls = sorted((tmp_path / "claude-calls").glob("*.json"))
    return [json.loads(p.read_text())["argv"] for p in calls]


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


async def test_wall_deadline_kills_the_agent_keeps_its_work_and_extend_resumes(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [
        {"write": {"partial.txt": "partial work\n"}, "hang": True},  # never ends
        {"write": {"done.txt": "done\n"}, "sleep": 2.8},  # long enough to pass 80 % again
    ])  # fmt: skip
    check = "test -f partial.txt && test -f done.txt"
    repo = await _repo(pool, upstream, agent.command, max_attempts=1, test_command=check)
    task = await _submit(pool, repo, max_wall_seconds=4)

    job = asyncio.create_task(jobs.run_task(task.id, deps))
    gone = await _gone_at(await agent.pids(1), within=15)
    await job

    # killed at the deadline: the task's 4 s from the start of the run, not before
    [run] = await TaskRunRepo(pool).for_task(task.id)
    deadline = run.started_at.timestamp() + 4
    assert deadline - 0.05 <= gone <= deadline + 2, gone - deadline
    assert run.error_class == "timeout"
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.status_reason.startswith("wall-time limit 4s reached (")
    assert 4 <= blocked.spent_wall_seconds < 7
    # the warning came during the run, at 80 %; then exceeded, patches, blocked
    [warning] = await _events(pool, task, EventKind.BUDGET_WARNING)
    assert {k: v for k, v in warning.payload.items() if k != "used"} == {
        "limit": "wall", "max": 4, "percent": 80}  # fmt: skip
    assert 3.2 <= warning.payload["used"] < 4
    events = await _events(pool, task)
    kinds = [e.kind.value for e in events]
    assert kinds[-4:] == ["patches_generated", "budget_exceeded", "status_changed", "task_blocked"]
    exceeded = events[-3].payload
    assert (exceeded["limit"], exceeded["max"]) == ("wall", 4)
    assert exceeded["used"] >= 4
    branch = f"agent/{task.key}"
    assert events[-1].payload == {"reason": blocked.status_reason, "commits": 1,
                                  "branch": branch, "budget_exceeded": exceeded}  # fmt: skip
    # the partial work: committed to the branch as WIP, and in the stored mbox
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+partial work" in mbox
    assert b"WIP: partial work, wall-time limit 4s reached" in mbox
    mirror = deps.workspace.mirror_path(repo.name)
    assert git(mirror, "show", f"{branch}:partial.txt") == "partial work"

    # Extend (+100 %) & resume: the same branch, the work so far, and it finishes
    resumed = await _extend_and_resume(pool, task.id, wall_seconds=8)
    assert resumed.status is TaskStatus.QUEUED
    await jobs.run_task(task.id, deps)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert (await _events(pool, task, EventKind.WORKSPACE_READY))[-1].payload["resumed"] is True
    second = agent.calls()[1]
    assert "stopped because the task reached its budget: wall-time limit 4s" in second["prompt"]
    assert "# Say hello" in second["prompt"]  # no session to resume: the task again
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+partial work" in mbox
    assert b"+done" in mbox
    # the spend went on adding up; 80 % of the new limit passed without a second warning
    assert done.spent_wall_seconds >= 4 + 2.8
    assert done.spent_wall_seconds / 8 >= 0.8
    assert len(await _events(pool, task, EventKind.BUDGET_WARNING)) == 1
    assert done.budget_warned == ["wall"]


async def test_an_extend_during_the_run_moves_the_watchdog_deadline(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"hello.txt": "hi\n"}, "sleep": 3}])
    repo = await _repo(pool, upstream, agent.command, max_attempts=1)
    task = await _submit(pool, repo, max_wall_seconds=2)
    job = asyncio.create_task(jobs.run_task(task.id, deps))

    async def started() -> bool:
        return bool(agent.calls())

    await wait_until(started, "the agent started", within=10)
    await asyncio.sleep(1)  # the watchdog counts on 2 s by now
    await TaskRepo(pool).set_budget(task.id, cost_usd=None, wall_seconds=6, turns=None)  # Extend
    await job
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert 3 <= done.spent_wall_seconds < 6
    [run] = await TaskRunRepo(pool).for_task(task.id)
    assert run.ok
    assert await _events(pool, task, EventKind.BUDGET_WARNING) == []  # 80 % of 6 s: not reached


async def test_a_check_running_when_the_wall_time_runs_out_is_stopped(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"hello.txt": "hi\n"}}])
    pid_file = tmp_path / "check-pids"
    repo = await _repo(pool, upstream, agent.command, test_command=hang_agent(pid_file))
    task = await _submit(pool, repo, max_wall_seconds=2)
    job = asyncio.create_task(jobs.run_task(task.id, deps))
    check_pids = await wait_pids(pid_file)
    gone = await _gone_at(check_pids, within=15)
    await job

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.status_reason.startswith("wall-time limit 2s reached")
    [run] = await TaskRunRepo(pool).for_task(task.id)
    assert run.verify is not None
    assert run.verify["steps"][0]["timed_out"] is True
    deadline = run.started_at.timestamp() + 2
    assert deadline - 0.05 <= gone <= deadline + 2, gone - deadline
    moves = [(e.payload["from"], e.payload["to"])
             for e in await _events(pool, task, EventKind.STATUS_CHANGED)]  # fmt: skip
    assert moves[-1] == ("verifying", "blocked")
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+hi" in mbox  # the agent's finished work is kept


async def test_cost_adds_up_over_attempts_from_claude_output(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    deps = _claude_deps(pool, tmp_path, "success_json", "success_json")
    repo = await _repo(pool, upstream, backend="claude", test_command="test -f change-2.txt")
    task = await _submit(pool, repo, max_cost_usd=Decimal("0.01"))
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert [r.cost_usd for r in runs] == [Decimal("0.0032"), Decimal("0.0032")]
    assert (done.spent_cost_usd, done.spent_turns, done.cost_unknown) == (
        Decimal("0.0064"), 8, False)  # fmt: skip
    first, second = _claude_argv(tmp_path)
    assert _flag(first, "--max-budget-usd") == "0.01"
    assert _flag(second, "--max-budget-usd") == "0.0068"  # what is left after attempt 1
    assert _flag(second, "--resume") == "032b95d9-f392-4928-a402-563becd1ccdd"
    assert _flag(second, "--max-turns") == "40"
    assert await _events(pool, task, EventKind.BUDGET_WARNING) == []


async def test_cost_warns_at_80_percent_and_blocks_at_the_limit(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    deps = _claude_deps(pool, tmp_path, "success_json", "success_json", "error_max_budget")
    repo = await _repo(pool, upstream, backend="claude", test_command="false")
    task = await _submit(pool, repo, max_cost_usd=Decimal("0.008"))
    await jobs.run_task(task.id, deps)

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.spent_cost_usd == Decimal("0.0080")
    budgets = [_flag(argv, "--max-budget-usd") for argv in _claude_argv(tmp_path)]
    assert budgets == ["0.008", "0.0048", "0.0016"]
    [warning] = await _events(pool, task, EventKind.BUDGET_WARNING)
    assert warning.payload == {"limit": "cost", "used": 0.0064, "max": 0.008, "percent": 80}
    [exceeded] = await _events(pool, task, EventKind.BUDGET_EXCEEDED)
    assert exceeded.payload == {"limit": "cost", "used": 0.008, "max": 0.008}
    [ended] = await _events(pool, task, EventKind.TASK_BLOCKED)
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
    repo = await _repo(pool, upstream, agent.command, max_attempts=5, test_command="false")
    task = await _submit(pool, repo, max_turns=7, max_cost_usd=Decimal("0.01"))
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
    warnings = [e.payload for e in await _events(pool, task, EventKind.BUDGET_WARNING)]
    assert warnings == [{"limit": "turns", "used": 6, "max": 7, "percent": 80}]
    [exceeded] = await _events(pool, task, EventKind.BUDGET_EXCEEDED)
    assert exceeded.payload == {"limit": "turns", "used": 9, "max": 7}


async def test_without_reported_cost_the_wall_limit_still_kills(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"a.txt": "a\n"}, "report": {"num_turns": 1}},
                                {"hang": True}])  # fmt: skip
    repo = await _repo(pool, upstream, agent.command, test_command="false")
    task = await _submit(pool, repo, max_wall_seconds=2, max_cost_usd=Decimal("0.01"))
    job = asyncio.create_task(jobs.run_task(task.id, deps))
    gone = await _gone_at(await agent.pids(2), within=15)
    await job

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.cost_unknown
    [exceeded] = await _events(pool, task, EventKind.BUDGET_EXCEEDED)
    assert exceeded.payload["limit"] == "wall"
    first, second = await TaskRunRepo(pool).for_task(task.id)
    assert (first.cost_usd, second.error_class) == (None, "timeout")
    assert second.finished_at is not None
    assert gone <= second.finished_at.timestamp() + 1
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+a" in mbox


async def test_resume_goes_on_in_the_agent_session(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [
        {"write": {"a.txt": "a\n"}, "report": {"session_id": "s-1", "num_turns": 3}},
        {"write": {"b.txt": "b\n"}, "report": {"session_id": "s-2", "num_turns": 1}},
    ])  # fmt: skip
    repo = await _repo(pool, upstream, agent.command, test_command="test -f b.txt")
    task = await _submit(pool, repo, max_turns=3)
    await jobs.run_task(task.id, deps)
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED  # the check failed and no turn is left
    assert blocked.status_reason == "turn limit 3 reached (3 used)"
    assert len(agent.calls()) == 1

    await _extend_and_resume(pool, task.id, turns=6)
    await jobs.run_task(task.id, deps)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    second = agent.calls()[1]
    assert second["session"] == "s-1"
    assert second["prompt"].startswith("Your earlier work on this task was stopped because the "
                                       "task reached its budget: turn limit 3 reached")  # fmt: skip
    assert "# Say hello" not in second["prompt"]  # the session remembers the task
    assert second["env"]["DEVSERVER_MAX_TURNS"] == "3"
    started = (await _events(pool, task, EventKind.AGENT_STARTED))[-1]
    assert started.payload["resumed_session"] is True
    assert (done.spent_turns, await TaskRunRepo(pool).attempts_made(task.id)) == (4, 2)


async def _approve(pool: Pool, task_id: int) -> None:
    """What the bot does on Approve: decide, tell, queue; one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        tasks = TaskRepo(conn)
        shown = await tasks.by_id(task_id)
        decided = await tasks.decide_plan(task_id, shown.plan_round, "approve", "alice")
        assert decided is not None
        await TaskEventRepo(conn).add(task_id, EventKind.PLAN_APPROVED, {"by": "alice"})
        await queue_task(conn, decided)


async def test_the_plan_phase_counts_toward_the_budget(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[json.dumps(PLAN)],
                      implement=[{"write": {"hello.txt": "hello\n"}}])  # fmt: skip
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo, mode="interactive", max_cost_usd=Decimal("0.5"))
    await jobs.run_task(task.id, deps)
    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.AWAITING_APPROVAL  # a finished plan is shown
    assert (waiting.spent_cost_usd, waiting.spent_turns) == (Decimal("0.5"), 2)
    assert waiting.spent_wall_seconds > 0

    await _approve(pool, task.id)
    await jobs.run_task(task.id, deps)  # the plan used the whole budget: no attempt starts
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    [ended] = await _events(pool, task, EventKind.TASK_BLOCKED)
    assert ended.payload["budget_exceeded"] == {"limit": "cost", "used": 0.5, "max": 0.5}
    assert ended.payload["commits"] == 0
    assert [c["phase"] for c in planner.calls()] == ["plan"]

    await _extend_and_resume(pool, task.id, cost_usd=Decimal("1.00"))
    await jobs.run_task(task.id, deps)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    implement = planner.calls("implement")[0]
    assert implement["max_budget_usd"] == "0.5000"  # what the plan left of the raised limit
    assert "Your earlier work" not in implement["prompt"]  # nothing was implemented yet
    assert done.spent_cost_usd == Decimal("1.0")


async def test_a_planning_run_stopped_by_the_wall_budget_blocks_the_task(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"hang": True}])
    repo = await _repo(pool, upstream, agent.command)
    task = await _submit(pool, repo, mode="interactive", max_wall_seconds=1)
    job = asyncio.create_task(jobs.run_task(task.id, deps))
    await agent.pids(1)
    await job
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.plan is None
    [ended] = await _events(pool, task, EventKind.TASK_BLOCKED)
    assert ended.payload["budget_exceeded"]["limit"] == "wall"
    assert ended.payload["commits"] == 0
    [run] = await TaskRunRepo(pool).for_task(task.id)
    assert (run.phase, run.error_class) == ("plan", "timeout")
    assert agent.calls()[0]["phase"] == "plan"


async def test_repo_and_global_defaults_become_the_task_limits(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    settings = WorkerSettings(agent_timeout_seconds=20, default_max_cost_usd=Decimal(5),
                              default_max_total_turns=100)  # fmt: skip
    deps = worker_deps(pool, tmp_path, settings=settings)
    agent = Sequence(tmp_path, [{"write": {"hello.txt": "hi\n"}, "report": {"num_turns": 1}}])
    repo = await _repo(pool, upstream, agent.command, max_wall_seconds=600)
    task = await _submit(pool, repo, max_turns=50)
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
    task = await _submit(pool, await _repo(pool, upstream, "true"))
    tasks = TaskRepo(pool)
    first = await asyncio.gather(*(tasks.mark_budget_warned(task.id, "cost") for _ in range(5)))
    assert sorted(first) == [False, False, False, False, True]
    assert await tasks.mark_budget_warned(task.id, "wall")
    assert not await tasks.mark_budget_warned(task.id, "wall")
    assert (await tasks.by_id(task.id)).budget_warned == ["cost", "wall"]
