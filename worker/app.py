"""PgQueuer wiring: one consumer that runs `run_task` jobs, with a concurrency limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.models import Job

from storage.db import create_pool
from worker import jobs
from worker.agents.registry import backend_factory
from worker.deps import WorkerDeps
from worker.payloads import RunTaskPayload
from worker.settings import ClaudeSettings, WorkerSettings
from worker.workspace import Workspace

log = logging.getLogger(__name__)


def register(pgq: PgQueuer, deps: WorkerDeps) -> None:
    @pgq.entrypoint(
        RunTaskPayload.ENTRYPOINT, concurrency_limit=deps.settings.concurrency, on_failure="hold"
    )
    async def run_task(job: Job) -> None:
        payload = RunTaskPayload.model_validate_json(job.payload or b"")
        log.info("job start", extra={"job_id": int(job.id), "task_id": payload.task_id})
        try:
            await jobs.run_task(payload.task_id, deps)
        except asyncio.CancelledError:
            await asyncio.shield(jobs.requeue_interrupted(payload.task_id, deps))
            raise
        except Exception as exc:
            log.exception("task crashed", extra={"task_id": payload.task_id})
            await jobs.fail_crashed(payload.task_id, deps, f"{type(exc).__name__}: {exc}")


@contextlib.asynccontextmanager
async def create_worker(
    dsn: str, settings: WorkerSettings, claude: ClaudeSettings, home: Path
) -> AsyncIterator[PgQueuer]:
    """Pool, PgQueuer (on its own LISTEN connection) and the registered entrypoint."""
    pool = await create_pool(dsn, min_size=1, max_size=max(4, settings.concurrency * 2))
    try:
        conn = await asyncpg.connect(dsn)
        try:
            deps = WorkerDeps(
                pool=pool,
                workspace=Workspace(home / "workspaces"),
                settings=settings,
                agent_homes=home / "agent-homes",
                backend_for=backend_factory(claude),
            )
            pgq = PgQueuer.from_asyncpg_connection(conn)
            register(pgq, deps)
            yield pgq
        finally:
            await conn.close()
    finally:
        await pool.close()


async def run_worker(
    dsn: str, settings: WorkerSettings, claude: ClaudeSettings, home: Path, stop: asyncio.Event
) -> None:
    """Take jobs until `stop` is set; then finish or interrupt (and requeue) running tasks."""
    async with create_worker(dsn, settings, claude, home) as pgq:
        runner = asyncio.create_task(
            pgq.run(
                dequeue_timeout=timedelta(seconds=5),
                batch_size=1,
                heartbeat_timeout=timedelta(seconds=settings.heartbeat_seconds),
            )
        )
        stopper = asyncio.create_task(stop.wait())
        log.info("worker started", extra={"concurrency": settings.concurrency})
        await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if runner.done():
            runner.result()  # the consumer died on its own: raise its error
            return
        pgq.shutdown.set()
        finished, _ = await asyncio.wait({runner}, timeout=settings.shutdown_grace_seconds)
        if not finished:
            log.info("worker interrupting running tasks; they are requeued")
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        log.info("worker stopped")
