"""The plan gate on real git and a real database: plan, wait, decide, implement in scope.

The scripted agent is tests/fakes/agents/planner.py; a decision is recorded the way the bot
records it (decide_plan, an event, queue_task, in one transaction).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.artifacts import ArtifactRepo
from storage.task_events import EventKind
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.gitrepos import apply_mbox, git
from tests.worker.plans import (
    HELLO,
    SUMMARY,
    decide,
    events,
    fenced,
    plan_dict,
    plan_jobs,
    plan_repo,
    submit_interactive,
    worker_settings,
)
from tests.worker.running import (
    Planner,
    Pool,
    hang_agent,
    running_worker,
    wait_pids,
    wait_status,
)
from worker import jobs, planning
from worker.deps import WorkerDeps
from worker.workspace import Workspace


async def test_plan_phase_stores_the_plan_and_waits_for_a_person(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], plan_writes={"scratch.txt": "oops"},
                      implement=[HELLO])  # fmt: skip
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)

    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.AWAITING_APPROVAL, waiting.status_reason
    assert waiting.plan == {"ok": True, **plan_dict()}
    assert waiting.plan_round == 1
    assert waiting.awaiting_since is not None
    assert waiting.finished_at is None
    plan_md = (await ArtifactRepo(pool).content(task.id, "plan.md")).decode()
    assert plan_md.startswith(f"# Plan\n\n{SUMMARY}\n")
    assert "- `hello.txt`" in plan_md
    [pending] = await events(pool, task, EventKind.PLAN_PENDING)
    assert pending.payload == {"round": 1, "ok": True, "summary": SUMMARY, "steps": 2, "files": 1}
    kinds = [e.kind.value for e in await events(pool, task)]
    assert kinds[-5:] == ["status_changed", "agent_started", "agent_finished", "status_changed",
                          "plan_pending"]  # fmt: skip
    moves = [(e.payload["from"], e.payload["to"])
             for e in await events(pool, task, EventKind.STATUS_CHANGED)]  # fmt: skip
    assert moves[-3:] == [("queued", "preparing"), ("preparing", "planning"),
                          ("planning", "awaiting_approval")]  # fmt: skip
    # the reminder and the expiry wait in PgQueuer's table, due at the configured times
    scheduled = await plan_jobs(pool)
    assert [(e, p) for e, p, _ in scheduled] == [
        ("plan_reminder", {"task_id": task.id, "round": 1}),
        ("plan_expiry", {"task_id": task.id, "round": 1}),
    ]
    assert scheduled[0][2] == pytest.approx(600, abs=5)
    assert scheduled[1][2] == pytest.approx(7200, abs=5)
    # the planning run is on the record and its cost on the task
    [run] = await TaskRunRepo(pool).for_task(task.id)
    assert (run.phase, run.attempt, run.ok, run.turns) == ("plan", 1, True, 2)
    assert waiting.spent_cost_usd == pytest.approx(0.5)
    assert waiting.spent_turns == 2
    assert await TaskRunRepo(pool).attempts_made(task.id) == 0  # planning is not an attempt
    # the agent was asked for the JSON plan, read-only, under the plan turn cap
    [call] = planner.calls()
    assert (call["phase"], call["env_phase"], call["max_turns"]) == ("plan", "plan", "15")
    assert "output only that JSON object" in call["prompt"]
    assert "# Say hello" in call["prompt"]
    assert '"files_to_touch"' in call["prompt"]
    assert "previous plan" not in call["prompt"]
    # what the planner wrote is gone: no commit, no worktree; the branch stays for later
    mirror = deps.workspace.mirror_path(repo.name)
    branch = f"agent/{task.key}"
    assert git(mirror, "rev-list", f"{waiting.base_commit}..{branch}") == ""
    assert not deps.workspace.worktree_path(task.key).exists()
    assert git(mirror, "rev-parse", "--verify", branch)


async def test_an_unreadable_plan_is_stored_as_such_and_still_waits(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    answer = "I would simply add hello.txt. No need for JSON here."
    planner = Planner(tmp_path, plans=[answer], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)

    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.AWAITING_APPROVAL
    assert waiting.plan is not None
    assert waiting.plan["ok"] is False
    assert waiting.plan["error"] == "no JSON object found in the agent's answer"
    assert answer in waiting.plan["raw"]
    [pending] = await events(pool, task, EventKind.PLAN_PENDING)
    assert pending.payload == {"round": 1, "ok": False, "summary": "", "steps": 0, "files": 0}
    plan_md = (await ArtifactRepo(pool).content(task.id, "plan.md")).decode()
    assert plan_md.startswith("# Plan could not be read\n\nno JSON object found")
    assert answer in plan_md
    assert planning.needs_plan(waiting)


async def test_revise_plans_again_with_the_previous_plan_and_the_feedback(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    first = plan_dict("Round one plan")
    second = plan_dict("Round two plan", files=("hello.txt", "README.md"))
    planner = Planner(tmp_path, plans=[fenced(first), json.dumps(second)], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)
    queued = await decide(pool, task.id, "revise", "Also mention it in the README, please.")
    assert queued.status is TaskStatus.QUEUED
    await jobs.run_task(task.id, deps)

    revised = await TaskRepo(pool).by_id(task.id)
    assert revised.status is TaskStatus.AWAITING_APPROVAL
    assert revised.plan_round == 2
    assert revised.plan == {"ok": True, **second}
    assert revised.plan_feedback is None  # consumed by this round
    assert revised.plan_decided_by is None
    prompt = planner.calls("plan")[1]["prompt"]
    assert "## Your previous plan" in prompt
    assert "Round one plan" in prompt
    assert "## What the reviewer wants changed\nAlso mention it in the README, please." in prompt
    rounds = [e.payload["round"] for e in await events(pool, task, EventKind.PLAN_PENDING)]
    assert rounds == [1, 2]
    assert [p["round"] for _, p, _ in await plan_jobs(pool)] == [1, 1, 2, 2]
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert [(r.phase, r.attempt) for r in runs] == [("plan", 1), ("plan", 2)]


async def test_an_approved_plan_is_implemented_as_a_binding_contract(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command, test_command="test -f hello.txt")
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)
    await decide(pool, task.id, "approve")
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    [call] = planner.calls("implement")
    assert call["env_phase"] == "implement"
    prompt = call["prompt"]
    assert f"## Approved plan (binding contract)\n{SUMMARY}" in prompt
    assert "1. Create hello.txt with a greeting\n2. Check it reads well" in prompt
    assert "Change only these files:\n- hello.txt\n" in prompt
    assert "Acceptance check: hello.txt says hello" in prompt
    scope, preflight = await events(pool, task, EventKind.PREFLIGHT_PASSED)
    assert scope.payload == {"kind": "scope", "files": ["hello.txt"], "attempt": 1}
    assert preflight.payload == {"kind": "preflight", "commits": 1, "files": ["hello.txt"],
                                 "checked": 1}  # fmt: skip
    assert len(planner.calls("plan")) == 1  # approved: no second plan


async def test_a_file_outside_the_plan_sends_the_agent_back_once(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    strays = {"hello.txt": "hello from the agent\n", "extra.txt": "not in the plan\n",
              "README.md": "# Demo\nRewritten.\n"}  # fmt: skip
    reverted = {"write": {"README.md": "# Demo\n"}, "delete": ["extra.txt"]}
    planner = Planner(tmp_path, plans=[fenced(plan_dict())],
                      implement=[{"write": strays}, reverted])  # fmt: skip
    check = "test -f hello.txt && echo cache > check-leftover.log"  # not the agent's doing
    repo = await plan_repo(pool, upstream, planner.command, test_command=check)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)
    await decide(pool, task.id, "approve")
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    [failed] = await events(pool, task, EventKind.PREFLIGHT_FAILED)
    assert failed.payload == {
        "kind": "scope", "files": ["README.md", "extra.txt"], "attempt": 1,
        "reason": "changed files outside the approved plan: README.md, extra.txt",
    }  # fmt: skip
    feedback = planner.calls("implement")[1]["prompt"]
    assert "outside the approved plan" in feedback
    assert done.base_commit is not None
    restore = f"- README.md: restore it (git checkout {done.base_commit[:12]} -- 'README.md')"
    assert restore in feedback
    assert "- extra.txt: it is new; delete it" in feedback
    assert "allows changes to these files only:\n- hello.txt" in feedback
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert [(r.phase, r.attempt) for r in runs] == [("plan", 1), ("attempt", 1), ("attempt", 2)]
    clone = apply_mbox(upstream, await ArtifactRepo(pool).content(task.id, "combined.mbox"),
                       tmp_path / "clone")  # fmt: skip
    assert (clone / "hello.txt").exists()
    assert not (clone / "extra.txt").exists()
    assert (clone / "README.md").read_text() == "# Demo\n"


async def test_outside_the_plan_twice_blocks_the_task_and_keeps_the_work(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    strays = {"write": {"hello.txt": "hello\n", "extra.txt": "not in the plan\n"}}
    stubborn = {"write": {"hello.txt": "hello again\n"}}  # leaves extra.txt where it is
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[strays, stubborn])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)
    await decide(pool, task.id, "approve")
    await jobs.run_task(task.id, deps)

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.status_reason == (
        "changed files outside the approved plan: extra.txt, again after being sent back"
    )
    assert len(await events(pool, task, EventKind.PREFLIGHT_FAILED)) == 1
    [ended] = await events(pool, task, EventKind.TASK_BLOCKED)
    assert ended.payload["commits"] == 2
    assert ended.payload["branch"] == f"agent/{task.key}"
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+not in the plan" in mbox  # the person gets the work, to judge it
    mirror = deps.workspace.mirror_path(repo.name)
    assert git(mirror, "show", f"agent/{task.key}:extra.txt") == "not in the plan"


async def test_out_of_scope_on_the_last_attempt_blocks_at_once(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    strays = {"write": {"hello.txt": "hello\n", "extra.txt": "not in the plan\n"}}
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[strays])
    repo = await plan_repo(pool, upstream, planner.command, max_attempts=1)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)
    await decide(pool, task.id, "approve")
    await jobs.run_task(task.id, deps)
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert "extra.txt, with no attempt left" in blocked.status_reason


async def test_a_failing_planning_run_fails_the_task(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=["unused"], plan_exit=3, implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.status_reason.startswith("the planning run ended with crash:")
    assert "the planner fell over" in failed.status_reason
    assert failed.plan is None
    assert await plan_jobs(pool) == []


async def test_an_approved_but_unreadable_plan_plans_again(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    assert planning.needs_plan(task)
    await TaskRepo(pool).set_plan(task.id, {"ok": False, "error": "x", "raw": ""})
    await TaskRepo(pool).move(task.id, TaskStatus.PREPARING)
    await TaskRepo(pool).move(task.id, TaskStatus.PLANNING)
    await TaskRepo(pool).move(task.id, TaskStatus.AWAITING_APPROVAL)
    approved = await TaskRepo(pool).decide_plan(task.id, 1, "approve", "mallory")
    assert approved is not None
    assert planning.needs_plan(approved)
    readable = await TaskRepo(pool).set_plan(task.id, {"ok": True, **plan_dict()})
    assert planning.needs_plan(readable)  # readable, but not approved yet
    approved = await TaskRepo(pool).decide_plan(task.id, 2, "approve", "mallory")
    assert approved is not None
    assert not planning.needs_plan(approved)


# --- with a running worker: the scheduled jobs, restarts, and the slots -------------------


async def test_cancel_while_planning(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    repo = await plan_repo(pool, upstream, hang_agent(pids, "--write", "partial.txt"))
    task = await submit_interactive(pool, repo)
    async with running_worker(db_dsn, tmp_path / "home"):
        await wait_status(pool, task.id, TaskStatus.PLANNING)
        await wait_pids(pids)
        await TaskRepo(pool).request_cancel(task.id, "bob")
        cancelled = await wait_status(pool, task.id, TaskStatus.CANCELLED, within=10)
    assert cancelled.status_reason == "cancelled by bob"
    assert cancelled.plan is None
    assert await plan_jobs(pool) == []
    mirror = Workspace(tmp_path / "home" / "workspaces").mirror_path(repo.name)
    assert git(mirror, "rev-list", f"{cancelled.base_commit}..agent/{task.key}") == ""


async def test_a_worker_stopped_while_planning_requeues_the_task(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    repo = await plan_repo(pool, upstream, hang_agent(pids))
    task = await submit_interactive(pool, repo)
    async with running_worker(db_dsn, tmp_path / "home", worker_settings(concurrency=1)):
        await wait_status(pool, task.id, TaskStatus.PLANNING)
        await wait_pids(pids)
    requeued = await TaskRepo(pool).by_id(task.id)
    assert requeued.status is TaskStatus.QUEUED
    assert requeued.plan_round == 0
    assert planning.needs_plan(requeued)
