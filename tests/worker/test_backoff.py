"""Rate limits and overloads: the task waits in the queue and uses no attempt."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.notifications import NoticeKind
from storage.task_events import EventKind
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.claude_samples import SAMPLES, read_sample
from tests.worker.budgets import (
    budget_repo,
    claude_argv,
    claude_deps,
    submit_task_with,
    task_events,
)
from tests.worker.running import SETTINGS, Pool, fake_claude, wait_until
from worker import jobs
from worker.agents.base import AgentResult, ErrorKind
from worker.app import run_worker
from worker.backoff import backoff_for
from worker.settings import ClaudeSettings, WorkerSettings

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


async def test_the_worker_runs_the_waiting_task_again_at_the_reset_time(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    """Through the real consumer: the delayed PgQueuer job is not taken before the reset
    time the API named, and is taken after it."""
    reset = int(time.time()) + 3
    limited = tmp_path / "limited"
    limited.mkdir()
    stdout, stderr, exit_code = read_sample("error_429_rate_limit")
    event = json.loads(stdout)
    event["result"] = f"Claude AI usage limit reached|{reset}"
    (limited / "stdout").write_text(json.dumps(event) + "\n")
    (limited / "stderr").write_text(stderr)
    (limited / "exit_code").write_text(str(exit_code))
    samples = os.pathsep.join([str(limited), str(SAMPLES / "success_acceptEdits")])
    # The agent's environment keeps none of the worker's: the script is told in its wrapper.
    wrapper = tmp_path / "claude-limited"
    wrapper.write_text(
        f"#!/bin/sh\nexport FAKE_CLAUDE_SAMPLE={shlex.quote(samples)}\n"
        f"export FAKE_CLAUDE_CALLS={shlex.quote(str(tmp_path / 'claude-calls'))}\n"
        f'export FAKE_CLAUDE_WRITE=change\nexec {fake_claude(tmp_path)} "$@"\n'
    )
    wrapper.chmod(0o755)
    repo = await budget_repo(pool, upstream, backend="claude", max_attempts=1)
    task = await submit_task_with(pool, repo)
    claude = ClaudeSettings(executable=str(wrapper))
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(db_dsn, SETTINGS, claude, tmp_path / "home", stop))
    try:

        async def done() -> bool:
            return (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.DONE

        await wait_until(done, "the task done after its wait", within=30)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=20)
    calls = sorted((tmp_path / "claude-calls").glob("*.json"))
    assert len(calls) == 2
    second_started = calls[1].stat().st_mtime
    assert second_started >= reset - 0.5  # not before the reset the API named
    assert await TaskRunRepo(pool).attempts_made(task.id) == 1
