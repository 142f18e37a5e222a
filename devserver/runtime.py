"""Process wiring: find the database, run worker / web / bot together, stop them cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from devserver.settings import Settings
from storage import migrate
from storage.db import ensure_database
from storage.embedded import start_embedded
from web.app import run_web
from worker.app import run_worker
from worker.processes import watch_children_by_pidfd

log = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    """DATABASE_URL when set; otherwise the embedded server under the DevServer home."""
    if settings.db.url is not None:
        return settings.db.url.get_secret_value()
    return start_embedded(settings.home)


async def open_database(settings: Settings) -> str:
    """The DSN of a database that exists and has every migration applied."""
    dsn = database_url(settings)
    await ensure_database(dsn)
    await migrate.apply_all(dsn)
    return dsn


Service = Callable[[str, Settings, asyncio.Event], Coroutine[Any, Any, None]]


async def _worker(dsn: str, s: Settings, stop: asyncio.Event) -> None:
    watch_children_by_pidfd()
    # What startup made (some 80,000 objects: modules, settings, codecs) lives as long as
    # the process: out of the collector's reach, a full collection pauses the loop for a
    # third of the time (45 ms -> 16 ms measured on bench/overhead.py's worker).
    gc.freeze()
    await run_worker(dsn, s.worker, s.claude, s.home, stop, memory=s.memory,
                     forge_env=s.environment, codex=s.codex, aider=s.aider)  # fmt: skip


async def _web(dsn: str, s: Settings, stop: asyncio.Event) -> None:
    await run_web(dsn, s.web, stop)


async def _bot(dsn: str, s: Settings, stop: asyncio.Event) -> None:
    from bot.app import run_bot  # noqa: PLC0415  # aiogram takes seconds to import; only here

    await run_bot(s.bot, dsn, stop)


SERVICES: dict[str, Service] = {"worker": _worker, "web": _web, "bot": _bot}


async def serve(settings: Settings, names: list[str]) -> None:
    """Run the named services until SIGINT/SIGTERM or until one of them fails."""
    dsn = await open_database(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: set[asyncio.Task[None]] = {
        asyncio.create_task(SERVICES[name](dsn, settings, stop), name=name) for name in names
    }
    log.info("devserver running", extra={"services": ",".join(names)})
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # one ended (an error, or the stop signal): stop the others too
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            raise errors[0]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("devserver stopped")
