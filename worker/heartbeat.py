"""Worker heartbeats: each worker process keeps its row in `workers` fresh while it runs.

The status page and /healthz read those rows (storage/workers.py) to tell whether a worker
is alive and how busy it is. A clean shutdown deletes the row; a crashed worker's row stops
being refreshed, goes stale, and is pruned later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable

from storage.db import Executor
from storage.workers import WorkerRepo

log = logging.getLogger(__name__)

BEAT_TIMEOUT_SECONDS = 10.0  # a beat (or the last delete) hanging longer than this is given up
STALE_SECONDS = 86400.0  # rows of workers gone this long (crashed, host lost) are deleted


def worker_id() -> str:
    """A new id for this process's row: "<hostname>:<pid>:<6 random hex digits>"."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class RunningCount:
    """How many run_task jobs this process runs now (worker/app.py counts them); calling it
    reads the count, which is what the heartbeat reports."""

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


async def beat_forever(
    pool: Executor, worker_id: str, *, concurrency: int, running: Callable[[], int],
    every: float, stop: asyncio.Event,
) -> None:  # fmt: skip
    """Beat now, then every `every` seconds until `stop` is set; then delete the row.

    A failed beat is logged and tried again next round, never raised: losing the database
    for a while must not stop the worker. The delete is best effort: a row left behind
    goes stale, and WorkerRepo.prune() removes it later.
    """
    workers = WorkerRepo(pool)
    hostname, pid = socket.gethostname(), os.getpid()
    context = {"worker_id": worker_id}
    with contextlib.suppress(Exception):  # tidy only; the beats below report trouble
        async with asyncio.timeout(BEAT_TIMEOUT_SECONDS):
            await workers.prune(STALE_SECONDS)
    while not stop.is_set():
        try:
            async with asyncio.timeout(BEAT_TIMEOUT_SECONDS):
                await workers.beat(worker_id, hostname=hostname, pid=pid,
                                   concurrency=concurrency, running=running())  # fmt: skip
        except Exception:  # the database is away or refused the write: try again next round
            log.warning("worker heartbeat failed", extra=context, exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    try:
        async with asyncio.timeout(BEAT_TIMEOUT_SECONDS):
            await workers.gone(worker_id)
    except Exception:
        log.warning("worker row not deleted; it goes stale", extra=context, exc_info=True)
    else:
        log.info("worker heartbeat stopped", extra=context)
