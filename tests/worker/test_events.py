"""The task journal writes events behind the work, in order: a move carries what still
waits, a refused move writes it all the same, and a failed write is raised where the job
next waits for its events (a flush or a move)."""

from __future__ import annotations

import json
from typing import TypeAlias

import asyncpg
import pytest

from storage.errors import InvalidTransition
from storage.notifications import NoticeKind
from storage.repos import NewRepo, RepoRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from worker.events import TaskJournal

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def _task(pool: Pool, *, chat_id: int | None = None) -> Task:
    repo = await RepoRepo(pool).add(NewRepo(name="web", source="/x", default_branch="main"))
    task = await TaskRepo(pool).create("WEB-1", NewTask(repo_id=repo.id, title="t",
                                                        chat_id=chat_id))  # fmt: skip
    for step in (TaskStatus.QUEUED, TaskStatus.PREPARING):
        task = await TaskRepo(pool).move(task.id, step)
    return task


async def _kinds(pool: Pool, task: Task) -> list[str]:
    return [e.kind.value for e in await TaskEventRepo(pool).for_task(task.id)]


async def test_events_and_moves_are_written_in_the_order_they_happened(pool: Pool) -> None:
    task = await _task(pool, chat_id=42)
    journal = TaskJournal(pool, task)
    await journal.event(EventKind.WORKSPACE_READY, branch="agent/WEB-1")
    await journal.event(EventKind.REPO_MAP_BUILT, ok=True)
    await journal.move(TaskStatus.RUNNING)  # carries whatever the writer has not taken
    await journal.event(EventKind.AGENT_STARTED, attempt=1)
    await journal.event(EventKind.AGENT_FINISHED, attempt=1, ok=True)
    await journal.move(TaskStatus.DELIVERING)
    await journal.event(EventKind.PATCHES_GENERATED, commits=1)
    await journal.move(TaskStatus.DONE, reason="1 commit")
    await journal.event(EventKind.MEMORY_WRITTEN, outcome="success")
    await journal.flush()
    assert await _kinds(pool, task) == [
        "workspace_ready", "repo_map_built", "status_changed", "agent_started",
        "agent_finished", "status_changed", "patches_generated", "status_changed", "task_done",
        "memory_written",
    ]  # fmt: skip
    events = await TaskEventRepo(pool).for_task(task.id)
    assert events[0].payload == {"branch": "agent/WEB-1"}
    ids = [e.id for e in events]
    assert ids == sorted(ids)
    # Their outbox rows came with them (the card follows every event of a chat's task).
    noticed = await pool.fetch(
        "SELECT payload FROM notifications WHERE task_id = $1 AND kind = $2", task.id,
        NoticeKind.CARD.value,
    )  # fmt: skip
    announced = {json.loads(row["payload"])["event_id"] for row in noticed}
    assert {e.id for e in events if e.kind is EventKind.PATCHES_GENERATED} <= announced


async def test_a_refused_move_still_writes_the_events_it_carried(pool: Pool) -> None:
    task = await _task(pool)
    journal = TaskJournal(pool, task)
    await journal.event(EventKind.REPO_MAP_BUILT, ok=True)
    await journal.event(EventKind.REALITY_SIGNAL, score=50)
    with pytest.raises(InvalidTransition):
        await journal.move(TaskStatus.DONE)  # preparing -> done is no edge
    await journal.flush()
    assert await _kinds(pool, task) == ["repo_map_built", "reality_signal"]


async def test_a_failed_write_is_raised_by_the_next_flush_or_move(pool: Pool) -> None:
    task = await _task(pool)
    journal = TaskJournal(pool, task)
    await journal.event(EventKind.REPO_MAP_BUILT, error=object())  # no JSON for it
    with pytest.raises(TypeError):
        await journal.flush()
    await journal.flush()  # raised once; nothing waits
    await journal.event(EventKind.REPO_MAP_BUILT, error=object())
    with pytest.raises(TypeError):  # from the writer, or from the move that carried it
        await journal.move(TaskStatus.RUNNING)
    assert await _kinds(pool, task) == []
