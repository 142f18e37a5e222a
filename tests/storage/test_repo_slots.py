"""A repo's slots: free while fewer other tasks hold one than its max_parallel_tasks, read
at every call (a changed limit counts at once)."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from storage.repo_slots import RepoSlotRepo
from storage.repos import NewRepo, RepoRepo
from storage.task_status import ACTIVE, TaskStatus
from storage.tasks import NewTask, TaskRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def test_a_slot_is_free_below_the_limit_not_counting_the_asking_task(pool: Pool) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="slots", source="/tmp/x", default_branch="main"))
    other = await RepoRepo(pool).add(NewRepo(name="other", source="/tmp/y", default_branch="main"))
    await pool.execute("UPDATE repos SET max_parallel_tasks = 2 WHERE id = $1", repo.id)
    tasks = TaskRepo(pool)
    ids = []
    for repo_id in (repo.id, repo.id, repo.id, other.id):
        key = await RepoRepo(pool).next_task_key(repo_id)
        ids.append((await tasks.create(key, NewTask(repo_id=repo_id, title="t"))).id)
    for task_id in ids:
        await tasks.move(task_id, TaskStatus.QUEUED)
    slots = RepoSlotRepo(pool)
    asking = ids[2]
    assert await slots.free(repo.id, asking, ACTIVE)
    await tasks.move(ids[0], TaskStatus.PREPARING)
    await tasks.move(ids[3], TaskStatus.PREPARING)  # another repo's: no slot of this one
    assert await slots.free(repo.id, asking, ACTIVE)
    await tasks.move(ids[1], TaskStatus.PREPARING)
    assert not await slots.free(repo.id, asking, ACTIVE)
    assert await slots.free(repo.id, ids[1], ACTIVE)  # its own slot is not counted
    await pool.execute("UPDATE repos SET max_parallel_tasks = 3 WHERE id = $1", repo.id)
    assert await slots.free(repo.id, asking, ACTIVE)
