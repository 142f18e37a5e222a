"""The outbox is written with the events it announces, once per event and notice kind."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeAlias

import asyncpg

from storage.notifications import NoticeKind, NotificationRepo
from storage.repos import NewRepo, RepoRepo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def _task(pool: Pool, *, chat_id: int | None, thread_id: int | None = None) -> Task:
    repos = RepoRepo(pool)
    name = f"r{chat_id}{thread_id}".replace("-", "m")
    repo = await repos.add(NewRepo(name=name, source="/tmp/x", default_branch="main"))
    key = await repos.next_task_key(repo.id)
    new = NewTask(repo_id=repo.id, title="t", chat_id=chat_id, thread_id=thread_id)
    return await TaskRepo(pool).create(key, new)


async def test_events_of_a_chat_task_queue_notices_in_the_same_insert(pool: Pool) -> None:
    task = await _task(pool, chat_id=77, thread_id=5)
    events = TaskEventRepo(pool)
    await events.add(task.id, EventKind.AGENT_STARTED, {"attempt": 1})
    await events.add(task.id, EventKind.MEMORY_RECALL, {})  # page only: no notice
    done = await events.add(task.id, EventKind.TASK_DONE, {"commits": 1})
    rows = await pool.fetch("SELECT * FROM notifications ORDER BY id")
    assert [(r["kind"], r["chat_id"], r["thread_id"]) for r in rows] == [
        ("card", 77, 5), ("card", 77, 5), ("alert", 77, 5), ("mbox", 77, 5)
    ]  # fmt: skip
    assert rows[-1]["dedupe_key"] == f"mbox:{done.id}"


async def test_tasks_without_a_chat_notify_nobody(pool: Pool) -> None:
    task = await _task(pool, chat_id=None)
    await TaskEventRepo(pool).add(task.id, EventKind.TASK_FAILED, {"reason": "x"})
    assert await NotificationRepo(pool).pending_count() == 0


async def test_a_failed_transaction_leaves_neither_event_nor_notice(pool: Pool) -> None:
    task = await _task(pool, chat_id=1)
    async with pool.acquire() as conn:
        try:
            async with conn.transaction():
                await record_move(conn, task, TaskStatus.QUEUED)
                raise RuntimeError("rollback")
        except RuntimeError:
            pass
    assert await TaskEventRepo(pool).for_task(task.id) == []
    assert await NotificationRepo(pool).pending_count() == 0


async def test_heads_are_each_chats_oldest_and_dedupe_holds(pool: Pool) -> None:
    rows = NotificationRepo(pool)
    first = await rows.add(1, NoticeKind.ALERT, "a")
    await rows.add(1, NoticeKind.ALERT, "b")
    other = await rows.add(-2, NoticeKind.ALERT, "c")
    assert await rows.add(1, NoticeKind.ALERT, "a") is None  # same dedupe key: nothing new
    assert first is not None
    assert other is not None
    assert {h.id for h in await rows.heads()} == {first.id, other.id}
    await rows.defer(first, timedelta(seconds=30), "429")
    heads = {h.chat_id: h for h in await rows.heads()}
    assert heads[1].id == first.id  # a deferred head still holds its chat's later rows back
    assert heads[1].attempts == 1
    assert heads[1].last_error == "429"
    await rows.mark_sent(heads[1])
    await rows.give_up(other, "Forbidden")
    assert [h.dedupe_key for h in await rows.heads()] == ["b"]


async def test_one_card_edit_settles_the_cards_written_before_it(pool: Pool) -> None:
    task = await _task(pool, chat_id=9)
    events = TaskEventRepo(pool)
    for attempt in (1, 2, 3):
        await events.add(task.id, EventKind.AGENT_STARTED, {"attempt": attempt})
    rows = NotificationRepo(pool)
    upto = await rows.last_card_id(task.id)
    await events.add(task.id, EventKind.AGENT_STARTED, {"attempt": 4})  # after we looked
    await rows.settle_cards(task.id, upto)
    assert await rows.pending_count() == 1
