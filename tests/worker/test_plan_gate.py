"""The plan gate on real git and a real database: plan, wait, decide, implement in scope.

The scripted agent is tests/fakes/agents/planner.py; a decision is recorded the way the bot
records it (decide_plan, an event, queue_task, in one transaction).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from storage.artifacts import ArtifactRepo
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind, TaskEvent, TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.tasks import NewTask, Task, TaskRepo, TaskStatus
from tests.gitrepos import apply_mbox, git, make_repo
from tests.worker.running import (
    SETTINGS,
    Planner,
    Pool,
    hang_agent,
    running_worker,
    wait_pids,
    wait_status,
    wait_until,
    worker_deps,
)
from worker import jobs, planning
from worker.deps import WorkerDeps
from worker.payloads import PlanExpiryPayload, PlanReminderPayload
from worker.queue import queue_task, submit_task
from worker.settings import WorkerSettings
from worker.workspace import Workspace

SUMMARY = "Add a greeting file"


def _plan(summary: str = SUMMARY, files: tuple[str, ...] = ("hello.txt",)) -> dict[str, Any]:
    return {
        "summary": summary,
        "approach": "Write the file in the repository root.",
        "steps": ["Create hello.txt with a greeting", "Check it reads well"],
        "files_to_touch": list(files),
        "risks": ["None worth naming"],
        "acceptance_check": "hello.txt says hello",
    }


def _fenced(plan: dict[str, Any]) -> str:
    """The way agents like to answer: prose, a fence, more prose."""
    return f"I read the code. My plan:\n\n```json\n{json.dumps(plan, indent=2)}\n```\n\nDone."


HELLO = {"write": {"hello.txt": "hello from the agent\n"}}


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})


@pytest.fixture
def deps(pool: Pool, tmp_path: Path) -> WorkerDeps:
    settings = WorkerSettings(agent_timeout_seconds=20, plan_remind_after_seconds=600,
                              plan_expire_after_seconds=7200)  # fmt: skip
    return worker_deps(pool, tmp_path, settings=settings)


async def _repo(pool: Pool, upstream: Path, command: str, max_attempts: int = 3,
                name: str = "demo", **checks: str) -> Repo:  # fmt: skip
    new = NewRepo(name=name, source=str(upstream), default_branch="main",
                  agent_backend="command", agent_command=command, max_attempts=max_attempts,
                  git_author_name="Agent", git_author_email="agent@example.invalid",
                  **checks)  # type: ignore[arg-type]  # fmt: skip
    return await RepoRepo(pool).add(new)


async def _submit(pool: Pool, repo: Repo, title: str = "Say hello") -> Task:
    async with pool.acquire() as conn:
        new = NewTask(repo_id=repo.id, title=title, mode="interactive", chat_id=42)
        return await submit_task(conn, new)


async def _decide(pool: Pool, task_id: int, decision: str, feedback: str | None = None) -> Task:
    """What the bot does on Approve or Revise: decide, tell, queue; one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        tasks = TaskRepo(conn)
        shown = await tasks.by_id(task_id)
        decided = await tasks.decide_plan(task_id, shown.plan_round, decision, "alice", feedback)
        assert decided is not None
        kind = EventKind.PLAN_APPROVED if decision == "approve" else EventKind.OPERATOR_ACTION
        await TaskEventRepo(conn).add(task_id, kind, {"round": shown.plan_round, "by": "alice"})
        return await queue_task(conn, decided)


async def _events(pool: Pool, task: Task, kind: EventKind | None = None) -> list[TaskEvent]:
    events = await TaskEventRepo(pool).for_task(task.id)
    return [e for e in events if kind is None or e.kind is kind]


async def _plan_jobs(pool: Pool) -> list[tuple[str, dict[str, Any], float]]:
    """Scheduled plan jobs still in PgQueuer's table: entrypoint, payload, delay (s)."""
    rows = await pool.fetch(
        "SELECT entrypoint, convert_from(payload, 'UTF8') AS payload,"
        "       extract(epoch FROM execute_after - created)::float AS delay"
        "  FROM pgqueuer WHERE entrypoint LIKE 'plan_%' ORDER BY id"
    )
    return [(r["entrypoint"], json.loads(r["payload"]), r["delay"]) for r in rows]


