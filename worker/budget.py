"""A task's hard budget: dollars, wall time and turns, summed over everything it runs.

What counts: the cost and turns each agent run reports (the plan phase and every attempt, in
every job of the task: a resumed task goes on from what it spent), and as wall time the
task's working time, i.e. how long its agent runs and its checks ran. Waiting (in the queue,
for a plan decision) and the worker's own git and database work do not count.

Enforced inside each agent run (its --max-turns cut to the turns left, --max-budget-usd the
dollars left) and outside it: the watchdog (worker/processes.py) kills the run's process
group, or a check's, once the wall time left is gone. It reads the limits again at that
moment, so an Extend pressed meanwhile lets the work go on.

At 80 % of a limit: one budget_warning per limit per task (`tasks.budget_warned`), after a
run, or for wall time while it runs. At 100 %: nothing that would spend more starts; the
caller keeps the work and ends the task blocked (`block`), for Extend & resume.

Subscription mode: a run that succeeds without reporting its cost makes the task's cost
unknown (`tasks.cost_unknown`). The cost limit is then neither passed on, nor enforced, nor
warned about; wall time and turns still are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from storage.limits import Limits, effective_limits
from storage.repos import Repo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from worker.agents.base import AgentResult, ErrorKind
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.processes import TimeLeft
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

LimitName = Literal["cost", "wall", "turns"]
WARN_AT = 0.8  # of a limit: the budget_warning
WARN_PERCENT = 80
FRESH_SECONDS = 1.0  # a row read this recently serves a meter's first look
READ_TIMEOUT = 1.0  # the watchdog's read of the limits; if it fails, the last read counts
_NAMES = {"cost": "cost limit", "wall": "wall-time limit", "turns": "turn limit"}


def global_limits(settings: WorkerSettings) -> Limits:
    """The worker's defaults, for tasks whose own and whose repo's limits are unset."""
    return Limits(cost_usd=settings.default_max_cost_usd,
                  wall_seconds=settings.default_max_wall_seconds,
                  turns=settings.default_max_total_turns)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Usage:
    """One limit of a task: how much of it is spent."""

    limit: LimitName
    used: float
    max: float

    @property
    def ratio(self) -> float:
        return self.used / self.max

    def payload(self) -> dict[str, Any]:
        """What budget_warning, budget_exceeded and task_blocked carry."""
        return {"limit": self.limit, "used": _number(self.limit, self.used, used=True),
                "max": _number(self.limit, self.max, used=False)}  # fmt: skip

    @property
    def reason(self) -> str:
        """ "wall-time limit 10m reached (10m 02s used)" """
        limit, used = _amount(self.limit, self.max), _amount(self.limit, self.used, used=True)
        return f"{_NAMES[self.limit]} {limit} reached ({used} used)"


def usages(task: Task, limits: Limits) -> list[Usage]:
    """Each limit that binds the task, with what it spent of it (cost only while known)."""
    found = []
    if limits.cost_usd is not None and not task.cost_unknown:
        found.append(Usage("cost", float(task.spent_cost_usd), float(limits.cost_usd)))
    if limits.wall_seconds is not None:
        found.append(Usage("wall", task.spent_wall_seconds, float(limits.wall_seconds)))
    if limits.turns is not None:
        found.append(Usage("turns", float(task.spent_turns), float(limits.turns)))
    return found


@dataclass(frozen=True, slots=True)
class RunLimits:
    """What one agent run is given of the budget, to enforce itself."""

    max_turns: int
    max_budget_usd: float | None  # the dollars left; None: no cost limit, or cost unknown
    turns_bound: bool  # max_turns is the task's turns left, below the per-run cap


class Budget:
    """The budget of the task a job runs: read fresh at every decision, since a person can
    raise it (Extend, /budget) at any time."""

    def __init__(self, journal: TaskJournal, repo: Repo, deps: WorkerDeps) -> None:
        self._journal = journal
        self._repo = repo
        self._pool = deps.pool
        self._defaults = global_limits(deps.settings)
        self._last = journal.task  # the row last read (or returned by a write)
        self._read_at = time.monotonic()  # when

    def limits(self, task: Task) -> Limits:
        return effective_limits(task, self._repo, self._defaults)

    async def task(self) -> Task:
        return self._remember(await TaskRepo(self._pool).by_id(self._journal.task.id))

    def _remember(self, task: Task) -> Task:
        self._last, self._read_at = task, time.monotonic()
        return task

    async def _first_look(self) -> Task:
        """The row for a meter's first look: the one read just before it started (for the
        agent, the move to `running`; for the checks, `exceeded`), else read now. Later
        looks always read: the time left may have been raised meanwhile."""
        if time.monotonic() - self._read_at < FRESH_SECONDS:
            return self._last
        return await self.task()

    async def adopt_defaults(self) -> None:
        """Make the repo's or the global limits the task's own where it has none: the task
        keeps them even if the defaults change, and Extend has limits to raise. Called as the
        task starts, with the row its move to `preparing` just returned: no read again."""
        task = self._journal.task
        limits = self.limits(task)
        if limits == Limits(task.max_cost_usd, task.max_wall_seconds, task.max_turns):
            return
        self._journal.task = self._remember(await TaskRepo(self._pool).fill_budget(
            task.id, cost_usd=limits.cost_usd, wall_seconds=limits.wall_seconds,
            turns=limits.turns,
        ))  # fmt: skip
        log.info("budget defaults adopted", extra={"task_key": task.key})

    async def exceeded(self, *, only: LimitName | None = None) -> Usage | None:
        """The first limit the task has used up (of `only` that one); None if none is."""
        task = await self.task()
        for usage in usages(task, self.limits(task)):
            if (only is None or usage.limit == only) and usage.used >= usage.max:
                return usage
        return None

    async def run_limits(self, turn_cap: int, *, fresh: Task | None = None) -> RunLimits:
        """The turns and dollars the next agent run may use (call after `exceeded`).
        `fresh`: the task's row as a move just returned it, instead of reading it again."""
        task = self._remember(fresh) if fresh is not None else await self.task()
        limits = self.limits(task)
        max_turns, bound = turn_cap, False
        if limits.turns is not None and limits.turns - task.spent_turns < turn_cap:
            max_turns, bound = max(1, limits.turns - task.spent_turns), True
        dollars = None
        if limits.cost_usd is not None and not task.cost_unknown:
            dollars = float(max(limits.cost_usd - task.spent_cost_usd, Decimal("0.0001")))
        return RunLimits(max_turns, dollars, bound)

    async def stopped(self, result: AgentResult, run: RunLimits) -> Usage | None:
        """The limit that ended this run early: one used up, or the agent stopping itself at
        the --max-budget-usd or --max-turns the budget gave it. None for a finished run."""
        if result.ok:
            return None
        breach = await self.exceeded()
        if breach is not None:
            return breach
        task = self._last
        limits = self.limits(task)
        if (result.error_kind is ErrorKind.BUDGET and run.max_budget_usd is not None
                and limits.cost_usd is not None):  # fmt: skip
            return Usage("cost", float(task.spent_cost_usd), float(limits.cost_usd))
        if result.error_kind is ErrorKind.MAX_TURNS and run.turns_bound and limits.turns:
            return Usage("turns", float(task.spent_turns), float(limits.turns))
        return None

    async def warn(self, *, fresh: Task | None = None) -> None:
        """A budget_warning for each limit now at 80 % or more (not used up), once per task.
        `fresh`: the task's row as a write just returned it, instead of reading it again."""
        task = self._remember(fresh) if fresh is not None else await self.task()
        for usage in usages(task, self.limits(task)):
            if WARN_AT <= usage.ratio < 1:
                await self._warn(usage)

    @contextlib.asynccontextmanager
    async def metered(self) -> AsyncIterator[TimeLeft]:
        """Time an agent run or a round of checks: it counts as the task's wall time, also
        when it is stopped. Yields the watchdog's `time_left`; meanwhile, the wall-time
        warning goes out when 80 % is reached."""
        started = time.monotonic()
        looks = 0

        async def wall_left() -> float | None:
            nonlocal looks
            looks += 1
            return await self._wall_left(started, first=looks == 1)

        timer = asyncio.create_task(self._warn_wall_when_due(started))
        try:
            yield wall_left
        except BaseException:  # stopped (cancel, shutdown) or failed: the time still counts
            with contextlib.suppress(Exception):  # but must not hide why it stopped
                await asyncio.shield(self._settle(timer, time.monotonic() - started))
            raise
        await self._settle(timer, time.monotonic() - started)

    async def _settle(self, timer: asyncio.Task[None], elapsed: float) -> None:
        timer.cancel()
        await asyncio.wait({timer})
        self._remember(
            await TaskRepo(self._pool).add_spend(self._journal.task.id, wall_seconds=elapsed)
        )

    async def _wall_left(self, started: float, *, first: bool) -> float | None:
        try:
            reading = self._first_look() if first else self.task()
            task = await asyncio.wait_for(reading, READ_TIMEOUT)
        except Exception:  # the watchdog must not fail: it goes by the last limits it read
            log.warning("budget not read", exc_info=True,
                        extra={"task_key": self._journal.task.key})  # fmt: skip
            task = self._last
        limit = self.limits(task).wall_seconds
        if limit is None:
            return None
        return limit - task.spent_wall_seconds - (time.monotonic() - started)

    async def _warn_wall_when_due(self, started: float) -> None:
        try:
            task = await self._first_look()
            while True:
                limit = self.limits(task).wall_seconds
                if limit is None or "wall" in task.budget_warned:
                    return
                used = task.spent_wall_seconds + time.monotonic() - started
                if used < WARN_AT * limit:  # not yet; look again then (it may be raised)
                    await asyncio.sleep(WARN_AT * limit - used)
                    task = await self.task()
                    continue
                if used < limit:
                    await self._warn(Usage("wall", used, float(limit)))
                return
        except Exception:  # a warning missed is no reason to stop the work
            log.warning("budget warning failed", exc_info=True,
                        extra={"task_key": self._journal.task.key})  # fmt: skip

    async def _warn(self, usage: Usage) -> None:
        task_id = self._journal.task.id
        await self._journal.flush()  # the warning after the events before it
        async with self._pool.acquire() as conn, conn.transaction():
            if not await TaskRepo(conn).mark_budget_warned(task_id, usage.limit):
                return
            payload = {**usage.payload(), "percent": WARN_PERCENT}
            await TaskEventRepo(conn).add(task_id, EventKind.BUDGET_WARNING, payload)
        log.info("budget warning", extra={"task_key": self._journal.task.key,
                                          "limit": usage.limit})  # fmt: skip


async def block(journal: TaskJournal, usage: Usage, *, commits: int, branch: str | None) -> None:
    """budget_exceeded, then blocked, with the limit in the task_blocked payload (the bot
    offers Extend & resume for it). The caller has kept the work on the branch first."""
    await journal.event(EventKind.BUDGET_EXCEEDED, **usage.payload())
    await journal.move(TaskStatus.BLOCKED, reason=usage.reason, commits=commits, branch=branch,
                       budget_exceeded=usage.payload())  # fmt: skip


def _number(limit: LimitName, value: float, *, used: bool) -> float | int:
    if limit == "cost":
        return round(value, 4)
    if limit == "wall" and used:
        return round(value, 1)
    return int(value)


def _amount(limit: LimitName, value: float, *, used: bool = False) -> str:
    if limit == "cost":
        cents = value * 100
        return f"${value:.2f}" if abs(cents - round(cents)) < 1e-6 else f"${value:.4f}"
    if limit == "turns":
        return str(int(value))
    minutes, seconds = divmod(int(value), 60)
    if minutes == 0:
        return f"{seconds}s"
    return f"{minutes}m" if seconds == 0 and not used else f"{minutes}m {seconds:02d}s"
