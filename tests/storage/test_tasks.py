from __future__ import annotations

import asyncio
from typing import TypeAlias

import asyncpg
import pytest

from storage.errors import Conflict, InvalidTransition, NotFound
from storage.repos import NewRepo, RepoRepo, key_prefix_for
from storage.task_status import TERMINAL, TRANSITIONS, TaskStatus
from storage.tasks import NewTask, TaskRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def _repo(pool: Pool, name: str = "web") -> int:
    repo = await RepoRepo(pool).add(NewRepo(name=name, source="/tmp/x", default_branch="main"))
    return repo.id


async def _task(pool: Pool, repo_id: int) -> int:
    key = await RepoRepo(pool).next_task_key(repo_id)
    return (await TaskRepo(pool).create(key, NewTask(repo_id=repo_id, title="t"))).id


def test_key_prefix_is_derived_from_the_name() -> None:
    assert key_prefix_for("web") == "WEB"
    assert key_prefix_for("my-app.v2") == "MYAPPV2"
    assert key_prefix_for("2fast") == "FAST"
    assert key_prefix_for("---") == "TASK"


async def test_task_keys_are_sequential_per_repo_and_unique_under_concurrency(pool: Pool) -> None:
    web = await _repo(pool, "web")
    api = await _repo(pool, "api")
    repos = RepoRepo(pool)
    keys = await asyncio.gather(*(repos.next_task_key(web) for _ in range(20)))
    assert sorted(keys, key=lambda k: int(k.split("-")[1])) == [f"WEB-{i}" for i in range(1, 21)]
    assert await repos.next_task_key(api) == "API-1"


async def test_duplicate_repo_name_is_a_conflict(pool: Pool) -> None:
    await _repo(pool, "web")
    with pytest.raises(Conflict):
        await _repo(pool, "web")


async def test_happy_path_transitions(pool: Pool) -> None:
    tasks = TaskRepo(pool)
    task_id = await _task(pool, await _repo(pool))
    s = TaskStatus
    path = [s.QUEUED, s.PREPARING, s.RUNNING, s.VERIFYING, s.RUNNING, s.VERIFYING, s.DELIVERING,
            s.DONE]  # fmt: skip
    for status in path:
        task = await tasks.move(task_id, status)
        assert task.status is status
    assert task.started_at is not None
    assert task.finished_at is not None


async def test_illegal_transitions_raise_and_change_nothing(pool: Pool) -> None:
    tasks = TaskRepo(pool)
    task_id = await _task(pool, await _repo(pool))
    with pytest.raises(InvalidTransition) as info:
        await tasks.move(task_id, TaskStatus.DONE)  # pending → done skips everything
    assert info.value.current == "pending"
    assert (await tasks.by_id(task_id)).status is TaskStatus.PENDING
    for status in (TaskStatus.QUEUED, TaskStatus.PREPARING, TaskStatus.RUNNING,
                   TaskStatus.VERIFYING, TaskStatus.DELIVERING, TaskStatus.DONE):  # fmt: skip
        await tasks.move(task_id, status)
    for target in TaskStatus:
        with pytest.raises(InvalidTransition):
            await tasks.move(task_id, target)  # done is final
    assert (await tasks.by_id(task_id)).status is TaskStatus.DONE


async def test_every_edge_of_the_table_is_accepted_and_every_other_refused(pool: Pool) -> None:
    """Walk each status to each target on a fresh row, via SQL the test sets up directly."""
    tasks = TaskRepo(pool)
    repo_id = await _repo(pool)
    for source in TaskStatus:
        for target in TaskStatus:
            task_id = await _task(pool, repo_id)
            await pool.execute("UPDATE tasks SET status = $2 WHERE id = $1", task_id, source.value)
            if target in TRANSITIONS[source]:
                assert (await tasks.move(task_id, target)).status is target
            else:
                with pytest.raises(InvalidTransition):
                    await tasks.move(task_id, target)
    assert TRANSITIONS[TaskStatus.DONE] == frozenset()
    assert TaskStatus.DONE in TERMINAL


async def test_concurrent_moves_from_the_same_state_only_one_wins(pool: Pool) -> None:
    tasks = TaskRepo(pool)
    task_id = await _task(pool, await _repo(pool))
    await pool.execute("UPDATE tasks SET status = 'delivering' WHERE id = $1", task_id)
    results = await asyncio.gather(
        *(tasks.move(task_id, TaskStatus.DONE) for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, InvalidTransition) for r in results) == 4
    assert (await tasks.by_id(task_id)).status is TaskStatus.DONE


async def test_unknown_task_is_not_found(pool: Pool) -> None:
    with pytest.raises(NotFound):
        await TaskRepo(pool).by_key("NOPE-1")
