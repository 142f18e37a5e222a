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

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from storage.db import Connection
from storage.nights import Night, NightRepo
from storage.notifications import NoticeKind, NotificationRepo
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
    if stopped.chat_id is not None:  # the bot renders it when it sends it (bot/night_texts.py)
        await NotificationRepo(conn).add(stopped.chat_id, NoticeKind.NIGHT,
                                         f"night:{night.id}", thread_id=stopped.thread_id,
                                         payload={"night_id": night.id})  # fmt: skip
    log.info("night over", extra={"night_id": night.id, "reason": reason})
    return True
