"""What the bot's commands and buttons do, as plain functions of the pool and the operator.

Each change records who made it as an `operator_action` event in the same transaction.
Errors meant for the person are `UserError`s carrying the HTML to answer with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bot import plan_texts, texts
from bot.callbacks import PlanDecision
from bot.deps import Operator, Pool
from storage.artifacts import ArtifactRepo
from storage.db import Executor
from storage.errors import InvalidTransition, NotFound
from storage.limits import parse_cost, parse_duration, parse_turns
from storage.repos import Repo, RepoRepo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_runs import TaskRunRepo
from storage.task_status import ACTIVE, TERMINAL, TaskStatus
from storage.tasks import NewTask, Task, TaskCounts, TaskRepo
from storage.worker_state import WorkerStateRepo
from worker.queue import queue_task, submit_task

log = logging.getLogger(__name__)

# Not running anywhere: the bot cancels these itself. Active ones the worker must stop.
CANCEL_AT_ONCE = frozenset(
    {TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.AWAITING_APPROVAL, TaskStatus.BLOCKED}
)
RETRYABLE = frozenset({TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.CANCELLED})


class UserError(Exception):
    """A problem with what the person asked for; `html` is the answer to show."""

    def __init__(self, html: str) -> None:
        super().__init__(html)
        self.html = html


async def _record(conn: Executor, task: Task, op: Operator, action: str, via: str) -> None:
    await TaskEventRepo(conn).add(
        task.id,
        EventKind.OPERATOR_ACTION,
        {"action": action, "via": via, "user_id": op.user_id, "name": op.name},
    )


async def task_by_key(pool: Pool, key: str) -> Task:
    try:
        return await TaskRepo(pool).by_key(key.strip().upper())
    except NotFound:
        raise UserError(texts.unknown_task(key)) from None


async def task_by_id(pool: Pool, task_id: int) -> Task:
    try:
        return await TaskRepo(pool).by_id(task_id)
    except NotFound:
        raise UserError(texts.STALE_BUTTON) from None


async def repo_by_name(pool: Pool, name: str) -> Repo:
    try:
        return await RepoRepo(pool).by_name(name)
    except NotFound:
        raise UserError(texts.unknown_repo(name)) from None


async def create(pool: Pool, new: NewTask) -> Task:
    """Create and queue a task (task_created names its creator)."""
    async with pool.acquire() as conn:
        return await submit_task(conn, new)


async def cancel(pool: Pool, task_id: int, op: Operator, via: str) -> Task:
    """Cancel at once what is not running; ask the worker to stop what is (it NOTIFYs)."""
    async with pool.acquire() as conn, conn.transaction():
        task = await TaskRepo(conn).by_id(task_id)
        if task.status in TERMINAL - {TaskStatus.BLOCKED}:
            raise UserError(texts.cannot(task, "cancelled"))
        await _record(conn, task, op, "cancel", via)
        task = await TaskRepo(conn).request_cancel(task.id, op.label)
        if task.status not in CANCEL_AT_ONCE:
            return task
        try:
            async with conn.transaction():  # a savepoint: a worker may have just taken it
                return await record_move(
                    conn, task, TaskStatus.CANCELLED, reason=f"cancelled by {op.label}"
                )
        except InvalidTransition:
            return await TaskRepo(conn).by_id(task.id)  # now active: the worker obeys the flag


async def retry(pool: Pool, task_id: int, op: Operator, via: str) -> Task:
    async with pool.acquire() as conn, conn.transaction():
        task = await TaskRepo(conn).by_id(task_id)
        if task.status not in RETRYABLE:
            raise UserError(texts.cannot(task, "retried"))
        await _record(conn, task, op, "retry", via)
        return await queue_task(conn, task)


async def decide_plan(
    pool: Pool, task_id: int, plan_round: int, decision: PlanDecision, op: Operator, *,
    feedback: str | None = None,
) -> Task:  # fmt: skip
    """Approve (queue the implement job), revise (plan again, with `feedback`) or reject
    (blocked) the plan of `plan_round`, once; a stale or repeated decision changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        tasks = TaskRepo(conn)
        task = await tasks.by_id(task_id)
        if (
            decision == "approve"
            and task.plan_round == plan_round
            and not (task.plan and task.plan.get("ok"))
        ):
            raise UserError(plan_texts.PLAN_UNREADABLE)
        decided = await tasks.decide_plan(task_id, plan_round, decision, op.label, feedback)
        if decided is None:
            raise UserError(plan_texts.PLAN_STALE)
        await _record(conn, decided, op, f"plan_{decision}", "button")
        events = TaskEventRepo(conn)
        by = {"round": plan_round, "by": op.label}
        if decision == "reject":
            await events.add(task_id, EventKind.PLAN_REJECTED, by)
            return await record_move(conn, decided, TaskStatus.BLOCKED,
                                     reason=f"plan rejected by {op.label}")  # fmt: skip
        if decision == "approve":
            await events.add(task_id, EventKind.PLAN_APPROVED, by)
        return await queue_task(conn, decided)


