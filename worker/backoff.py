"""Rate limits and overloads of the model API: wait, don't burn an attempt.

An agent run that ends with `rate_limit` or `overloaded` is not the agent's failure. The
task goes back to the queue with a job that runs at the reset time the API gave, or after
an exponential back-off, and the chat is told when it resumes (`rate_limit_backoff`, with
`resume_at`). The run stays on record, but `attempts_made` does not count it, and the next
job goes on in the agent's session when there is one.

A task that keeps being refused is not kept forever: after `backoff_max_waits` waits in a
row it fails, saying so.

A repo with a fallback agent (worker/agent_choice.py) runs a refused attempt again at once
with it; only when the fallback is refused as well does the task wait here. Out of quota
(`quota`) is refused too, but waiting does not help: without a fallback it fails the task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from worker.agents.base import AgentResult, ErrorKind
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.payloads import RunTaskPayload
from worker.queue import JobQueue, Priority

log = logging.getLogger(__name__)

WAIT_KINDS = frozenset({ErrorKind.RATE_LIMIT, ErrorKind.OVERLOADED})
# The model API refused the run: no attempt used (storage/task_runs.py), a fallback may run.
REFUSED_KINDS = WAIT_KINDS | {ErrorKind.QUOTA}
# First wait and the longest one, in seconds, when the API names no reset time.
_BASE = {ErrorKind.RATE_LIMIT: 60.0, ErrorKind.OVERLOADED: 30.0}
_CAP = {ErrorKind.RATE_LIMIT: 1800.0, ErrorKind.OVERLOADED: 600.0}
_MIN_WAIT = 5.0  # a reset time in the past (clock skew) still waits a little


@dataclass(frozen=True, slots=True)
class Backoff:
    kind: ErrorKind
    resume_at: datetime
    wait: int  # the how-many-th wait in a row, 1 for the first
    message: str  # what the API said

    def seconds(self, now: datetime) -> float:
        return max(0.0, (self.resume_at - now).total_seconds())


def must_wait(result: AgentResult) -> bool:
    return not result.ok and result.error_kind in WAIT_KINDS


def backoff_for(result: AgentResult, waits_before: int, now: datetime | None = None) -> Backoff:
    """When to try again: the API's reset time if it gave one, else base * 2^waits, capped."""
    now = now or datetime.now(UTC)
    kind = result.error_kind or ErrorKind.RATE_LIMIT
    if kind not in WAIT_KINDS:
        kind = ErrorKind.RATE_LIMIT
    delay = min(_CAP[kind], _BASE[kind] * 2**waits_before)
    if result.retry_at is not None:
        delay = (result.retry_at - now).total_seconds()
    resume_at = now + timedelta(seconds=max(_MIN_WAIT, delay))
    return Backoff(kind, resume_at, waits_before + 1, result.error_message[:500])


async def waits_in_a_row(deps: WorkerDeps, task_id: int) -> int:
    """How many times in a row the task has waited for the API: its `rate_limit_backoff`
    events since its last agent run that the API did not refuse. (Counted in waits, not
    refused runs: with a fallback, one wait follows two refused runs.)"""
    waits = 0
    for event in reversed(await TaskEventRepo(deps.pool).for_task(task_id)):
        if event.kind is EventKind.RATE_LIMIT_BACKOFF:
            waits += 1
        elif event.kind is EventKind.AGENT_FINISHED and not _refused(event.payload):
            break
    return waits


def _refused(finished: dict[str, object]) -> bool:
    return finished.get("ok") is False and finished.get("error_kind") in REFUSED_KINDS


async def wait_or_give_up(
    journal: TaskJournal, deps: WorkerDeps, result: AgentResult, *, phase: str
) -> None:
    """The run was refused by the API: queue the task again for later, in one transaction
    with its `rate_limit_backoff` event, or fail it after too many waits in a row."""
    await journal.flush()  # the timeline read and written below has all of this job's events
    waits = await waits_in_a_row(deps, journal.task.id)
    kind = (result.error_kind or ErrorKind.RATE_LIMIT).value
    limit = deps.settings.backoff_max_waits
    if waits >= limit:
        await journal.move(TaskStatus.FAILED, reason=f"the model API refused {waits + 1} runs "
                           f"in a row ({kind}): {result.error_message[:300]}")  # fmt: skip
        return
    backoff = backoff_for(result, max(0, waits))
    task = journal.task
    now = datetime.now(UTC)
    reason = f"{kind}: waiting until {backoff.resume_at:%H:%M:%S} UTC"
    async with deps.pool.acquire() as conn, conn.transaction():
        moved = await record_move(conn, task, TaskStatus.QUEUED, reason=reason)
        job_id = await JobQueue(conn).enqueue(
            RunTaskPayload(task_id=task.id), priority=Priority.for_task(task.priority),
            delay=timedelta(seconds=backoff.seconds(now)),
        )  # fmt: skip
        await TaskEventRepo(conn).add(task.id, EventKind.RATE_LIMIT_BACKOFF, {
            "kind": kind, "phase": phase, "resume_at": backoff.resume_at.isoformat(),
            "seconds": round(backoff.seconds(now)), "wait": backoff.wait, "max_waits": limit,
            "job_id": job_id, "message": backoff.message,
        })  # fmt: skip
    journal.task = moved
    extra = {"task_key": task.key, "kind": kind, "resume_at": backoff.resume_at.isoformat()}
    log.info("task waits for the model API", extra=extra)