async def test_plan_phase_stores_the_plan_and_waits_for_a_person(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[_fenced(_plan())], plan_writes={"scratch.txt": "oops"},
                      implement=[HELLO])  # fmt: skip
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)

    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.AWAITING_APPROVAL, waiting.status_reason
    assert waiting.plan == {"ok": True, **_plan()}
    assert waiting.plan_round == 1
    assert waiting.awaiting_since is not None
    assert waiting.finished_at is None
    plan_md = (await ArtifactRepo(pool).content(task.id, "plan.md")).decode()
    assert plan_md.startswith(f"# Plan\n\n{SUMMARY}\n")
    assert "- `hello.txt`" in plan_md
    [pending] = await _events(pool, task, EventKind.PLAN_PENDING)
    assert pending.payload == {"round": 1, "ok": True, "summary": SUMMARY, "steps": 2, "files": 1}
    kinds = [e.kind.value for e in await _events(pool, task)]
    assert kinds[-5:] == ["status_changed", "agent_started", "agent_finished", "status_changed",
                          "plan_pending"]  # fmt: skip
    moves = [(e.payload["from"], e.payload["to"])
             for e in await _events(pool, task, EventKind.STATUS_CHANGED)]  # fmt: skip
    assert moves[-3:] == [("queued", "preparing"), ("preparing", "planning"),
                          ("planning", "awaiting_approval")]  # fmt: skip
    # the reminder and the expiry wait in PgQueuer's table, due at the configured times
    scheduled = await _plan_jobs(pool)
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
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)

    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.AWAITING_APPROVAL
    assert waiting.plan is not None
    assert waiting.plan["ok"] is False
    assert waiting.plan["error"] == "no JSON object found in the agent's answer"
    assert answer in waiting.plan["raw"]
    [pending] = await _events(pool, task, EventKind.PLAN_PENDING)
    assert pending.payload == {"round": 1, "ok": False, "summary": "", "steps": 0, "files": 0}
    plan_md = (await ArtifactRepo(pool).content(task.id, "plan.md")).decode()
    assert plan_md.startswith("# Plan could not be read\n\nno JSON object found")
    assert answer in plan_md
    assert planning.needs_plan(waiting)


