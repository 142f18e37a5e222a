"""PgQueuer's database driver for the worker's consumer, made to outlive a database restart.

PgQueuer's own AsyncpgDriver runs everything on one connection, and its AsyncpgPoolDriver
keeps the LISTEN connection it took first: after PostgreSQL restarts, either is dead for
good. Here queries go through the worker's pool, which opens new connections as needed,
and the LISTEN connection is opened again (with every channel listened to before) whenever
it is lost. NOTIFYs sent while it was away are gone, but nothing waits on them alone: the
consumer also looks for due jobs every few seconds (the dequeue timeout in worker/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Self

import asyncpg
from pgqueuer.core.tm import TaskManager
from pgqueuer.ports.driver import NotifyCallback

from storage.outage import is_outage
from worker.deps import Pool

log = logging.getLogger(__name__)

APPLICATION_NAME = "devserver-worker-queue"  # how the LISTEN connection shows in pg_stat_activity
RECONNECT_SECONDS = 1.0


class QueueDriver:
    """Satisfies pgqueuer.ports.driver.Driver: pooled queries, a LISTEN that reconnects."""

    def __init__(self, pool: Pool, dsn: str) -> None:
        self._pool = pool
        self._dsn = dsn
        self._shutdown = asyncio.Event()
        self._callbacks: list[tuple[str, NotifyCallback]] = []
        self._listener: asyncpg.Connection[asyncpg.Record] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.connects = 0  # how many times the LISTEN connection was opened

    async def fetch(self, query: str, *args: object) -> list[dict[str, object]]:
        return [dict(row) for row in await self._pool.fetch(query, *args)]

    async def execute(self, query: str, *args: object) -> str:
        return await self._pool.execute(query, *args)

    async def notify(self, channel: str, payload: str) -> None:
        await self._pool.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def add_listener(self, channel: str, callback: NotifyCallback) -> None:
        """Listen now (the first time: open the connection, and keep it open from then on)."""
        async with self._lock:
            self._callbacks.append((channel, callback))
            if self._listener is None or self._listener.is_closed():
                await self._connect()
            else:
                await self._listener.add_listener(channel, self._relay(callback))
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_listening(), name="queue-listener")

    async def remove_listener(self, channel: str, callback: NotifyCallback) -> None:
        async with self._lock:
            self._callbacks = [(c, f) for c, f in self._callbacks if (c, f) != (channel, callback)]
            if self._listener is not None and not self._listener.is_closed():
                with contextlib.suppress(Exception):  # a dying connection listens no more
                    await self._listener.remove_listener(channel, self._relay(callback))

    @property
    def shutdown(self) -> asyncio.Event:
        return self._shutdown

    @property
    def tm(self) -> TaskManager:
        return TaskManager()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        async with self._lock:
            if self._listener is not None:
                self._listener.terminate()  # a listener has nothing to finish
                self._listener = None
            self._callbacks.clear()

    async def _connect(self) -> None:
        """Open the LISTEN connection and listen on every channel asked for; under the lock."""
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            for channel, callback in self._callbacks:
                await conn.add_listener(channel, self._relay(callback))
        except BaseException:
            conn.terminate()
            raise
        self._listener = conn
        self.connects += 1

    async def _keep_listening(self) -> None:
        """Open the connection again whenever it is lost, until the driver is closed."""
        while True:
            async with self._lock:
                listener = self._listener
            if listener is not None:
                await _until_lost(listener)
            log.warning("queue listener lost; reconnecting")
            await self._reconnect()

    async def _reconnect(self) -> None:
        while True:
            await asyncio.sleep(RECONNECT_SECONDS)
            try:
                async with self._lock:
                    if self._listener is not None:
                        self._listener.terminate()
                    self._listener = None
                    await self._connect()
            except Exception as exc:
                if not is_outage(exc):  # refused for another reason: say so, and try again
                    log.warning("queue listener not reconnected", extra={"error": str(exc)})
                continue
            log.info("queue listener reconnected")
            return

    @staticmethod
    def _relay(callback: NotifyCallback) -> Callable[[object, object, object, object], None]:
        return _Relay(callback)


async def _until_lost(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    lost = asyncio.Event()

    def on_lost(_conn: object) -> None:
        lost.set()

    conn.add_termination_listener(on_lost)
    try:
        if not conn.is_closed():
            await lost.wait()
    finally:
        conn.remove_termination_listener(on_lost)


class _Relay:
    """asyncpg listener passing the payload on; equal for equal callbacks, so that
    remove_listener finds the one add_listener added."""

    def __init__(self, callback: NotifyCallback) -> None:
        self.callback = callback

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Relay) and other.callback == self.callback

    def __hash__(self) -> int:
        return hash(self.callback)

    def __call__(self, connection: object, pid: object, channel: object, payload: object) -> None:
        if isinstance(payload, (str, bytes, bytearray)):
            self.callback(payload)
