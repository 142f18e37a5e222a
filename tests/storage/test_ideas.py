"""The ideas tree in PostgreSQL: folders, moves that would make a cycle, deletes that would
lose ideas, and the one task an idea becomes."""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import asyncpg
import pytest

from storage.errors import NotFound
from storage.ideas import AlreadyConverted, FolderNotEmpty, IdeaRepo, InvalidMove
from storage.repos import NewRepo, RepoRepo
from storage.tasks import NewTask, TaskRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def test_add_list_and_path(pool: Pool) -> None:
    ideas = IdeaRepo(pool)
    backlog = await ideas.add_folder(None, "Backlog", created_by=1001)
    web = await ideas.add_folder(backlog.id, "web")
    idea = await ideas.add(web.id, "Dark mode", "Use *prefers-color-scheme*.", created_by=1001)
    await ideas.add(backlog.id, "api idea")
    loose = await ideas.add(None, "At the root")

    assert (idea.parent_id, idea.is_folder, idea.title, idea.body) == (
        web.id, False, "Dark mode", "Use *prefers-color-scheme*.")  # fmt: skip
    assert (idea.task_id, idea.task_key, idea.task_status) == (None, None, None)
    assert [i.title for i in await ideas.children(None)] == ["Backlog", "At the root"]
    assert [i.title for i in await ideas.children(backlog.id)] == ["web", "api idea"]
    assert [i.title for i in await ideas.path(idea.id)] == ["Backlog", "web", "Dark mode"]
    assert [i.id for i in await ideas.path(loose.id)] == [loose.id]
    assert (await ideas.by_id(idea.id)).created_at == idea.created_at
    assert await pool.fetchval("SELECT created_by FROM ideas WHERE id = $1", idea.id) == 1001
    assert len(await ideas.all()) == 5  # what the status page reads


async def test_missing_things_are_not_found(pool: Pool) -> None:
    ideas = IdeaRepo(pool)
    idea = await ideas.add(None, "An idea")
    for call in (ideas.by_id(999), ideas.path(999), ideas.delete(999), ideas.move(999, None)):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(NotFound) as found:
        await ideas.folder(idea.id)  # an idea is not a folder
    assert found.value.what == "folder"
    for parent in (999, idea.id):  # nothing goes under a missing folder, or under an idea
        with pytest.raises(NotFound):
            await ideas.add(parent, "orphan")
        with pytest.raises(NotFound):
            await ideas.move(idea.id, parent)
    assert await pool.fetchval("SELECT count(*) FROM ideas") == 1


async def test_a_folder_never_moves_into_itself_or_below_itself(pool: Pool) -> None:
    ideas = IdeaRepo(pool)
    top = await ideas.add_folder(None, "top")
    middle = await ideas.add_folder(top.id, "middle")
    bottom = await ideas.add_folder(middle.id, "bottom")
    other = await ideas.add_folder(None, "other")
    for target in (top.id, middle.id, bottom.id):
        with pytest.raises(InvalidMove):
            await ideas.move(top.id, target)
    moved = await ideas.move(middle.id, other.id)  # with its subtree
    assert moved.parent_id == other.id
    assert [i.title for i in await ideas.path(bottom.id)] == ["other", "middle", "bottom"]
    assert (await ideas.move(middle.id, None)).parent_id is None


async def test_concurrent_crossing_moves_make_no_cycle(pool: Pool) -> None:
    """a into b and b into a at once: the tree lock lets one through, the other is refused."""
    ideas = IdeaRepo(pool)
    a = await ideas.add_folder(None, "a")
    b = await ideas.add_folder(None, "b")

    async def move(item: int, into: int) -> bool:
        async with pool.acquire() as conn, conn.transaction():
            try:
                await IdeaRepo(conn).move(item, into)
            except InvalidMove:
                return False
            await asyncio.sleep(0.05)  # hold the transaction open while the other one runs
            return True

    results = await asyncio.gather(move(a.id, b.id), move(b.id, a.id))
    assert sorted(results) == [False, True]
    parents = {i.id: i.parent_id for i in await ideas.all()}
    assert None in (parents[a.id], parents[b.id])


async def test_delete_refuses_a_folder_that_is_not_empty(pool: Pool) -> None:
    ideas = IdeaRepo(pool)
    folder = await ideas.add_folder(None, "Backlog")
    sub = await ideas.add_folder(folder.id, "sub")
    idea = await ideas.add(folder.id, "keep me")
    with pytest.raises(FolderNotEmpty) as refused:
        await ideas.delete(folder.id)
    assert (refused.value.folders, refused.value.ideas) == (1, 1)
    await ideas.delete(idea.id)
    await ideas.delete(sub.id)
    await ideas.delete(folder.id)
    assert await ideas.all() == []


async def test_set_task_links_once_and_the_task_status_shows(pool: Pool) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="shop", source="/tmp/x", default_branch="main"))
    ideas = IdeaRepo(pool)
    idea = await ideas.add(None, "Dark mode")
    folder = await ideas.add_folder(None, "folder")
    tasks = TaskRepo(pool)
    task = await tasks.create("SHOP-1", NewTask(repo_id=repo.id, title="t", idea_id=idea.id))
    linked = await ideas.set_task(idea.id, task.id)
    assert (linked.task_id, linked.task_key, linked.task_status) == (task.id, "SHOP-1", "pending")
    second = await tasks.create("SHOP-2", NewTask(repo_id=repo.id, title="t"))
    with pytest.raises(AlreadyConverted) as already:
        await ideas.set_task(idea.id, second.id)
    assert already.value.idea.task_key == "SHOP-1"
    with pytest.raises(NotFound):
        await ideas.set_task(folder.id, second.id)
    await pool.execute("UPDATE tasks SET status = 'done' WHERE id = $1", task.id)
    assert (await ideas.by_id(idea.id)).task_status == "done"
    await ideas.delete(idea.id)  # the task stays, unlinked
    assert (await tasks.by_id(task.id)).idea_id is None
