"""Rows and SQL of `ideas`: a tree of folders and ideas, an idea maybe made into a task.

`parent_id` NULL is the root. Changes to the tree (add, move, delete) first take one
transaction-level advisory lock, so call them inside a transaction: then no move makes a
cycle and nothing is added to a folder while it is being deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Self

import asyncpg

from storage.db import Executor
from storage.errors import NotFound, StorageError

_LOCK_TREE = "SELECT pg_advisory_xact_lock(4243311602)"
_ALL = """
    SELECT i.*, t.key AS task_key, t.status AS task_status
      FROM ideas i
      LEFT JOIN tasks t ON t.id = i.task_id
     ORDER BY i.is_folder DESC, lower(i.title), i.id
"""
_BY_ID = """
    SELECT i.*, t.key AS task_key, t.status AS task_status
      FROM ideas i
      LEFT JOIN tasks t ON t.id = i.task_id
     WHERE i.id = $1
"""
_BY_ID_FOR_UPDATE = """
    SELECT i.*, t.key AS task_key, t.status AS task_status
      FROM ideas i
      LEFT JOIN tasks t ON t.id = i.task_id
     WHERE i.id = $1
       FOR UPDATE OF i
"""
_CHILDREN = """
    SELECT i.*, t.key AS task_key, t.status AS task_status
      FROM ideas i
      LEFT JOIN tasks t ON t.id = i.task_id
     WHERE i.parent_id IS NOT DISTINCT FROM $1::bigint
     ORDER BY i.is_folder DESC, lower(i.title), i.id
"""
# The idea and its ancestors, the root's child first. The depth cap only guards the query.
_PATH = """
    WITH RECURSIVE up (id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM ideas WHERE id = $1
        UNION ALL
        SELECT p.id, p.parent_id, up.depth + 1
          FROM ideas p
          JOIN up ON p.id = up.parent_id
         WHERE up.depth < 1000
    )
    SELECT i.*, t.key AS task_key, t.status AS task_status
      FROM up
      JOIN ideas i ON i.id = up.id
      LEFT JOIN tasks t ON t.id = i.task_id
     ORDER BY up.depth DESC
"""
# Only under the root or under a folder that exists.
_ADD = """
    INSERT INTO ideas (parent_id, is_folder, title, body, created_by)
    SELECT $1, $2, $3, $4, $5
     WHERE $1::bigint IS NULL
        OR EXISTS (SELECT 1 FROM ideas f WHERE f.id = $1::bigint AND f.is_folder)
    RETURNING *, NULL::text AS task_key, NULL::text AS task_status
"""
# Only into the root or a folder, and never into the item itself or anything below it.
_MOVE = """
    WITH RECURSIVE below (id) AS (
        SELECT id FROM ideas WHERE id = $1
        UNION
        SELECT c.id FROM ideas c JOIN below b ON c.parent_id = b.id
    )
    UPDATE ideas
       SET parent_id = $2, updated_at = now()
     WHERE id = $1
       AND ($2::bigint IS NULL
            OR (EXISTS (SELECT 1 FROM ideas f WHERE f.id = $2::bigint AND f.is_folder)
                AND $2::bigint NOT IN (SELECT id FROM below)))
    RETURNING id
"""
# A folder only when it is empty.
_DELETE = """
    DELETE FROM ideas
     WHERE id = $1
       AND NOT EXISTS (SELECT 1 FROM ideas c WHERE c.parent_id = $1)
    RETURNING id
"""
_COUNT_CHILDREN = """
    SELECT count(*) FILTER (WHERE is_folder) AS folders,
           count(*) FILTER (WHERE NOT is_folder) AS ideas
      FROM ideas
     WHERE parent_id = $1
"""
# Once: an idea becomes one task.
_SET_TASK = """
    UPDATE ideas
       SET task_id = $2, updated_at = now()
     WHERE id = $1 AND NOT is_folder AND task_id IS NULL
    RETURNING id
