"""A task's patch series is put in place of the one before in one statement: the earlier
patches and mbox go, other artifacts of the task and other tasks' stay."""

from __future__ import annotations

import hashlib
from typing import TypeAlias

import asyncpg

from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.repos import NewRepo, RepoRepo
from storage.tasks import NewTask, TaskRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

PATCH, MBOX = ArtifactKind.PATCH, ArtifactKind.MBOX


async def _task(pool: Pool, repo_id: int) -> int:
    key = await RepoRepo(pool).next_task_key(repo_id)
    return (await TaskRepo(pool).create(key, NewTask(repo_id=repo_id, title="t"))).id


async def test_a_new_series_replaces_the_last_and_nothing_else(pool: Pool) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="art", source="/tmp/x", default_branch="main"))
    task, other = await _task(pool, repo.id), await _task(pool, repo.id)
    artifacts = ArtifactRepo(pool)
    await artifacts.put(task, ArtifactKind.PLAN, "plan.md", b"# plan")
    await artifacts.replace_patches(task, [
        (PATCH, "0001-One.patch", b"one"), (PATCH, "0002-Two.patch", b"two"),
        (MBOX, "combined.mbox", b"one\ntwo"),
    ])  # fmt: skip
    await artifacts.replace_patches(other, [(MBOX, "combined.mbox", b"other")])

    await artifacts.replace_patches(task, [
        (PATCH, "0001-One-again.patch", b"one again"), (MBOX, "combined.mbox", b"one again"),
    ])  # fmt: skip
    stored = {(a.kind, a.filename, a.size, a.sha256) for a in await artifacts.for_task(task)}
    assert stored == {
        (ArtifactKind.PLAN, "plan.md", 6, hashlib.sha256(b"# plan").hexdigest()),
        (PATCH, "0001-One-again.patch", 9, hashlib.sha256(b"one again").hexdigest()),
        (MBOX, "combined.mbox", 9, hashlib.sha256(b"one again").hexdigest()),
    }
    assert await artifacts.content(task, "combined.mbox") == b"one again"
    assert await artifacts.content(other, "combined.mbox") == b"other"

    await artifacts.replace_patches(task, [])  # no series: the last one goes all the same
    assert [a.filename for a in await artifacts.for_task(task)] == ["plan.md"]
