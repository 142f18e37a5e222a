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
# A task's patch series, put in place of the one before, in one statement: the earlier
# patches not in the new series go, the new ones are put. (Deleting only the others keeps
# the two parts off each other's rows: they see the same snapshot.)
_REPLACE_SERIES = """
    WITH gone AS (
        DELETE FROM artifacts
         WHERE task_id = $1 AND kind = ANY($2::text[]) AND filename <> ALL($4::text[])
    )
    INSERT INTO artifacts (task_id, kind, filename, content, sha256, size)
    SELECT $1, new.kind, new.filename, new.content, new.sha256, new.size
      FROM unnest($3::text[], $4::text[], $5::bytea[], $6::text[], $7::bigint[])
           AS new (kind, filename, content, sha256, size)
    ON CONFLICT (task_id, filename) DO UPDATE
       SET kind = EXCLUDED.kind, content = EXCLUDED.content, sha256 = EXCLUDED.sha256,
           size = EXCLUDED.size, created_at = now()
"""


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

    async def replace_patches(
        self, task_id: int, series: list[tuple[ArtifactKind, str, bytes]]
    ) -> None:
        """Store `series` (kind, filename, content) as the task's patches, in place of any
        earlier series (its patches and mbox)."""
        await self._db.execute(
            _REPLACE_SERIES, task_id, [ArtifactKind.PATCH.value, ArtifactKind.MBOX.value],
            [kind.value for kind, _, _ in series], [name for _, name, _ in series],
            [content for _, _, content in series],
            [hashlib.sha256(content).hexdigest() for _, _, content in series],
            [len(content) for _, _, content in series],
        )  # fmt: skip

    async def for_task(self, task_id: int) -> list[Artifact]:
        return [Artifact.from_record(r) for r in await self._db.fetch(_FOR_TASK, task_id)]

    async def content(self, task_id: int, filename: str) -> bytes:
        data: bytes | None = await self._db.fetchval(_CONTENT, task_id, filename)
        if data is None:
            raise NotFound("artifact", filename)
        return data
