"""Rows and SQL of `agent_memory`: what happened in past tasks, recalled by vector similarity.

One memory per task: `add` for a task that already has one replaces it (a retried task's
latest outcome is what counts). Recall is per repository and per embedder; see `similar`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Self

import asyncpg

from storage.db import Executor
from storage.errors import translate_errors

# A repository with at most this many memories is searched exactly: all its rows, sorted by
# distance (a few ms at this size, see bench/MEMORY.md). Above it the HNSW index is used.
EXACT_SCAN_MAX = 2000
HNSW_EF_SEARCH = 100  # candidates the HNSW scan keeps; pgvector's default is 40

_ADD = """
    INSERT INTO agent_memory (repo_id, task_id, task_key, outcome, title, description, summary,
                              files, error_class, attempts, cost_usd, embedder, embedding)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (task_id) WHERE task_id IS NOT NULL DO UPDATE
       SET repo_id = EXCLUDED.repo_id, task_key = EXCLUDED.task_key,
           outcome = EXCLUDED.outcome, title = EXCLUDED.title,
           description = EXCLUDED.description, summary = EXCLUDED.summary,
           files = EXCLUDED.files, error_class = EXCLUDED.error_class,
           attempts = EXCLUDED.attempts, cost_usd = EXCLUDED.cost_usd,
           embedder = EXCLUDED.embedder, embedding = EXCLUDED.embedding, created_at = now()
    RETURNING id, repo_id, task_id, task_key, outcome, title, summary, files, error_class,
              attempts, cost_usd, created_at, NULL::float8 AS similarity
"""
_FOR_TASK = """
    SELECT id, repo_id, task_id, task_key, outcome, title, summary, files, error_class,
           attempts, cost_usd, created_at, NULL::float8 AS similarity
      FROM agent_memory
     WHERE task_id = $1
"""
# How many memories the repo has, counted up to $3 only: an index-only scan, cheap however
# large the repository.
_COUNT_UP_TO = """
    SELECT count(*)
      FROM (SELECT 1
              FROM agent_memory
             WHERE repo_id = $1 AND ($2::text IS NULL OR embedder = $2)
             LIMIT $3) AS mine
"""
# Every memory of the repo, sorted exactly. MATERIALIZED keeps the HNSW index out: the
# distance is sorted after the repo's rows were read through agent_memory_repo_embedder_idx.
_SIMILAR_EXACT = """
    WITH mine AS MATERIALIZED (
        SELECT id, repo_id, task_id, task_key, outcome, title, summary, files, error_class,
               attempts, cost_usd, created_at, embedding <=> $2 AS distance
          FROM agent_memory
         WHERE repo_id = $1 AND ($3::text IS NULL OR embedder = $3)
           AND ($5::bigint IS NULL OR task_id IS DISTINCT FROM $5)
    )
    SELECT id, repo_id, task_id, task_key, outcome, title, summary, files, error_class,
           attempts, cost_usd, created_at, 1 - distance AS similarity
      FROM mine
     ORDER BY distance, id DESC
     LIMIT $4
"""
# Iterative index scans (pgvector 0.8) keep scanning the HNSW graph until the filter has let
# k rows through; relaxed_order may return them slightly out of order, so they are sorted
# again outside the MATERIALIZED CTE. Settings last until the transaction ends.
_HNSW_SETTINGS = """
    SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
           set_config('hnsw.ef_search', $1::text, true)
"""
_SIMILAR_HNSW = """
    WITH nearest AS MATERIALIZED (
        SELECT id, repo_id, task_id, task_key, outcome, title, summary, files, error_class,
               attempts, cost_usd, created_at, embedding <=> $2 AS distance
          FROM agent_memory
         WHERE repo_id = $1 AND ($3::text IS NULL OR embedder = $3)
           AND ($5::bigint IS NULL OR task_id IS DISTINCT FROM $5)
         ORDER BY embedding <=> $2
         LIMIT $4
    )
    SELECT id, repo_id, task_id, task_key, outcome, title, summary, files, error_class,
           attempts, cost_usd, created_at, 1 - distance AS similarity
      FROM nearest
     ORDER BY distance, id DESC
"""


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class Memory:
    id: int
    repo_id: int
    task_id: int | None  # None once the task was deleted
    task_key: str
    outcome: Outcome
    title: str
    summary: str
    files: list[str]
    error_class: str | None
    attempts: int
    cost_usd: Decimal | None  # None: the cost is unknown (subscription runs)
    created_at: datetime
    similarity: float | None  # cosine similarity to the query (1 - distance); None unless recalled

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(r["id"], r["repo_id"], r["task_id"], r["task_key"], Outcome(r["outcome"]),
                   r["title"], r["summary"], list(r["files"]), r["error_class"], r["attempts"],
                   r["cost_usd"], r["created_at"], r["similarity"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class NewMemory:
    repo_id: int
    task_id: int | None
    task_key: str
    outcome: Outcome
    title: str
    description: str  # kept so the memory can be embedded again by another embedder
    summary: str
    embedder: str  # Embedder.name of the embedder that made `embedding`
    embedding: Sequence[float]
    files: tuple[str, ...] = field(default=())
    error_class: str | None = None
    attempts: int = 1
    cost_usd: Decimal | None = None


class MemoryRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(self, new: NewMemory) -> Memory:
        """Store a memory; a task that already has one gets it replaced."""
        with translate_errors():
            row = await self._db.fetchrow(
                _ADD, new.repo_id, new.task_id, new.task_key, new.outcome.value, new.title,
                new.description, new.summary, list(new.files), new.error_class, new.attempts,
                new.cost_usd, new.embedder, list(new.embedding),
            )  # fmt: skip
        assert row is not None  # noqa: S101  # INSERT ... RETURNING always returns the row
        return Memory.from_record(row)

    async def for_task(self, task_id: int) -> Memory | None:
        row = await self._db.fetchrow(_FOR_TASK, task_id)
        return None if row is None else Memory.from_record(row)

    async def similar(
        self,
        repo_id: int,
        embedding: Sequence[float],
        k: int,
        *,
        exclude_task_id: int | None = None,
        embedder: str | None = None,
    ) -> list[Memory]:
        """The k memories of the repo most similar to `embedding`, best first.

        Only memories made by `embedder` (None: by any) are compared. Call it inside a
        transaction: the HNSW settings are transaction-local. Outside one they do not apply;
        the result is still complete (a short HNSW answer is redone exactly), only slower.
        """
        if k <= 0:
            return []
        vector = list(embedding)
        count = await self._db.fetchval(_COUNT_UP_TO, repo_id, embedder, EXACT_SCAN_MAX + 1)
        rows: list[asyncpg.Record] = []
        if count > EXACT_SCAN_MAX:
            await self._db.fetchval(_HNSW_SETTINGS, str(HNSW_EF_SEARCH))
            rows = await self._db.fetch(_SIMILAR_HNSW, repo_id, vector, embedder, k,
                                        exclude_task_id)  # fmt: skip
        if len(rows) < k:
            rows = await self._db.fetch(_SIMILAR_EXACT, repo_id, vector, embedder, k,
                                        exclude_task_id)  # fmt: skip
        return [Memory.from_record(r) for r in rows]
