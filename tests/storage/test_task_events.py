from __future__ import annotations

import asyncio
import json
from typing import TypeAlias

import asyncpg
import pytest

from storage.errors import InvalidTransition
from storage.repos import NewRepo, RepoRepo
from storage.task_events import CHANNEL, EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import NewTask, TaskRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def test_every_event_is_stored_in_order_and_notified(pool: Pool, db_dsn: str) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="web", source="/x", default_branch="main"))
    task = await TaskRepo(pool).create("WEB-1", NewTask(repo_id=repo.id, title="t"))
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(db_dsn)
    try:
        await listener.add_listener(CHANNEL, lambda *args: received.put_nowait(args[3]))
        events = TaskEventRepo(pool)
        first = await events.add(task.id, EventKind.AGENT_STARTED, {"attempt": 1})
        second = await events.add(task.id, EventKind.VERIFY_FAILED, {"step": "test", "tail": "é"})
        notes = [json.loads(await asyncio.wait_for(received.get(), 5)) for _ in range(2)]
    finally:
        await listener.close()
    assert notes == [
        {"id": first.id, "task_id": task.id, "kind": "agent_started"},
        {"id": second.id, "task_id": task.id, "kind": "verify_failed"},
    ]
    stored = await TaskEventRepo(pool).for_task(task.id)
    assert [(e.kind, e.payload) for e in stored] == [
        (EventKind.AGENT_STARTED, {"attempt": 1}),
        (EventKind.VERIFY_FAILED, {"step": "test", "tail": "é"}),
    ]


async def test_a_move_writes_its_events_in_order_with_their_notices_or_nothing(
    pool: Pool,
) -> None:
    """record_move is one statement: the row, its events in order, the chat's outbox rows;
    a move the guard refuses writes none of them."""
    repo = await RepoRepo(pool).add(NewRepo(name="web", source="/x", default_branch="main"))
    tasks = TaskRepo(pool)
    task = await tasks.create("WEB-1", NewTask(repo_id=repo.id, title="t", chat_id=42))
    for step in (TaskStatus.QUEUED, TaskStatus.PREPARING, TaskStatus.RUNNING,
                 TaskStatus.DELIVERING):  # fmt: skip
        task = await record_move(pool, task, step)
    before = await TaskEventRepo(pool).for_task(task.id)

    done = await record_move(pool, task, TaskStatus.DONE, reason="1 commit", commits=1)

    assert done.status is TaskStatus.DONE
    assert done.finished_at is not None
    new = await TaskEventRepo(pool).for_task(task.id, after=before[-1].id)
    assert [(e.kind, e.payload) for e in new] == [
        (EventKind.STATUS_CHANGED, {"from": "delivering", "to": "done", "reason": "1 commit"}),
        (EventKind.TASK_DONE, {"reason": "1 commit", "commits": 1}),
    ]
    outbox = await pool.fetch(
        "SELECT chat_id, kind, payload, dedupe_key FROM notifications WHERE payload->>'event_id' "
        "= ANY($1::text[]) ORDER BY id", [str(e.id) for e in new],
    )  # fmt: skip
    assert [(r["chat_id"], r["kind"], r["dedupe_key"]) for r in outbox] == [
        (42, "card", f"card:{new[0].id}"),
        (42, "card", f"card:{new[1].id}"),
        (42, "alert", f"alert:{new[1].id}"),
        (42, "mbox", f"mbox:{new[1].id}"),
    ]
    assert json.loads(outbox[3]["payload"]) == {"event_id": new[1].id, "event": "task_done"}

    with pytest.raises(InvalidTransition, match="done"):
        await record_move(pool, done, TaskStatus.RUNNING)
    assert (await tasks.by_id(task.id)).status is TaskStatus.DONE
    assert await TaskEventRepo(pool).for_task(task.id, after=new[-1].id) == []
