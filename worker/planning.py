"""The plan gate of an interactive task: plan read-only, then wait for a person.

The plan phase runs the agent with read-only tools and a turn cap, reads one JSON plan from
its answer (worker/plan.py), stores it on the task and as plan.md, and leaves the task
`awaiting_approval`; the job then ends, so no worker slot is held while a person decides.
The bot records the decision: approve or revise queue the task again (this module's
`needs_plan` then says which phase runs), reject blocks it.

The planning run counts toward the task's budget (worker/budget.py). A run the budget stops
blocks the task (Extend & resume plans again); a plan that was finished is shown even if it
used the budget up: the implementation then starts by asking for more.

A reminder and an expiry are PgQueuer jobs scheduled in the same transaction that shows the
plan, so they survive worker restarts. Each names its plan round and acts only while that
round still waits undecided.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.db import Connection
from storage.errors import NotFound
from storage.repos import Repo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from worker.agent_choice import primary_agent
from worker.agents.base import AgentRequest, ErrorKind
from worker.agents.registry import UnknownBackend
from worker.backoff import must_wait, wait_or_give_up
from worker.budget import Budget, block
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.payloads import PlanExpiryPayload, PlanReminderPayload
from worker.plan import (
    PlanError,
    failed_plan_json,
    parse_plan,
    plan_from_json,
    plan_json,
    previous_from_json,
    render_markdown,
    render_unreadable_markdown,
)
from worker.prompts import plan_prompt
from worker.queue import JobQueue, Priority
from worker.runs import finish_run, start_run
from worker.workspace import Worktree

log = logging.getLogger(__name__)

PLAN_FILENAME = "plan.md"


def needs_plan(task: Task) -> bool:
    """An interactive task plans until a readable plan of it is approved."""
    if task.mode != "interactive":
        return False
    return task.plan_approved_at is None or plan_from_json(task.plan) is None


async def plan(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps, budget: Budget, *,
    context: str = "",
) -> None:  # fmt: skip
    """preparing → planning → awaiting_approval (or failed when the agent run fails, or
    blocked when the budget stops it, or queued again when the model API refuses the run).
    `context`: the repo map and what happened before (worker/context.py)."""
    task = journal.task
    try:
        agent = primary_agent(task, repo, deps)
    except UnknownBackend as exc:
        await journal.move(TaskStatus.FAILED, reason=str(exc))
        return
    breach = await budget.exceeded()
    if breach is not None:
        await block(journal, breach, commits=0, branch=worktree.branch)
        return
    await journal.move(TaskStatus.PLANNING)
    plan_round = task.plan_round + 1
    name, model, backend = agent.name, agent.model, agent.backend
    home = deps.agent_homes / task.key
    home.mkdir(parents=True, exist_ok=True)
    start = await deps.workspace.head(worktree)
    # The feedback is read before set_plan(), which clears it.
    prompt = plan_prompt(task, repo, previous_from_json(task.plan), task.plan_feedback, context)
    limits = await budget.run_limits(deps.settings.plan_max_turns)
    run_id = await start_run(journal, deps, phase="plan", attempt=plan_round, backend=name,
                             model=model)  # fmt: skip
    async with budget.metered() as wall_left:
        request = AgentRequest(prompt=prompt, workdir=worktree.path, home=home,
                               deadline_seconds=deps.settings.agent_timeout_seconds,
                               model=model, max_turns=limits.max_turns,
                               max_budget_usd=limits.max_budget_usd, read_only=True,
                               wall_left=wall_left)  # fmt: skip
        result = await backend.run(request)
    spent = await finish_run(journal, deps, run_id, result, phase="plan", attempt=plan_round)
    await deps.workspace.discard_changes(worktree, to=start)  # a plan changes nothing
    breach = await budget.stopped(result, limits)
    if breach is not None:
        await block(journal, breach, commits=0, branch=worktree.branch)
        return
    if must_wait(result):  # not the plan's failure: plan again later
        await wait_or_give_up(journal, deps, result, phase="plan")
        return
    if not result.ok:
        kind = (result.error_kind or ErrorKind.CRASH).value
        await journal.move(TaskStatus.FAILED, reason=f"the planning run ended with {kind}: "
                           f"{result.error_message}")  # fmt: skip
        return
    await budget.warn(fresh=spent)
    try:
        parsed = parse_plan(result.text)
    except PlanError as exc:
        log.info("plan unreadable", extra={"task_key": task.key, "error": exc.reason})
        stored = failed_plan_json(exc.reason, result.text)
        markdown = render_unreadable_markdown(exc.reason, result.text)
        summary: dict[str, Any] = {"ok": False, "summary": "", "steps": 0, "files": 0}
    else:
        stored = plan_json(parsed)
        markdown = render_markdown(parsed)
        summary = {"ok": True, "summary": parsed.summary, "steps": len(parsed.steps),
                   "files": len(parsed.files_to_touch)}  # fmt: skip
    await _present(journal, deps, stored, markdown, summary)


async def _present(
    journal: TaskJournal, deps: WorkerDeps, stored: dict[str, Any], markdown: str,
    summary: dict[str, Any],
) -> None:  # fmt: skip
    """Store the plan, show it, and schedule its reminder and expiry: all or nothing."""
    await journal.flush()  # the move below comes after the planning run's events
    task = journal.task
    settings = deps.settings
    async with deps.pool.acquire() as conn, conn.transaction():
        shown = await TaskRepo(conn).set_plan(task.id, stored)
        await ArtifactRepo(conn).put(task.id, ArtifactKind.PLAN, PLAN_FILENAME, markdown.encode())
        moved = await record_move(conn, task, TaskStatus.AWAITING_APPROVAL)
        await TaskEventRepo(conn).add(task.id, EventKind.PLAN_PENDING,
                                      {"round": shown.plan_round, **summary})  # fmt: skip
        queue = JobQueue(conn)
        priority = Priority.for_task(task.priority)
        remind, expire = settings.plan_remind_after_seconds, settings.plan_expire_after_seconds
        if remind > 0 and (expire == 0 or remind < expire):
            await queue.enqueue(PlanReminderPayload(task_id=task.id, round=shown.plan_round),
                                priority=priority, delay=timedelta(seconds=remind))  # fmt: skip
        if expire > 0:
            await queue.enqueue(PlanExpiryPayload(task_id=task.id, round=shown.plan_round),
                                priority=priority, delay=timedelta(seconds=expire))  # fmt: skip
    journal.task = moved
    extra = {"task_key": task.key, "round": shown.plan_round, "ok": stored["ok"]}
    log.info("plan awaiting approval", extra=extra)


def _still_waiting(task: Task, plan_round: int) -> bool:
    return (
        task.status is TaskStatus.AWAITING_APPROVAL
        and task.plan_round == plan_round
        and task.plan_decided_by is None
    )


@contextlib.asynccontextmanager
async def _undecided(
    task_id: int, plan_round: int, deps: WorkerDeps, job: str
) -> AsyncIterator[tuple[Connection, Task] | None]:
    """In one transaction, the task locked if `plan_round` still waits; else None. The lock
    makes a decision taken at this moment wait, then find the round no longer pending."""
    async with deps.pool.acquire() as conn, conn.transaction():
        try:
            task = await TaskRepo(conn).lock(task_id)
        except NotFound:
            yield None
            return
        if not _still_waiting(task, plan_round):
            log.info("plan job not needed",
                     extra={"task_key": task.key, "round": plan_round, "job": job})  # fmt: skip
            yield None
            return
        yield conn, task


async def remind(payload: PlanReminderPayload, deps: WorkerDeps) -> None:
    """The plan_reminder job: tell the chat again, if that round still waits."""
    async with _undecided(payload.task_id, payload.round, deps, "reminder") as found:
        if found is None:
            return
        conn, task = found
        since = task.awaiting_since or task.updated_at
        waited = max(0, round((datetime.now(UTC) - since).total_seconds()))
        reminder = {"round": payload.round, "waiting_seconds": waited}
        await TaskEventRepo(conn).add(task.id, EventKind.PLAN_REMINDER, reminder)
    log.info("plan reminder sent", extra={"task_key": task.key, "round": payload.round})


async def expire(payload: PlanExpiryPayload, deps: WorkerDeps) -> None:
    """The plan_expiry job: block the task if that round is still undecided."""
    async with _undecided(payload.task_id, payload.round, deps, "expiry") as found:
        if found is None:
            return
        conn, task = found
        wait = describe_seconds(deps.settings.plan_expire_after_seconds)
        reason = f"plan not decided within {wait}; /retry to plan again"
        await record_move(conn, task, TaskStatus.BLOCKED, reason=reason)
    log.info("plan expired", extra={"task_key": task.key, "round": payload.round})


def describe_seconds(seconds: float) -> str:
    """24 h, 90 min, 5 s: how long, in the largest unit that is a whole number."""
    whole = round(seconds)
    if whole >= 3600 and whole % 3600 == 0:
        return f"{whole // 3600} h"
    if whole >= 60 and whole % 60 == 0:
        return f"{whole // 60} min"
    return f"{seconds:g} s"
