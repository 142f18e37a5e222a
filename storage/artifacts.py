"""Files a task produced (patches, mbox, plan, logs), stored in PostgreSQL, not on disk."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Self

import asyncpg

from storage.db import Executor
from storage.errors import NotFound


class ArtifactKind(StrEnum):
    PATCH = "patch"
    MBOX = "mbox"
    PLAN = "plan"
    LOG = "log"
    SOURCE = "source"  # what an `apply` task applies: the forwarded patch series


_PUT = """
    INSERT INTO artifacts (task_id, kind, filename, content, sha256, size)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (task_id, filename) DO UPDATE
       SET kind = EXCLUDED.kind, content = EXCLUDED.content, sha256 = EXCLUDED.sha256,
           size = EXCLUDED.size, created_at = now()
    RETURNING id, task_id, kind, filename, sha256, size, created_at
"""
_FOR_TASK = """
    SELECT id, task_id, kind, filename, sha256, size, created_at
      FROM artifacts
     WHERE task_id = $1
     ORDER BY kind DESC, filename
"""
_CONTENT = "SELECT content FROM artifacts WHERE task_id = $1 AND filename = $2"
_DELETE_FOR_TASK = "DELETE FROM artifacts WHERE task_id = $1 AND kind = ANY($2::text[])"


@dataclass(frozen=True, slots=True)
class Artifact:
    id: int
    task_id: int
    kind: ArtifactKind
    filename: str
    sha256: str
    size: int
    created_at: datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(r["id"], r["task_id"], ArtifactKind(r["kind"]), r["filename"], r["sha256"],
                   r["size"], r["created_at"])  # fmt: skip


class ArtifactRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def put(
        self, task_id: int, kind: ArtifactKind, filename: str, content: bytes
    ) -> Artifact:
        digest = hashlib.sha256(content).hexdigest()
        row = await self._db.fetchrow(_PUT, task_id, kind.value, filename, content, digest,
                                      len(content))  # fmt: skip
        assert row is not None  # noqa: S101  # INSERT ... RETURNING always returns the row
        return Artifact.from_record(row)

    async def replace_patches(self, task_id: int) -> None:
        """Forget earlier patches of a task before storing a new series."""
        await self._db.execute(_DELETE_FOR_TASK, task_id, [ArtifactKind.PATCH, ArtifactKind.MBOX])

    async def for_task(self, task_id: int) -> list[Artifact]:
        return [Artifact.from_record(r) for r in await self._db.fetch(_FOR_TASK, task_id)]

    async def content(self, task_id: int, filename: str) -> bytes:
        data: bytes | None = await self._db.fetchval(_CONTENT, task_id, filename)
        if data is None:
            raise NotFound("artifact", filename)
        return data