"""


@dataclass(frozen=True, slots=True)
class Idea:
    id: int
    parent_id: int | None
    is_folder: bool
    title: str
    body: str
    task_id: int | None
    task_key: str | None  # the task made from it, if any
    task_status: str | None
    created_at: datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(**{f.name: r[f.name] for f in fields(cls)})


class FolderNotEmpty(StorageError):
    def __init__(self, folder_id: int, folders: int, ideas: int) -> None:
        super().__init__(f"folder {folder_id} holds {folders} folder(s) and {ideas} idea(s)")
        self.folders = folders
        self.ideas = ideas


class InvalidMove(StorageError):
    """A folder cannot go into itself or into a folder below it."""


class AlreadyConverted(StorageError):
    def __init__(self, idea: Idea) -> None:
        super().__init__(f"idea {idea.id} is already task {idea.task_key}")
        self.idea = idea


class IdeaRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def all(self) -> list[Idea]:
        """Every folder and idea: folders first, then by title."""
        return [Idea.from_record(r) for r in await self._db.fetch(_ALL)]

    async def by_id(self, idea_id: int, *, for_update: bool = False) -> Idea:
        """The idea or folder; `for_update` locks its row until the transaction ends."""
        row = await self._db.fetchrow(_BY_ID_FOR_UPDATE if for_update else _BY_ID, idea_id)
        if row is None:
            raise NotFound("idea", idea_id)
        return Idea.from_record(row)

    async def folder(self, folder_id: int) -> Idea:
        """A folder; NotFound("folder") when there is none, or it is an idea."""
        row = await self._db.fetchrow(_BY_ID, folder_id)
        if row is None or not row["is_folder"]:
            raise NotFound("folder", folder_id)
        return Idea.from_record(row)

    async def children(self, parent_id: int | None) -> list[Idea]:
        """What a folder (None: the root) holds: folders first, then by title."""
        return [Idea.from_record(r) for r in await self._db.fetch(_CHILDREN, parent_id)]

    async def path(self, idea_id: int) -> list[Idea]:
        """The folders above the idea, outermost first, and the idea itself last."""
        found = [Idea.from_record(r) for r in await self._db.fetch(_PATH, idea_id)]
        if not found:
            raise NotFound("idea", idea_id)
        return found

    async def add(
        self, parent_id: int | None, title: str, body: str = "", *, created_by: int | None = None
    ) -> Idea:
        return await self._add(parent_id, False, title, body, created_by)

    async def add_folder(
        self, parent_id: int | None, title: str, *, created_by: int | None = None
    ) -> Idea:
        return await self._add(parent_id, True, title, "", created_by)

    async def _add(self, parent_id: int | None, is_folder: bool, title: str, body: str,
                   created_by: int | None) -> Idea:  # fmt: skip
        await self._db.execute(_LOCK_TREE)
        row = await self._db.fetchrow(_ADD, parent_id, is_folder, title, body, created_by)
        if row is None:
            raise NotFound("folder", parent_id)
        return Idea.from_record(row)

    async def move(self, idea_id: int, parent_id: int | None) -> Idea:
        """Into `parent_id` (None: the root). NotFound for a missing idea or folder (or a
        target that is an idea); InvalidMove for a folder into itself or below itself."""
        await self._db.execute(_LOCK_TREE)
        if await self._db.fetchrow(_MOVE, idea_id, parent_id) is not None:
            return await self.by_id(idea_id)
        await self.by_id(idea_id)
        if parent_id is not None:
            await self.folder(parent_id)
        raise InvalidMove(f"idea {idea_id} cannot go into {parent_id}: it is inside it")

    async def delete(self, idea_id: int) -> None:
        """An idea, or an empty folder; FolderNotEmpty says what a folder still holds."""
        await self._db.execute(_LOCK_TREE)
        if await self._db.fetchrow(_DELETE, idea_id) is not None:
            return
        await self.by_id(idea_id)
        row = await self._db.fetchrow(_COUNT_CHILDREN, idea_id)
        assert row is not None  # noqa: S101  # an aggregate always returns a row
        raise FolderNotEmpty(idea_id, row["folders"], row["ideas"])

    async def set_task(self, idea_id: int, task_id: int) -> Idea:
        """Link the task made from the idea; an idea becomes one task only."""
        if await self._db.fetchrow(_SET_TASK, idea_id, task_id) is not None:
            return await self.by_id(idea_id)
        idea = await self.by_id(idea_id)
        if idea.is_folder:
            raise NotFound("idea", idea_id)
        raise AlreadyConverted(idea)
