"""The plan gate's clock: reminders and expiry are PgQueuer jobs scheduled when a plan
starts waiting; they act only on the round still undecided, and survive worker restarts."""

from __future__ import annotations

from pathlib import Path

from storage.task_events import EventKind
from storage.task_status import TaskStatus
from storage.tasks import NewTask, TaskRepo
from tests.worker.plans import (
    HELLO,
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
    wait_until,
    worker_deps,
)
from worker import jobs, planning
from worker.deps import WorkerDeps
from worker.payloads import PlanExpiryPayload, PlanReminderPayload
from worker.queue import queue_task, submit_task


async def test_stale_reminders_and_expiries_do_nothing(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)
    await decide(pool, task.id, "revise", "Shorter, please.")
    await jobs.run_task(task.id, deps)  # round 2 waits now

    await planning.remind(PlanReminderPayload(task_id=task.id, round=1), deps)
    await planning.expire(PlanExpiryPayload(task_id=task.id, round=1), deps)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    assert await events(pool, task, EventKind.PLAN_REMINDER) == []

    await TaskRepo(pool).decide_plan(task.id, 2, "approve", "alice")  # decided, not yet queued
    await planning.remind(PlanReminderPayload(task_id=task.id, round=2), deps)
    await planning.expire(PlanExpiryPayload(task_id=task.id, round=2), deps)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    assert await events(pool, task, EventKind.PLAN_REMINDER) == []

    await planning.expire(PlanExpiryPayload(task_id=task.id + 1000, round=1), deps)  # no task


async def test_the_current_round_gets_its_reminder_and_expires(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    await jobs.run_task(task.id, deps)
    await planning.remind(PlanReminderPayload(task_id=task.id, round=1), deps)
    [reminder] = await events(pool, task, EventKind.PLAN_REMINDER)
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


async def test_reminder_and_expiry_fire_from_scheduled_jobs(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    settings = worker_settings(plan_remind_after_seconds=1, plan_expire_after_seconds=3)
    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, task.id, TaskStatus.AWAITING_APPROVAL)

        async def reminded() -> bool:
            return bool(await events(pool, task, EventKind.PLAN_REMINDER))

        await wait_until(reminded, "the plan reminder", within=15)
        blocked = await wait_status(pool, task.id, TaskStatus.BLOCKED, within=15)
    assert blocked.status_reason == "plan not decided within 3 s; /retry to plan again"
    [reminder] = await events(pool, task, EventKind.PLAN_REMINDER)
    assert reminder.payload["round"] == 1
    assert reminder.payload["waiting_seconds"] >= 1
    kinds = [e.kind.value for e in await events(pool, task)]
    assert kinds.index("plan_pending") < kinds.index("plan_reminder") < kinds.index("task_blocked")
    assert await plan_jobs(pool) == []


async def test_a_plan_waiting_across_a_worker_restart_still_expires(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    settings = worker_settings(plan_remind_after_seconds=0, plan_expire_after_seconds=4)
    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, task.id, TaskStatus.AWAITING_APPROVAL)
    # the worker is gone; what it scheduled is not
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    assert [e for e, _, _ in await plan_jobs(pool)] == ["plan_expiry"]
    async with running_worker(db_dsn, tmp_path / "home", settings):
        blocked = await wait_status(pool, task.id, TaskStatus.BLOCKED, within=15)
    assert blocked.status_reason == "plan not decided within 4 s; /retry to plan again"
    assert len(planner.calls("plan")) == 1


async def test_a_decided_plan_ignores_its_scheduled_reminder_and_expiry(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    task = await submit_interactive(pool, repo)
    settings = worker_settings(plan_remind_after_seconds=1, plan_expire_after_seconds=2)
    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, task.id, TaskStatus.AWAITING_APPROVAL)
        await decide(pool, task.id, "approve")
        await wait_status(pool, task.id, TaskStatus.DONE)

        async def all_ran() -> bool:
            return await plan_jobs(pool) == []

        await wait_until(all_ran, "the plan jobs ran", within=15)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.DONE
    assert await events(pool, task, EventKind.PLAN_REMINDER) == []


async def test_plan_jobs_run_while_every_task_slot_is_taken(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    busy_repo = await plan_repo(pool, upstream, hang_agent(pids), name="busy")
    async with pool.acquire() as conn:
        busy = await submit_task(conn, NewTask(repo_id=busy_repo.id, title="never ends"))
    planner = Planner(tmp_path, plans=[fenced(plan_dict())], implement=[HELLO])
    repo = await plan_repo(pool, upstream, planner.command)
    settings = worker_settings(concurrency=1)
    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, busy.id, TaskStatus.RUNNING)
        await wait_pids(pids)  # the only task slot is taken
        task = await submit_interactive(pool, repo)  # its run_task job has to wait for the slot …
        direct = worker_deps(pool, tmp_path, settings=worker_settings(plan_remind_after_seconds=1))
        await jobs.run_task(task.id, direct)  # … so plan it here; the reminder goes to PgQueuer

        async def reminded() -> bool:
            return bool(await events(pool, task, EventKind.PLAN_REMINDER))

        await wait_until(reminded, "the plan reminder", within=15)
        assert (await TaskRepo(pool).by_id(busy.id)).status is TaskStatus.RUNNING
