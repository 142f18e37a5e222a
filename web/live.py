"""Live updates: one LISTEN connection per web process, fanned out to every open page.

PostgreSQL announces each task event on channel `task_events` (a trigger, migration 0003)
and each worker switch on `worker_state`. The hub keeps one connection listening to both
and hands each notice to the subscribers whose filter takes it; an SSE response (web/views.py)
is one subscriber. A lost connection is reopened; pages then catch up from the database by
event id, so nothing is missed, only delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg

log = logging.getLogger(__name__)

CHANNELS = ("task_events", "worker_state")
QUEUE_SIZE = 1000  # a subscriber this far behind is dropped (its page reconnects)
RECONNECT_SECONDS = 1.0
APP_NAME = "devserver-web-live"  # in pg_stat_activity


@dataclass(frozen=True, slots=True)
class Notice:
    channel: str
    event_id: int | None = None  # task_events: the row's id
    task_id: int | None = None
    kind: str | None = None
    at: float = field(default_factory=time.monotonic)  # when it reached this process


class Subscription:
    def __init__(self, task_id: int | None) -> None:
        self.task_id = task_id  # None: every task
        self.queue: asyncio.Queue[Notice | None] = asyncio.Queue(QUEUE_SIZE)

    def wants(self, notice: Notice) -> bool:
        return self.task_id is None or notice.task_id in (None, self.task_id)

    async def next(self) -> Notice | None:
        """The next notice; None when the hub dropped this subscriber (too slow, closing)."""
        return await self.queue.get()


class EventHub:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._subscribers: set[Subscription] = set()
        self._runner: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()  # listening now (tests wait for it)
        self.connects = 0  # how many times it started listening

    async def start(self) -> None:
        self._runner = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # stopping anyway
                await self._runner
            self._runner = None
        for sub in list(self._subscribers):
            self._drop(sub)

    @contextlib.asynccontextmanager
    async def subscribe(self, task_id: int | None = None) -> AsyncIterator[Subscription]:
        sub = Subscription(task_id)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def publish(self, notice: Notice) -> None:
        for sub in list(self._subscribers):
            if not sub.wants(notice):
                continue
            try:
                sub.queue.put_nowait(notice)
            except asyncio.QueueFull:
                log.warning("live page too slow; dropped", extra={"task_id": sub.task_id})
                self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen_once()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("live listener lost; reconnecting", extra={"error": str(exc)})
            self.connected.clear()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self._dsn, server_settings={"application_name": APP_NAME})
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            for channel in CHANNELS:
                await conn.add_listener(channel, self._on_notify)
            self.connects += 1
            self.connected.set()
            if self.connects > 1:  # listening again: pages read what they missed meanwhile
                self.publish(Notice("reconnect"))
            await lost.wait()
        finally:
            conn.terminate()  # a listener has nothing to finish; close() could wait on a query

    def _on_notify(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        payload = str(payload)
        if channel != "task_events":
            self.publish(Notice(channel))
            return
        try:
            data = json.loads(payload)
            self.publish(Notice(channel, int(data["id"]), int(data["task_id"]), str(data["kind"])))
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable task_events notice", extra={"payload": payload[:200]})


class SharedRender:
    """The dashboard body rendered once for every open dashboard: a stream asks for a render
    made after the notice it got; one already made (or being made) since then is shared."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._html = ""
        self._started = float("-inf")

    async def since(self, moment: float, render: Callable[[], Awaitable[str]]) -> str:
        async with self._lock:
            if self._started < moment:
                started = time.monotonic()
                self._html = await render()
                self._started = started
            return self._html