def extended(task: Task, percent: int) -> dict[str, Any]:
    """The task's limits raised by `percent` (limits it does not have stay unset)."""
    factor = Decimal(100 + percent) / 100
    return {
        "cost_usd": None if task.max_cost_usd is None else (task.max_cost_usd * factor).quantize(
            Decimal("0.01")),
        "wall_seconds": None if task.max_wall_seconds is None else int(task.max_wall_seconds
                                                                      * factor),
        "turns": None if task.max_turns is None else int(task.max_turns * factor),
    }  # fmt: skip


async def extend_budget(pool: Pool, task_id: int, percent: int, op: Operator, *,
                        resume: bool) -> Task:  # fmt: skip
    """Raise the limits; with `resume`, queue a task the budget blocked (same branch)."""
    async with pool.acquire() as conn, conn.transaction():
        tasks = TaskRepo(conn)
        task = await tasks.by_id(task_id)
        if task.status in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED):
            raise UserError(texts.cannot(task, "given more budget"))
        if resume and task.status is not TaskStatus.BLOCKED:
            raise UserError(texts.cannot(task, "resumed"))
        await _record(conn, task, op, f"budget_extend_{percent}", "button")
        task = await tasks.set_budget(task.id, **extended(task, percent))
        return await queue_task(conn, task) if resume else task


async def set_limit(pool: Pool, task: Task, what: str, value: str, op: Operator) -> Task:
    """/budget KEY cost 5 | wall 45m | turns 80 (`off` removes the task's own limit)."""
    limits = {"cost_usd": task.max_cost_usd, "wall_seconds": task.max_wall_seconds,
              "turns": task.max_turns}  # fmt: skip
    field = {"cost": "cost_usd", "wall": "wall_seconds", "turns": "turns"}.get(what.lower())
    if field is None:
        raise UserError(texts.BUDGET_USAGE)
    limits[field] = None if value.lower() == "off" else _parse_limit(field, value)
    async with pool.acquire() as conn, conn.transaction():
        await _record(conn, task, op, f"budget_set_{what.lower()}", "command")
        return await TaskRepo(conn).set_budget(task.id, **limits)  # type: ignore[arg-type]


def _parse_limit(field: str, value: str) -> Decimal | int:
    try:
        return parse_cost(value) if field == "cost_usd" else (
            parse_duration(value) if field == "wall_seconds" else parse_turns(value))  # fmt: skip
    except ValueError as exc:
        raise UserError(f"{texts.esc(exc)}\n{texts.BUDGET_USAGE}") from None
    except ArithmeticError:  # "NaN": Decimal reads it, then refuses to compare it
        raise UserError(f"Not a number: {texts.esc(value[:40])}\n{texts.BUDGET_USAGE}") from None


async def set_paused(pool: Pool, paused: bool, op: Operator) -> None:
    await WorkerStateRepo(pool).set_paused(paused)
    log.info("worker paused" if paused else "worker resumed", extra={"by": op.label})


@dataclass(frozen=True, slots=True)
class Overview:
    counts: TaskCounts
    paused: bool
    running: list[Task]


async def overview(pool: Pool, now: datetime | None = None) -> Overview:
    now = now or datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    async with pool.acquire() as conn:
        tasks = TaskRepo(conn)
        counts = await tasks.counts(midnight)
        paused = await WorkerStateRepo(conn).paused()
        running = await tasks.page(statuses=ACTIVE, limit=10)
    return Overview(counts, paused, running[::-1])


async def card_text(pool: Pool, task: Task) -> str:
    async with pool.acquire() as conn:
        repo = await RepoRepo(conn).by_id(task.repo_id)
        last = await TaskEventRepo(conn).latest(task.id)
        attempts = await TaskRunRepo(conn).attempts_made(task.id)
    return texts.card(task, repo, last[-1] if last else None, attempts)


async def log_text(pool: Pool, task: Task) -> str:
    async with pool.acquire() as conn:
        runs = await TaskRunRepo(conn).for_task(task.id)
        events = await TaskEventRepo(conn).latest(task.id, limit=15)
    return texts.log_text(task, runs[-3:], events)


COMBINED_MBOX = "combined.mbox"  # the artifact holding a task's whole series


@dataclass(frozen=True, slots=True)
class Series:
    """How a task's patch series goes to Telegram, in documents of a size limit: `files` is
    ["combined.mbox"] when the whole fits, else the per-commit patches in order when each
    fits, else [] (then too big: a link). `size` is the whole series; 0 when no commits."""

    size: int
    files: list[str]

    @property
    def whole(self) -> bool:
        return self.files == [COMBINED_MBOX]


async def series(pool: Pool, task: Task, *, limit: int) -> Series:
    sizes = {a.filename: a.size for a in await ArtifactRepo(pool).for_task(task.id)}
    size = sizes.get(COMBINED_MBOX)
    if size is None:
        return Series(0, [])
    if size <= limit:
        return Series(size, [COMBINED_MBOX])
    patches = sorted(name for name in sizes if name.endswith(".patch"))
    fits = patches and all(sizes[name] <= limit for name in patches)
    return Series(size, patches if fits else [])
