"""Working-time budgets: the watchdog kills the agent (or a check) when the task's time
runs out mid-run, the work is kept, and Extend & resume goes on in the same branch and
session."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from storage.artifacts import ArtifactRepo
from storage.task_events import EventKind
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.gitrepos import git
from tests.worker.budgets import (
    budget_repo,
    extend_and_resume,
    gone_at,
    submit_task_with,
    task_events,
)
from tests.worker.running import (
    Pool,
    Sequence,
    hang_agent,
    wait_pids,
    wait_until,
)
from worker import jobs
from worker.deps import WorkerDeps


async def test_wall_deadline_kills_the_agent_keeps_its_work_and_extend_resumes(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [
        {"write": {"partial.txt": "partial work\n"}, "hang": True},  # never ends
        {"write": {"done.txt": "done\n"}, "sleep": 2.8},  # long enough to pass 80 % again
    ])  # fmt: skip
    check = "test -f partial.txt && test -f done.txt"
    repo = await budget_repo(pool, upstream, agent.command, max_attempts=1, test_command=check)
    task = await submit_task_with(pool, repo, max_wall_seconds=4)

    job = asyncio.create_task(jobs.run_task(task.id, deps))
    gone = await gone_at(await agent.pids(1), within=15)
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
    [warning] = await task_events(pool, task, EventKind.BUDGET_WARNING)
    assert {k: v for k, v in warning.payload.items() if k != "used"} == {
        "limit": "wall", "max": 4, "percent": 80}  # fmt: skip
    assert 3.2 <= warning.payload["used"] < 4
    events = await task_events(pool, task)
    kinds = [e.kind.value for e in events]
    assert kinds[-5:] == ["patches_generated", "budget_exceeded", "status_changed", "task_blocked",
                          "memory_written"]  # fmt: skip
    exceeded = events[-4].payload
    assert (exceeded["limit"], exceeded["max"]) == ("wall", 4)
    assert exceeded["used"] >= 4
    branch = f"agent/{task.key}"
    assert events[-2].payload == {"reason": blocked.status_reason, "commits": 1,
                                  "branch": branch, "budget_exceeded": exceeded}  # fmt: skip
    # the partial work: committed to the branch as WIP, and in the stored mbox
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+partial work" in mbox
    assert b"WIP: partial work, wall-time limit 4s reached" in mbox
    mirror = deps.workspace.mirror_path(repo.name)
    assert git(mirror, "show", f"{branch}:partial.txt") == "partial work"

    # Extend (+100 %) & resume: the same branch, the work so far, and it finishes
    resumed = await extend_and_resume(pool, task.id, wall_seconds=8)
    assert resumed.status is TaskStatus.QUEUED
    await jobs.run_task(task.id, deps)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert (await task_events(pool, task, EventKind.WORKSPACE_READY))[-1].payload["resumed"] is True
    second = agent.calls()[1]
    assert "stopped because the task reached its budget: wall-time limit 4s" in second["prompt"]
    assert "# Say hello" in second["prompt"]  # no session to resume: the task again
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+partial work" in mbox
    assert b"+done" in mbox
    # the spend went on adding up; 80 % of the new limit passed without a second warning
    assert done.spent_wall_seconds >= 4 + 2.8
    assert done.spent_wall_seconds / 8 >= 0.8
    assert len(await task_events(pool, task, EventKind.BUDGET_WARNING)) == 1
    assert done.budget_warned == ["wall"]


async def test_an_extend_during_the_run_moves_the_watchdog_deadline(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"hello.txt": "hi\n"}, "sleep": 3}])
    repo = await budget_repo(pool, upstream, agent.command, max_attempts=1)
    task = await submit_task_with(pool, repo, max_wall_seconds=2)
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
    assert await task_events(pool, task, EventKind.BUDGET_WARNING) == []  # 80 % of 6 s: not reached


async def test_a_check_running_when_the_wall_time_runs_out_is_stopped(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"hello.txt": "hi\n"}}])
    pid_file = tmp_path / "check-pids"
    repo = await budget_repo(pool, upstream, agent.command, test_command=hang_agent(pid_file))
    task = await submit_task_with(pool, repo, max_wall_seconds=2)
    job = asyncio.create_task(jobs.run_task(task.id, deps))
    check_pids = await wait_pids(pid_file)
    gone = await gone_at(check_pids, within=15)
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
             for e in await task_events(pool, task, EventKind.STATUS_CHANGED)]  # fmt: skip
    assert moves[-1] == ("verifying", "blocked")
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+hi" in mbox  # the agent's finished work is kept


async def test_without_reported_cost_the_wall_limit_still_kills(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"a.txt": "a\n"}, "report": {"num_turns": 1}},
                                {"hang": True}])  # fmt: skip
    repo = await budget_repo(pool, upstream, agent.command, test_command="false")
    task = await submit_task_with(pool, repo, max_wall_seconds=2, max_cost_usd=Decimal("0.01"))
    job = asyncio.create_task(jobs.run_task(task.id, deps))
    gone = await gone_at(await agent.pids(2), within=15)
    await job

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.cost_unknown
    [exceeded] = await task_events(pool, task, EventKind.BUDGET_EXCEEDED)
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
    repo = await budget_repo(pool, upstream, agent.command, test_command="test -f b.txt")
    task = await submit_task_with(pool, repo, max_turns=3)
    await jobs.run_task(task.id, deps)
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED  # the check failed and no turn is left
    assert blocked.status_reason == "turn limit 3 reached (3 used)"
    assert len(agent.calls()) == 1

    await extend_and_resume(pool, task.id, turns=6)
    await jobs.run_task(task.id, deps)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    second = agent.calls()[1]
    assert second["session"] == "s-1"
    assert second["prompt"].startswith("Your earlier work on this task was stopped because the "
                                       "task reached its budget: turn limit 3 reached")  # fmt: skip
    assert "# Say hello" not in second["prompt"]  # the session remembers the task
    assert second["env"]["DEVSERVER_MAX_TURNS"] == "3"
    started = (await task_events(pool, task, EventKind.AGENT_STARTED))[-1]
    assert started.payload["resumed_session"] is True
    assert (done.spent_turns, await TaskRunRepo(pool).attempts_made(task.id)) == (4, 2)


async def test_a_planning_run_stopped_by_the_wall_budget_blocks_the_task(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"hang": True}])
    repo = await budget_repo(pool, upstream, agent.command)
    task = await submit_task_with(pool, repo, mode="interactive", max_wall_seconds=1)
    job = asyncio.create_task(jobs.run_task(task.id, deps))
    await agent.pids(1)
    await job
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.plan is None
    [ended] = await task_events(pool, task, EventKind.TASK_BLOCKED)
    assert ended.payload["budget_exceeded"]["limit"] == "wall"
    assert ended.payload["commits"] == 0
    [run] = await TaskRunRepo(pool).for_task(task.id)
    assert (run.phase, run.error_class) == ("plan", "timeout")
    assert agent.calls()[0]["phase"] == "plan"