async def test_revise_plans_again_with_the_previous_plan_and_the_feedback(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    first = _plan("Round one plan")
    second = _plan("Round two plan", files=("hello.txt", "README.md"))
    planner = Planner(tmp_path, plans=[_fenced(first), json.dumps(second)], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    queued = await _decide(pool, task.id, "revise", "Also mention it in the README, please.")
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
    rounds = [e.payload["round"] for e in await _events(pool, task, EventKind.PLAN_PENDING)]
    assert rounds == [1, 2]
    assert [p["round"] for _, p, _ in await _plan_jobs(pool)] == [1, 1, 2, 2]
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert [(r.phase, r.attempt) for r in runs] == [("plan", 1), ("plan", 2)]


async def test_an_approved_plan_is_implemented_as_a_binding_contract(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command, test_command="test -f hello.txt")
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    await _decide(pool, task.id, "approve")
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
    [passed] = await _events(pool, task, EventKind.PREFLIGHT_PASSED)
    assert passed.payload == {"kind": "scope", "files": ["hello.txt"], "attempt": 1}
    assert len(planner.calls("plan")) == 1  # approved: no second plan


async def test_a_file_outside_the_plan_sends_the_agent_back_once(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    strays = {"hello.txt": "hello from the agent\n", "extra.txt": "not in the plan\n",
              "README.md": "# Demo\nRewritten.\n"}  # fmt: skip
    reverted = {"write": {"README.md": "# Demo\n"}, "delete": ["extra.txt"]}
    planner = Planner(tmp_path, plans=[_fenced(_plan())],
                      implement=[{"write": strays}, reverted])  # fmt: skip
    check = "test -f hello.txt && echo cache > check-leftover.log"  # not the agent's doing
    repo = await _repo(pool, upstream, planner.command, test_command=check)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    await _decide(pool, task.id, "approve")
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    [failed] = await _events(pool, task, EventKind.PREFLIGHT_FAILED)
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
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[strays, stubborn])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    await _decide(pool, task.id, "approve")
    await jobs.run_task(task.id, deps)

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.status_reason == (
        "changed files outside the approved plan: extra.txt, again after being sent back"
    )
    assert len(await _events(pool, task, EventKind.PREFLIGHT_FAILED)) == 1
    [ended] = await _events(pool, task, EventKind.TASK_BLOCKED)
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
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[strays])
    repo = await _repo(pool, upstream, planner.command, max_attempts=1)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    await _decide(pool, task.id, "approve")
    await jobs.run_task(task.id, deps)
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert "extra.txt, with no attempt left" in blocked.status_reason


async def test_a_failing_planning_run_fails_the_task(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=["unused"], plan_exit=3, implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.status_reason.startswith("the planning run ended with crash:")
    assert "the planner fell over" in failed.status_reason
    assert failed.plan is None
    assert await _plan_jobs(pool) == []


async def test_stale_reminders_and_expiries_do_nothing(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    await _decide(pool, task.id, "revise", "Shorter, please.")
    await jobs.run_task(task.id, deps)  # round 2 waits now

    await planning.remind(PlanReminderPayload(task_id=task.id, round=1), deps)
    await planning.expire(PlanExpiryPayload(task_id=task.id, round=1), deps)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    assert await _events(pool, task, EventKind.PLAN_REMINDER) == []

    await TaskRepo(pool).decide_plan(task.id, 2, "approve", "alice")  # decided, not yet queued
    await planning.remind(PlanReminderPayload(task_id=task.id, round=2), deps)
    await planning.expire(PlanExpiryPayload(task_id=task.id, round=2), deps)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    assert await _events(pool, task, EventKind.PLAN_REMINDER) == []

    await planning.expire(PlanExpiryPayload(task_id=task.id + 1000, round=1), deps)  # no task


async def test_the_current_round_gets_its_reminder_and_expires(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    await planning.remind(PlanReminderPayload(task_id=task.id, round=1), deps)
    [reminder] = await _events(pool, task, EventKind.PLAN_REMINDER)
    assert reminder.payload["round"] == 1
    assert reminder.payload["waiting_seconds"] >= 0
    await planning.expire(PlanExpiryPayload(task_id=task.id, round=1), deps)
    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.status_reason == "plan not decided within 2 h; /retry to plan again"
    # /retry plans again, showing the agent its unanswered plan
    async with pool.acquire() as conn, conn.transaction():
        await queue_task(conn, blocked)
    await jobs.run_task(task.id, deps)
    again = await TaskRepo(pool).by_id(task.id)
    assert (again.status, again.plan_round) == (TaskStatus.AWAITING_APPROVAL, 2)
    assert "A new plan was requested." in planner.calls("plan")[1]["prompt"]


def test_describe_seconds() -> None:
    assert planning.describe_seconds(86400) == "24 h"
    assert planning.describe_seconds(5400) == "90 min"
    assert planning.describe_seconds(1.5) == "1.5 s"


async def test_an_approved_but_unreadable_plan_plans_again(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    assert planning.needs_plan(task)
    await TaskRepo(pool).set_plan(task.id, {"ok": False, "error": "x", "raw": ""})
    await TaskRepo(pool).move(task.id, TaskStatus.PREPARING)
    await TaskRepo(pool).move(task.id, TaskStatus.PLANNING)
    await TaskRepo(pool).move(task.id, TaskStatus.AWAITING_APPROVAL)
    approved = await TaskRepo(pool).decide_plan(task.id, 1, "approve", "mallory")
    assert approved is not None
    assert planning.needs_plan(approved)
    readable = await TaskRepo(pool).set_plan(task.id, {"ok": True, **_plan()})
    assert planning.needs_plan(readable)  # readable, but not approved yet
    approved = await TaskRepo(pool).decide_plan(task.id, 2, "approve", "mallory")
    assert approved is not None
    assert not planning.needs_plan(approved)


# --- with a running worker: the scheduled jobs, restarts, and the slots -------------------


def _settings(**changes: Any) -> WorkerSettings:
    return SETTINGS.model_copy(update=changes)


async def test_reminder_and_expiry_fire_from_scheduled_jobs(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    settings = _settings(plan_remind_after_seconds=1, plan_expire_after_seconds=3)
    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, task.id, TaskStatus.AWAITING_APPROVAL)

        async def reminded() -> bool:
            return bool(await _events(pool, task, EventKind.PLAN_REMINDER))

        await wait_until(reminded, "the plan reminder", within=15)
        blocked = await wait_status(pool, task.id, TaskStatus.BLOCKED, within=15)
    assert blocked.status_reason == "plan not decided within 3 s; /retry to plan again"
    [reminder] = await _events(pool, task, EventKind.PLAN_REMINDER)
    assert reminder.payload["round"] == 1
    assert reminder.payload["waiting_seconds"] >= 1
    kinds = [e.kind.value for e in await _events(pool, task)]
    assert kinds.index("plan_pending") < kinds.index("plan_reminder") < kinds.index("task_blocked")
    assert await _plan_jobs(pool) == []


async def test_a_plan_waiting_across_a_worker_restart_still_expires(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    settings = _settings(plan_remind_after_seconds=0, plan_expire_after_seconds=4)
    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, task.id, TaskStatus.AWAITING_APPROVAL)
    # the worker is gone; what it scheduled is not
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    assert [e for e, _, _ in await _plan_jobs(pool)] == ["plan_expiry"]
    async with running_worker(db_dsn, tmp_path / "home", settings):
        blocked = await wait_status(pool, task.id, TaskStatus.BLOCKED, within=15)
    assert blocked.status_reason == "plan not decided within 4 s; /retry to plan again"
    assert len(planner.calls("plan")) == 1


async def test_a_decided_plan_ignores_its_scheduled_reminder_and_expiry(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    task = await _submit(pool, repo)
    settings = _settings(plan_remind_after_seconds=1, plan_expire_after_seconds=2)
    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, task.id, TaskStatus.AWAITING_APPROVAL)
        await _decide(pool, task.id, "approve")
        await wait_status(pool, task.id, TaskStatus.DONE)

        async def all_ran() -> bool:
            return await _plan_jobs(pool) == []

        await wait_until(all_ran, "the plan jobs ran", within=15)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.DONE
    assert await _events(pool, task, EventKind.PLAN_REMINDER) == []


async def test_plan_jobs_run_while_every_task_slot_is_taken(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    busy_repo = await _repo(pool, upstream, hang_agent(pids), name="busy")
    async with pool.acquire() as conn:
        busy = await submit_task(conn, NewTask(repo_id=busy_repo.id, title="never ends"))
    planner = Planner(tmp_path, plans=[_fenced(_plan())], implement=[HELLO])
    repo = await _repo(pool, upstream, planner.command)
    settings = _settings(concurrency=1)
    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, busy.id, TaskStatus.RUNNING)
        await wait_pids(pids)  # the only task slot is taken
        task = await _submit(pool, repo)  # its run_task job has to wait for the slot …
        direct = worker_deps(pool, tmp_path, settings=_settings(plan_remind_after_seconds=1))
        await jobs.run_task(task.id, direct)  # … so plan it here; the reminder goes to PgQueuer

        async def reminded() -> bool:
            return bool(await _events(pool, task, EventKind.PLAN_REMINDER))

        await wait_until(reminded, "the plan reminder", within=15)
        assert (await TaskRepo(pool).by_id(busy.id)).status is TaskStatus.RUNNING


async def test_cancel_while_planning(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    repo = await _repo(pool, upstream, hang_agent(pids, "--write", "partial.txt"))
    task = await _submit(pool, repo)
    async with running_worker(db_dsn, tmp_path / "home"):
        await wait_status(pool, task.id, TaskStatus.PLANNING)
        await wait_pids(pids)
        await TaskRepo(pool).request_cancel(task.id, "bob")
        cancelled = await wait_status(pool, task.id, TaskStatus.CANCELLED, within=10)
    assert cancelled.status_reason == "cancelled by bob"
    assert cancelled.plan is None
    assert await _plan_jobs(pool) == []
    mirror = Workspace(tmp_path / "home" / "workspaces").mirror_path(repo.name)
    assert git(mirror, "rev-list", f"{cancelled.base_commit}..agent/{task.key}") == ""


async def test_a_worker_stopped_while_planning_requeues_the_task(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    repo = await _repo(pool, upstream, hang_agent(pids))
    task = await _submit(pool, repo)
    async with running_worker(db_dsn, tmp_path / "home", _settings(concurrency=1)):
        await wait_status(pool, task.id, TaskStatus.PLANNING)
        await wait_pids(pids)
    requeued = await TaskRepo(pool).by_id(task.id)
    assert requeued.status is TaskStatus.QUEUED
    assert requeued.plan_round == 0
    assert planning.needs_plan(requeued)
