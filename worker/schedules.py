"""Housekeeping on PgQueuer schedules (cron rows in `pgqueuer_schedules`), not timers:

    recover_tasks    every minute      tasks whose job died: requeued, or failed (recovery.py)
    outbox_upkeep    every 10 minutes  notifications given up in a Telegram outage are due
                                       again; sent ones older than the retention are deleted
    collect_garbage  hourly, at :17    leftover worktrees, old task branches, mirrors of
                                       removed repos, the disk budget (worker/gc.py)
    daily_report     daily, at WORKER_DAILY_REPORT_HOUR:00 UTC: the last 24 h, into the
                     outbox, once per chat and day (dedupe key report:<chat>:<date>)

Every worker runs a SchedulerManager next to its QueueManager (worker/app.py). PgQueuer
marks a schedule `picked` while one worker runs it (taken with FOR UPDATE SKIP LOCKED, kept
with a heartbeat every second), so each schedule runs once at a time across all workers; a
run that fell due while no worker was up happens as soon as one starts. They run while the
worker is paused too: none of them starts a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pgqueuer import AsyncpgPoolDriver, Queries, SchedulerManager
from pgqueuer.models import Schedule

from storage.notifications import NoticeKind, NotificationRepo
from storage.reports import ReportRepo, ReportTask, summarise
from worker import gc, recovery
from worker.deps import Pool, WorkerDeps
from worker.settings import WorkerSettings
from worker.workspace import Workspace

log = logging.getLogger(__name__)

RECOVER = "recover_tasks"
UPKEEP = "outbox_upkeep"
COLLECT = "collect_garbage"
REPORT = "daily_report"

RECOVERY_GRACE = timedelta(seconds=60)  # at least; two heartbeats when those are slower
WORKTREE_GRACE = timedelta(minutes=10)  # a task that ended sooner may still clean up itself
REVIVE_WITHIN = timedelta(days=2)  # notifications older than this are not tried again
RESTART_SECONDS = 5.0  # after the schedules' loop failed, before it starts again

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def expressions(settings: WorkerSettings) -> dict[str, str]:
    """Each schedule's cron expression (minute hour day month weekday, in UTC)."""
    found = {RECOVER: "* * * * *", UPKEEP: "*/10 * * * *", COLLECT: "17 * * * *"}
    if settings.daily_report_hour >= 0:
        found[REPORT] = f"0 {settings.daily_report_hour} * * *"
    return found


@dataclass(frozen=True, slots=True)
class Housekeeping:
    """The scheduled jobs themselves; tests call them directly, with their own clock."""

    pool: Pool
    workspace: Workspace
    repo_maps: Path  # RepoMapper's cache directory
    settings: WorkerSettings
    clock: Clock = utc_now

    async def recover_tasks(self) -> recovery.Recovery:
        heartbeat = self.settings.heartbeat_seconds
        grace = max(RECOVERY_GRACE, timedelta(seconds=2 * heartbeat))
        return await recovery.recover(self.pool, now=self.clock(), grace=grace,
                                      heartbeat_seconds=heartbeat)  # fmt: skip

    async def outbox_upkeep(self) -> tuple[list[int], int]:
        """(ids of notifications due again, how many old ones were deleted)."""
        now, rows = self.clock(), NotificationRepo(self.pool)
        revived = await rows.revive(now - REVIVE_WITHIN)
        retention = timedelta(days=self.settings.notification_retention_days)
        deleted = await rows.delete_settled(now - retention)
        if revived or deleted:
            log.info("outbox upkeep", extra={"revived": revived, "deleted": deleted})
        return revived, deleted

    async def collect_garbage(self) -> gc.Collected:
        limits = gc.Limits(
            budget_bytes=self.settings.disk_budget_mb * 1024 * 1024,
            branch_retention=timedelta(days=self.settings.branch_retention_days),
            grace=WORKTREE_GRACE,
        )
        result = await gc.collect(self.pool, self.workspace, self.repo_maps, now=self.clock(),
                                  limits=limits)  # fmt: skip
        log.info("disk clean-up", extra={
            "worktrees": result.worktrees, "branches": result.branches,
            "mirrors": result.mirrors, "repo_maps": len(result.repo_maps),
            "freed_bytes": result.freed_bytes, "over_budget_bytes": result.over_budget_bytes,
        })  # fmt: skip
        return result

    async def daily_report(self) -> list[int]:
        """Queue the report of the 24 h up to now for each chat that had tasks then (or for
        WORKER_REPORT_CHAT_ID, all tasks); the chats that got one (again: none)."""
        until = self.clock().astimezone(UTC)
        since = until - timedelta(days=1)
        tasks = await ReportRepo(self.pool).window(since, until)
        per_chat: dict[int, list[ReportTask]] = defaultdict(list)
        for task in tasks:
            chat_id = self.settings.report_chat_id or task.chat_id
            if chat_id is not None:
                per_chat[chat_id].append(task)
        queued = []
        rows = NotificationRepo(self.pool)
        for chat_id, chat_tasks in sorted(per_chat.items()):
            report = summarise(chat_tasks, since, until)
            key = f"report:{chat_id}:{until.date().isoformat()}"
            if await rows.add(chat_id, NoticeKind.REPORT, key, payload=report.to_payload()):
                queued.append(chat_id)
        log.info("daily report queued", extra={"chats": queued, "tasks": len(tasks)})
        return queued


def register(scheduler: SchedulerManager, housekeeping: Housekeeping) -> None:
    """Register the schedules. (A row of an hour the report no longer uses stays in
    pgqueuer_schedules, unused: clean_old would also drop a report missed while no worker
    was up, which now goes out as soon as one starts.)"""
    cron = expressions(housekeeping.settings)

    @scheduler.schedule(RECOVER, cron[RECOVER])
    async def recover_tasks(_: Schedule) -> None:
        await housekeeping.recover_tasks()

    @scheduler.schedule(UPKEEP, cron[UPKEEP])
    async def outbox_upkeep(_: Schedule) -> None:
        await housekeeping.outbox_upkeep()

    @scheduler.schedule(COLLECT, cron[COLLECT])
    async def collect_garbage(_: Schedule) -> None:
        await housekeeping.collect_garbage()

    if REPORT in cron:

        @scheduler.schedule(REPORT, cron[REPORT])
        async def daily_report(_: Schedule) -> None:
            await housekeeping.daily_report()


@contextlib.asynccontextmanager
async def running(deps: WorkerDeps, *, repo_maps: Path) -> AsyncIterator[SchedulerManager]:
    """The schedules, run by a SchedulerManager on the worker's pool while inside; on the
    way out a run in progress gets WORKER_SHUTDOWN_GRACE_SECONDS to finish."""
    scheduler = SchedulerManager(Queries(AsyncpgPoolDriver(deps.pool)))
    register(scheduler, Housekeeping(deps.pool, deps.workspace, repo_maps, deps.settings))
    runner = asyncio.create_task(_run(scheduler))
    try:
        yield scheduler
    finally:
        scheduler.shutdown.set()
        finished, _ = await asyncio.wait({runner}, timeout=deps.settings.shutdown_grace_seconds)
        if not finished:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def _run(scheduler: SchedulerManager) -> None:
    """Run the schedules until shutdown. PgQueuer's loop ends on the first failed query (a
    database restart, say): then it is started again, a little later."""
    while not scheduler.shutdown.is_set():
        try:
            await scheduler.run()
        except Exception:  # the worker goes on taking tasks meanwhile
            log.exception("housekeeping schedules stopped")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(scheduler.shutdown.wait(), RESTART_SECONDS)
