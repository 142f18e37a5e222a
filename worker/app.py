"""PgQueuer wiring: one consumer that runs `run_task` jobs, with a concurrency limit, and
the plan gate's scheduled `plan_reminder` / `plan_expiry` jobs, limited on their own (they
are quick and never take a task slot, nor wait for one).

The consumer takes no new job while the worker is paused (plan reminders and expiries wait
too, and run once it resumes); cancel requests reach the jobs through the same
WorkerControl (worker/control.py).

A database restart stops nothing: the consumer's queries go through the pool and its LISTEN
connection is opened again (worker/queue_driver.py), a failed dequeue is tried again, and a
task whose job meets the outage goes back to the queue once the database is back, instead
of failing. A worker killed outright leaves its commands to the next one (worker/orphans.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pgqueuer import Queries, QueueManager
from pgqueuer.models import Job

from storage.db import create_pool
from storage.outage import is_outage
from worker import jobs, night, orphans, planning, schedules
from worker.agents.registry import backend_factory
from worker.control import WorkerControl
from worker.deps import WorkerDeps
from worker.embedder import EmbedderSettings, make_embedder
from worker.forges.base import RetryPolicy
from worker.heartbeat import RunningCount, beat_forever, worker_id
from worker.orphans import Ledger
from worker.payloads import (
    NightTickPayload,
    PlanExpiryPayload,
    PlanReminderPayload,
    RunTaskPayload,
)
from worker.queue_driver import QueueDriver
from worker.repo_map import RepoMapper
from worker.settings import AiderSettings, ClaudeSettings, CodexSettings, WorkerSettings
from worker.workspace import Workspace

log = logging.getLogger(__name__)

PLAN_JOBS_CONCURRENCY = 2  # per entrypoint, across all workers
OUTAGE_PAUSE_SECONDS = 1.0  # between dequeues while the database is away


@dataclasses.dataclass
class PausableQueueManager(QueueManager):
    """PgQueuer's consumer, taking no new job while the worker is paused.

    PgQueuer 1.x has no pause. Its run loop asks fetch_jobs() for work each time it wakes (a
    job's NOTIFY, or the dequeue timeout); here fetch_jobs() first waits, without polling,
    until the worker is resumed or stopping. Jobs already taken run on untouched. (Offering
    no entrypoints instead would not stop the loop: it sees queued work and polls every 0.1 s.)
    """

    control: WorkerControl = dataclasses.field(kw_only=True)

    async def fetch_jobs(
        self, batch_size: int, global_concurrency_limit: int | None, heartbeat_timeout: timedelta
    ) -> AsyncGenerator[Job, None]:
        await self.control.until_resumed(self.shutdown)
        jobs = super().fetch_jobs(batch_size, global_concurrency_limit, heartbeat_timeout)
        try:
            async with contextlib.aclosing(jobs):
                async for job in jobs:
                    yield job
                    if self.control.paused:
                        return
        except Exception as exc:  # PgQueuer's loop would end on it: wait, then dequeue again
            if not is_outage(exc):
                raise
            log.warning("dequeue failed: database unreachable", extra={"error": str(exc)})
            await _pause(self.shutdown, OUTAGE_PAUSE_SECONDS)

    async def _effective_dequeue_timeout(self, dequeue_timeout: timedelta) -> timedelta:
        """PgQueuer asks the database how long to wait for the next job; while it is away,
        a short pause (then fetch_jobs tries again)."""
        try:
            return await super()._effective_dequeue_timeout(dequeue_timeout)
        except Exception as exc:
            if not is_outage(exc):
                raise
            return timedelta(seconds=OUTAGE_PAUSE_SECONDS)


async def _pause(shutdown: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(shutdown.wait(), seconds)


def register(queue_manager: QueueManager, deps: WorkerDeps, *, running: RunningCount) -> None:
    @queue_manager.entrypoint(
        RunTaskPayload.ENTRYPOINT, concurrency_limit=deps.settings.concurrency, on_failure="hold"
    )
    async def run_task(job: Job) -> None:
        payload = RunTaskPayload.model_validate_json(job.payload or b"")
        log.info("job start", extra={"job_id": int(job.id), "task_id": payload.task_id})
        running.value += 1  # what this worker's heartbeat reports
        try:
            await jobs.run_task(payload.task_id, deps)
        except asyncio.CancelledError:
            await asyncio.shield(jobs.requeue_interrupted(payload.task_id, deps))
            raise
        except Exception as exc:
            if is_outage(exc):  # not the task's fault: it goes back to the queue
                log.warning("task interrupted: database unreachable",
                            extra={"task_id": payload.task_id, "error": str(exc)})  # fmt: skip
                await jobs.requeue_after_outage(payload.task_id, deps)
                return
            log.exception("task crashed", extra={"task_id": payload.task_id})
            await jobs.fail_crashed(payload.task_id, deps, f"{type(exc).__name__}: {exc}")
        finally:
            running.value -= 1

    @queue_manager.entrypoint(
        PlanReminderPayload.ENTRYPOINT, concurrency_limit=PLAN_JOBS_CONCURRENCY, on_failure="hold"
    )
    async def plan_reminder(job: Job) -> None:
        await planning.remind(PlanReminderPayload.model_validate_json(job.payload or b""), deps)

    @queue_manager.entrypoint(
        PlanExpiryPayload.ENTRYPOINT, concurrency_limit=PLAN_JOBS_CONCURRENCY, on_failure="hold"
    )
    async def plan_expiry(job: Job) -> None:
        await planning.expire(PlanExpiryPayload.model_validate_json(job.payload or b""), deps)

    @queue_manager.entrypoint(NightTickPayload.ENTRYPOINT, concurrency_limit=1, on_failure="hold")
    async def night_tick(job: Job) -> None:
        payload = NightTickPayload.model_validate_json(job.payload or b"")
        async with deps.pool.acquire() as conn:
            await night.tick(conn, payload, concurrency=deps.settings.concurrency,
                             now=datetime.now(UTC))  # fmt: skip


@contextlib.asynccontextmanager
async def create_worker(
    dsn: str, settings: WorkerSettings, claude: ClaudeSettings, home: Path, *,
    memory: EmbedderSettings | None = None, forge_env: Mapping[str, str] | None = None,
    codex: CodexSettings | None = None, aider: AiderSettings | None = None,
) -> AsyncIterator[QueueManager]:  # fmt: skip
    """Pool, the control listener, the heartbeat (this process's row in `workers`, deleted
    on the way out), the ledger of the commands it runs (after killing what dead workers
    left running; worker/orphans.py), the queue manager (queries on the pool, its own LISTEN
    connection), and next to it the housekeeping schedules (worker/schedules.py).

    `forge_env`: where forge tokens are read (default: this process's environment).
    `codex`, `aider`: those agent CLIs' settings (default: read from the environment here)."""
    memory = memory or EmbedderSettings()
    codex, aider = codex or CodexSettings(), aider or AiderSettings()
    # session_free: worker code and PgQueuer's queries leave no session state; LISTENs use
    # connections of their own (worker/control.py, worker/queue_driver.py).
    pool = await create_pool(
        dsn, min_size=1, max_size=max(4, settings.concurrency * 2), session_free=True
    )
    # PgQueuer's own queries (dequeue, probes, job status, heartbeats) on a pool of their
    # own, whose statements are planned once: its dequeue is re-planned at every call else.
    try:
        queue_pool = await create_pool(dsn, min_size=1, max_size=3, session_free=True,
                                       generic_plans=True)  # fmt: skip
    except BaseException:
        await pool.close()
        raise
    control = WorkerControl()
    listener = asyncio.create_task(control.listen(dsn, settings.recheck_seconds))
    running, stop_beating, this_worker = RunningCount(), asyncio.Event(), worker_id()
    heartbeat = asyncio.create_task(
        beat_forever(pool, this_worker, concurrency=settings.concurrency, running=running,
                     every=settings.heartbeat_seconds, stop=stop_beating)
    )  # fmt: skip
    try:
        orphans.sweep(home / "run")
        with orphans.keeping(Ledger(home / "run", this_worker)):
            deps = WorkerDeps(
                pool=pool,
                workspace=Workspace(home / "workspaces"),
                settings=settings,
                agent_homes=home / "agent-homes",
                backend_for=backend_factory(claude, codex=codex, aider=aider),
                control=control,
                repo_maps=RepoMapper(home / "repo-maps"),
                embedder=make_embedder(memory),
                memory=memory,
                forge_env=forge_env if forge_env is not None else dict(os.environ),
                forge_retry=RetryPolicy(
                    tries=settings.forge_tries, request_timeout=settings.forge_timeout_seconds
                ),
            )
            driver = QueueDriver(queue_pool, dsn)
            queue_manager = PausableQueueManager(Queries(driver), control=control)
            register(queue_manager, deps, running=running)
            async with schedules.running(deps, repo_maps=home / "repo-maps"):
                yield queue_manager
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        stop_beating.set()
        await heartbeat  # deletes this worker's row; never raises
        await queue_pool.close()
        await pool.close()


async def run_worker(
    dsn: str, settings: WorkerSettings, claude: ClaudeSettings, home: Path, stop: asyncio.Event,
    *, memory: EmbedderSettings | None = None, forge_env: Mapping[str, str] | None = None,
    codex: CodexSettings | None = None, aider: AiderSettings | None = None,
) -> None:  # fmt: skip
    """Take jobs until `stop` is set; then finish or interrupt (and requeue) running tasks."""
    async with create_worker(dsn, settings, claude, home, memory=memory, forge_env=forge_env,
                             codex=codex, aider=aider) as queue_manager:  # fmt: skip
        runner = asyncio.create_task(
            queue_manager.run(
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
        queue_manager.shutdown.set()
        finished, _ = await asyncio.wait({runner}, timeout=settings.shutdown_grace_seconds)
        if not finished:
            log.info("worker interrupting running tasks; they are requeued")
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        log.info("worker stopped")
