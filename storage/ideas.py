"""Rows and SQL of `ideas`: a tree of folders and ideas, an idea maybe made into a task."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Self

import asyncpg

from storage.db import Executor

_ALL = """
    SELECT i.*, t.key AS task_key, t.status AS task_status
      FROM ideas i
      LEFT JOIN tasks t ON t.id = i.task_id
     ORDER BY i.is_folder DESC, lower(i.title), i.id
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


class IdeaRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def all(self) -> list[Idea]:
        """Every folder and idea: folders first, then by title."""
        return [Idea.from_record(r) for r in await self._db.fetch(_ALL)]
