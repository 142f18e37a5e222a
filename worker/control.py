"""What the bot asks of a running worker: cancel a task it runs, pause taking new jobs.

One LISTEN connection per worker process (channels `task_cancel` and `worker_state`) fans the
requests out to the jobs of this process. The database is also read again every few seconds,
so a dropped connection or a missed NOTIFY delays a request but never loses it; a connection
that dies is opened again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import asyncpg

from storage.db import Executor
from storage.tasks import CANCEL_CHANNEL, TaskRepo
from storage.worker_state import CHANNEL as STATE_CHANNEL
from storage.worker_state import WorkerStateRepo

log = logging.getLogger(__name__)

APPLICATION_NAME = "devserver-worker-control"  # how the connection shows in pg_stat_activity
CHECK_TIMEOUT_SECONDS = 10.0  # a re-check that takes longer means a dead connection


class WorkerControl:
    """Cancel events of the tasks this process runs, and the paused switch.

    Until the first read of the database the worker counts as paused: it takes no job
    before it knows whether it may.
    """

    def __init__(self) -> None:
        self._cancels: dict[int, asyncio.Event] = {}
        self._resumed = asyncio.Event()
        self._paused: bool | None = None  # None: not read yet

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    @contextlib.contextmanager
    def watch(self, task_id: int) -> Iterator[asyncio.Event]:
        """An event set once a cancel of `task_id` is requested, for as long as the job runs."""
        event = asyncio.Event()
        self._cancels[task_id] = event
        try:
            yield event
        finally:
            if self._cancels.get(task_id) is event:
                del self._cancels[task_id]

    async def until_resumed(self, shutdown: asyncio.Event) -> None:
        """Return at once when not paused; else when resumed or shutting down."""
        if self._resumed.is_set():
            return
        waiters = {
            asyncio.ensure_future(self._resumed.wait()),
            asyncio.ensure_future(shutdown.wait()),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def listen(self, dsn: str, recheck_seconds: float) -> None:
        """LISTEN and re-check until cancelled; open the connection again whenever it dies."""
        while True:
            try:
                await self._listen_once(dsn, recheck_seconds)
                log.warning("control connection closed, reconnecting")
            except Exception:  # a lost connection, a server restart: try again shortly
                log.warning("control connection lost, reconnecting", exc_info=True)
            await asyncio.sleep(recheck_seconds)

    async def _check(self, db: Executor) -> None:
        """Read the paused switch and the cancel requests of the tasks running here."""
        self._set_paused(await WorkerStateRepo(db).paused())
        for task_id in list(self._cancels):
            task = await TaskRepo(db).by_id(task_id)
            if task.cancel_requested_at is not None:
                self._cancel(task_id)

    async def _listen_once(self, dsn: str, recheck_seconds: float) -> None:
        wake = asyncio.Event()

        def on_notify(_conn: object, _pid: int, channel: str, payload: object) -> None:
            if channel == CANCEL_CHANNEL and str(payload).isdigit():
                self._cancel(int(str(payload)))
            else:
                wake.set()  # the switch changed: read it now

        conn = await asyncpg.connect(dsn, server_settings={"application_name": APPLICATION_NAME})
        try:
            await conn.add_listener(CANCEL_CHANNEL, on_notify)
            await conn.add_listener(STATE_CHANNEL, on_notify)
            while not conn.is_closed():
                wake.clear()
                async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                    await self._check(conn)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), recheck_seconds)
        finally:
            await conn.close()

    def _cancel(self, task_id: int) -> None:
        event = self._cancels.get(task_id)
        if event is not None and not event.is_set():
            log.info("cancel requested", extra={"task_id": task_id})
            event.set()

    def _set_paused(self, paused: bool) -> None:
        if paused == self._paused:
            return
        if paused:
            self._resumed.clear()
            log.info("worker paused")
        else:
            self._resumed.set()
            if self._paused is not None:
                log.info("worker resumed")
        self._paused = paused
