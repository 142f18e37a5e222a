from __future__ import annotations

import asyncio
import json
from typing import TypeAlias

import asyncpg

from storage.repos import NewRepo, RepoRepo
from storage.task_events import CHANNEL, EventKind, TaskEventRepo
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
