"""Rate limits and overloads: the task waits in the queue and uses no attempt."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.notifications import NoticeKind
from storage.task_events import EventKind
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.worker.budgets import (
    budget_repo,
    claude_argv,
    claude_deps,
    submit_task_with,
    task_events,
)
from tests.worker.running import Pool
from worker import jobs
from worker.agents.base import AgentResult, ErrorKind
from worker.backoff import backoff_for
from worker.settings import WorkerSettings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def refused(kind: ErrorKind, retry_at: datetime | None = None) -> AgentResult:
    return AgentResult(ok=False, text="", exit_code=1, duration_seconds=0.5, error_kind=kind,
                       error_message="API Error: 429", retry_at=retry_at)  # fmt: skip


def test_backoff_doubles_from_its_base_up_to_a_cap() -> None:
    waits = [backoff_for(refused(ErrorKind.RATE_LIMIT), n, NOW) for n in range(8)]
    seconds = [w.seconds(NOW) for w in waits]
    assert seconds[:4] == [60, 120, 240, 480]
    assert seconds[-1] == 1800  # capped at 30 min
    assert [w.wait for w in waits[:3]] == [1, 2, 3]
    assert backoff_for(refused(ErrorKind.OVERLOADED), 0, NOW).seconds(NOW) == 30


def test_backoff_takes_the_reset_time_the_api_gave() -> None:
    reset = NOW + timedelta(minutes=17)
    assert backoff_for(refused(ErrorKind.RATE_LIMIT, reset), 3, NOW).resume_at == reset
    past = backoff_for(refused(ErrorKind.RATE_LIMIT, NOW - timedelta(hours=1)), 0, NOW)
    assert past.seconds(NOW) == 5  # a reset in the past (clock skew) still waits a little


async def _job_execute_after(pool: Pool, job_id: int) -> datetime:
    value: datetime = await pool.fetchval("SELECT execute_after FROM pgqueuer WHERE id = $1",
                                          job_id)  # fmt: skip
    return value


async def test_a_rate_limited_run_requeues_the_task_without_using_an_attempt(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    deps = claude_deps(pool, tmp_path, "error_429_rate_limit", "success_acceptEdits")
    repo = await budget_repo(pool, upstream, backend="claude", max_attempts=1)
    task = await submit_task_with(pool, repo, chat_id=42)
    before = datetime.now(UTC)

    await jobs.run_task(task.id, deps)

    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.QUEUED
    assert "rate_limit" in waiting.status_reason
    assert await TaskRunRepo(pool).attempts_made(task.id) == 0  # the refused run is no attempt
    [backoff] = await task_events(pool, task, EventKind.RATE_LIMIT_BACKOFF)
    p = backoff.payload
    assert (p["kind"], p["phase"], p["wait"], p["seconds"]) == ("rate_limit", "attempt", 1, 60)
    resume_at = datetime.fromisoformat(p["resume_at"])
    assert before + timedelta(seconds=59) < resume_at < datetime.now(UTC) + timedelta(seconds=61)
    # The job waits in PgQueuer until then, and the chat is told (a loud alert).
    assert abs((await _job_execute_after(pool, p["job_id"]) - resume_at).total_seconds()) < 1
    kinds = await pool.fetch("SELECT kind FROM notifications WHERE payload->>'event_id' = $1",
                             str(backoff.id))  # fmt: skip
    assert {r["kind"] for r in kinds} == {NoticeKind.CARD, NoticeKind.ALERT}

    await jobs.run_task(task.id, deps)  # the delayed job, run when its time comes

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    runs = [r for r in await TaskRunRepo(pool).for_task(task.id) if r.phase == "attempt"]
    assert [(r.attempt, r.error_class) for r in runs] == [(1, "rate_limit"), (1, None)]
    assert await TaskRunRepo(pool).attempts_made(task.id) == 1  # max_attempts=1 was enough
    # The refused run's session holds nothing: the task is given again, saying why.
    second = claude_argv(tmp_path)[1]
    assert "--resume" not in second
    prompt = second[second.index("-p") + 1]
    assert "interrupted: the model API refused the run (rate_limit)" in prompt
    assert "# Say hello" in prompt


async def test_a_task_refused_too_often_in_a_row_fails_saying_so(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    base = claude_deps(pool, tmp_path, "error_529_overloaded")
    deps = dataclasses.replace(base, settings=WorkerSettings(agent_timeout_seconds=20,
                                                             backoff_max_waits=1))  # fmt: skip
    repo = await budget_repo(pool, upstream, backend="claude")
    task = await submit_task_with(pool, repo)

    await jobs.run_task(task.id, deps)
    first = await TaskRepo(pool).by_id(task.id)
    assert first.status is TaskStatus.QUEUED
    [backoff] = await task_events(pool, task, EventKind.RATE_LIMIT_BACKOFF)
    assert (backoff.payload["kind"], backoff.payload["seconds"]) == ("overloaded", 30)

    await jobs.run_task(task.id, deps)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "refused 2 runs in a row (overloaded)" in failed.status_reason
    assert await TaskRunRepo(pool).attempts_made(task.id) == 0


@pytest.mark.parametrize("mode", ["interactive"])
async def test_a_plan_run_refused_by_the_api_plans_again_later(
    pool: Pool, upstream: Path, tmp_path: Path, mode: str
) -> None:
    deps = claude_deps(pool, tmp_path, "error_429_rate_limit")
    repo = await budget_repo(pool, upstream, backend="claude")
    task = await submit_task_with(pool, repo, mode=mode)

    await jobs.run_task(task.id, deps)

    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.QUEUED
    assert waiting.plan_round == 0  # no plan was shown
    [backoff] = await task_events(pool, task, EventKind.RATE_LIMIT_BACKOFF)
    assert backoff.payload["phase"] == "plan"
