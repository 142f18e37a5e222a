"""The night cycle: while a night is on, keep the worker fed from the backlog until its end.

A night (storage/nights.py) is driven by a chain of `night_tick` jobs in PgQueuer, so it
lives in PostgreSQL and survives restarts of every process. Each tick, in one transaction:
lock the night; if it is over, stop it and queue the summary for its chat; else queue
tasks while fewer than the worker's concurrency are queued or running (pending tasks by
priority, then failed tasks worth one more try, each fed at most once a night), and enqueue
the next tick. A tick whose number is not the night's live one (a job run twice after a
crash) does nothing, so there is one chain, and nothing is fed twice or skipped.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from storage.db import Connection
from storage.nights import Fed, Night, NightRepo
from storage.notifications import NoticeKind, NotificationRepo
from storage.task_status import TaskStatus
from storage.tasks import Task
from worker.payloads import NightTickPayload
from worker.queue import JobQueue, Priority, queue_task

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0  # how often a night looks for room in the queue
Clock = Callable[[], datetime]


async def begin(conn: Connection, night: Night) -> None:
    """Enqueue a new night's first tick (call in the transaction that started it)."""
    await JobQueue(conn).enqueue(NightTickPayload(night_id=night.id, tick=night.tick),
                                 priority=Priority.CRITICAL)  # fmt: skip


async def tick(conn: Connection, payload: NightTickPayload, *, concurrency: int,
               now: datetime) -> None:  # fmt: skip
    """One tick of a night (see the module docstring); all or nothing."""
    async with conn.transaction():
        nights = NightRepo(conn)
        night = await nights.lock(payload.night_id)
        if night is None or night.stopped_at is not None or night.tick != payload.tick:
            log.info("stale night tick", extra={"night_id": payload.night_id})
            return
        if now >= night.ends_at:
            await finish(conn, night, now, f"ended at {night.ends_at:%H:%M} UTC")
            return
        fed = await _feed(conn, night, concurrency=concurrency, now=now)
        next_tick = await nights.advance(night.id, night.tick)
        delay = min(timedelta(seconds=TICK_SECONDS), night.ends_at - now)
        await JobQueue(conn).enqueue(NightTickPayload(night_id=night.id, tick=next_tick or 0),
                                     priority=Priority.CRITICAL, delay=delay)  # fmt: skip
    if fed:
        log.info("night fed the queue", extra={"night_id": night.id, "tasks": fed})


async def _feed(conn: Connection, night: Night, *, concurrency: int, now: datetime) -> list[str]:
    nights = NightRepo(conn)
    room = concurrency - await nights.busy()
    if room <= 0:
        return []
    picked: list[tuple[Task, str]] = [(t, "backlog") for t in await nights.backlog(night.id, room)]
    if len(picked) < room:
        retries = await nights.retries(night.id, now, room - len(picked))
        picked += [(t, "retry") for t in retries]
    for task, reason in picked:
        await queue_task(conn, task)
        await nights.feed(night.id, task.id, reason)
    return [task.key for task, _ in picked]


async def finish(conn: Connection, night: Night, now: datetime, reason: str) -> bool:
    """Stop the night and queue its summary for the chat that started it; False when it was
    stopped already. Call inside a transaction."""
    nights = NightRepo(conn)
    stopped = await nights.stop(night.id, now, reason)
    if stopped is None:
        return False
    if stopped.chat_id is not None:
        text = summary(stopped, await nights.fed(night.id))
        await NotificationRepo(conn).add(stopped.chat_id, NoticeKind.MESSAGE,
                                         f"night:{night.id}", thread_id=stopped.thread_id,
                                         payload={"html": text})  # fmt: skip
    log.info("night over", extra={"night_id": night.id, "reason": reason})
    return True


def summary(night: Night, fed: list[Fed]) -> str:
    """The morning summary: done, failed, blocked, still going, cost; one line per task."""
    by: dict[str, list[Fed]] = {}
    for item in fed:
        by.setdefault(item.task.status.value, []).append(item)
    cost = sum((item.cost for item in fed), Decimal(0))
    counts = " · ".join(f"{status.replace('_', ' ')} {len(items)}"
                        for status, items in sorted(by.items()))  # fmt: skip
    end = night.stopped_at or night.ends_at
    span = f"{night.started_at:%H:%M} to {end:%H:%M} UTC"
    lines = [f"🌅 <b>Night summary</b> ({span}, {html.escape(night.stop_reason or '')})",
             f"{len(fed)} task(s) run: {counts or 'none'} · cost ${cost:.2f}"]  # fmt: skip
    for item in sorted(fed, key=_order):
        retry = " (retried)" if item.reason == "retry" else ""
        title = html.escape(item.task.title[:80])
        lines.append(f"• <b>{html.escape(item.task.key)}</b> {title} — "
                     f"{item.task.status.value}{retry}")  # fmt: skip
    if fed:
        lines.append("Open one with /task KEY.")
    return "\n".join(lines)


_ORDER = (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.BLOCKED)


def _order(item: Fed) -> tuple[int, int]:
    status = item.task.status
    return (_ORDER.index(status) if status in _ORDER else len(_ORDER), item.task.id)
