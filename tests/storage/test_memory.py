from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg
import pytest

from storage import memory
from storage.db import Executor
from storage.memory import MemoryRepo, NewMemory, Outcome
from storage.repos import NewRepo, RepoRepo
from storage.tasks import NewTask, TaskRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
DIMS = 256
EMBEDDER = "test-v1"


async def _repo(pool: Pool, name: str) -> int:
    repo = await RepoRepo(pool).add(NewRepo(name=name, source="/tmp/x", default_branch="main"))
    return repo.id


async def _task(pool: Pool, repo_id: int, title: str = "t") -> tuple[int, str]:
    key = await RepoRepo(pool).next_task_key(repo_id)
    task = await TaskRepo(pool).create(key, NewTask(repo_id=repo_id, title=title))
    return task.id, task.key


def _unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def _at(cosine: float, axis: int = 1) -> list[float]:
    """A unit vector whose cosine with e0 is `cosine`."""
    vector = [0.0] * DIMS
    vector[0] = cosine
    vector[axis] = math.sqrt(1 - cosine * cosine)
    return vector


E0 = _at(1.0)


def _new(repo_id: int, embedding: list[float], *, task_id: int | None = None, key: str = "",
         outcome: Outcome = Outcome.SUCCESS, title: str = "a task",
         embedder: str = EMBEDDER) -> NewMemory:  # fmt: skip
    return NewMemory(repo_id=repo_id, task_id=task_id, task_key=key, outcome=outcome,
                     title=title, description="", summary="did it", embedder=embedder,
                     embedding=embedding)  # fmt: skip


async def _similar(pool: Pool, repo_id: int, vector: list[float], k: int,
                   **kwargs: Any) -> list[memory.Memory]:  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        return await MemoryRepo(conn).similar(repo_id, vector, k, embedder=EMBEDDER, **kwargs)


async def test_add_stores_every_field_and_for_task_reads_it(pool: Pool) -> None:
    repo_id = await _repo(pool, "web")
    task_id, key = await _task(pool, repo_id, "Fix login")
    added = await MemoryRepo(pool).add(
        NewMemory(
            repo_id=repo_id, task_id=task_id, task_key=key, outcome=Outcome.FAILURE,
            title="Fix login", description="The login page fails", summary="tests failed",
            embedder=EMBEDDER, embedding=E0, files=("auth/views.py", "auth/forms.py"),
            error_class="pytest.failures", attempts=3, cost_usd=Decimal("1.2345"),
        )
    )  # fmt: skip
    assert added.task_id == task_id
    assert added.task_key == key == "WEB-1"
    assert added.outcome is Outcome.FAILURE
    assert added.files == ["auth/views.py", "auth/forms.py"]
    assert added.error_class == "pytest.failures"
    assert added.attempts == 3
    assert added.cost_usd == Decimal("1.2345")
    assert added.similarity is None
    assert await MemoryRepo(pool).for_task(task_id) == added
    assert await MemoryRepo(pool).for_task(task_id + 1000) is None


async def test_a_task_finished_again_replaces_its_memory(pool: Pool) -> None:
    repo_id = await _repo(pool, "web")
    task_id, key = await _task(pool, repo_id)
    repo = MemoryRepo(pool)
    first = await repo.add(_new(repo_id, E0, task_id=task_id, key=key, outcome=Outcome.FAILURE))
    second = await repo.add(_new(repo_id, _at(0.5), task_id=task_id, key=key))
    assert second.id == first.id
    assert second.outcome is Outcome.SUCCESS
    assert await repo.for_task(task_id) == second
    assert await pool.fetchval("SELECT count(*) FROM agent_memory") == 1
    # Memories without a task (deleted tasks) are not merged.
    await repo.add(_new(repo_id, E0))
    await repo.add(_new(repo_id, E0))
    assert await pool.fetchval("SELECT count(*) FROM agent_memory") == 3


async def test_similar_is_best_first_with_cosine_similarity_and_stays_in_its_repo(
    pool: Pool,
) -> None:
    web = await _repo(pool, "web")
    api = await _repo(pool, "api")
    repo = MemoryRepo(pool)
    for cosine in (0.1, 0.9, -0.3, 0.5):
        await repo.add(_new(web, _at(cosine), title=f"web {cosine}"))
    await repo.add(_new(api, E0, title="api exact match"))
    found = await _similar(pool, web, E0, 3)
    assert [m.title for m in found] == ["web 0.9", "web 0.5", "web 0.1"]
    assert [m.similarity for m in found] == pytest.approx([0.9, 0.5, 0.1], abs=1e-5)
    every = await _similar(pool, web, E0, 10)
    assert [m.title for m in every] == ["web 0.9", "web 0.5", "web 0.1", "web -0.3"]
    assert await _similar(pool, web, E0, 0) == []
    assert [m.title for m in await _similar(pool, api, E0, 5)] == ["api exact match"]


async def test_similar_excludes_the_task_and_other_embedders_and_keeps_both_outcomes(
    pool: Pool,
) -> None:
    web = await _repo(pool, "web")
    own_id, own_key = await _task(pool, web)
    repo = MemoryRepo(pool)
    await repo.add(_new(web, E0, task_id=own_id, key=own_key, title="own"))
    await repo.add(_new(web, _at(0.8), title="worked", outcome=Outcome.SUCCESS))
    await repo.add(_new(web, _at(0.7), title="failed", outcome=Outcome.FAILURE))
    await repo.add(_new(web, E0, title="other embedder", embedder="other-v1"))
    found = await _similar(pool, web, E0, 5, exclude_task_id=own_id)
    assert [(m.title, m.outcome) for m in found] == [
        ("worked", Outcome.SUCCESS), ("failed", Outcome.FAILURE),
    ]  # fmt: skip
    with_own = await _similar(pool, web, E0, 5)
    assert [m.title for m in with_own] == ["own", "worked", "failed"]
    async with pool.acquire() as conn, conn.transaction():
        any_embedder = await MemoryRepo(conn).similar(web, E0, 5)
    assert len(any_embedder) == 4


class RecordingExecutor:
    """An Executor that remembers which statements ran: which plan did `similar` use?"""

    def __init__(self, db: Executor) -> None:
        self._db = db
        self.queries: list[str] = []

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        self.queries.append(query)
        return await self._db.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        self.queries.append(query)
        return await self._db.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.queries.append(query)
        return await self._db.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        self.queries.append(query)
        return await self._db.execute(query, *args)


def _noisy(rng: random.Random, base: list[float], noise: float) -> list[float]:
    return _unit([b + rng.gauss(0, noise) for b in base])


async def _load(conn: Executor, rows: list[tuple[int, int, list[float], float]]) -> None:
    """Bulk memories: (repo_id, count, base vector, noise) each."""
    rng = random.Random(7)  # reproducible data, not secrets
    records = [(repo_id, "success", "s", _noisy(rng, base, noise), EMBEDDER)
               for repo_id, count, base, noise in rows for _ in range(count)]  # fmt: skip
    assert isinstance(conn, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy)
    await conn.copy_records_to_table("agent_memory", records=records,
                                     columns=["repo_id", "outcome", "summary", "embedding",
                                              "embedder"])  # fmt: skip
    await conn.execute("ANALYZE agent_memory")


ZERO = [0.0] * DIMS


async def test_a_repo_among_larger_ones_still_gets_its_k_rows(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`big` holds 1,500 memories, all close to the query. `mid` (500, above the exact-scan
    limit, so searched through HNSW) and `few` (8, searched exactly) hold far ones. A plain
    filtered HNSW scan sees only `big`'s rows and returns none of `mid`'s; the iterative scan
    returns k, the same ones an exact scan finds."""
    monkeypatch.setattr(memory, "EXACT_SCAN_MAX", 20)
    big, mid, few = await _repo(pool, "big"), await _repo(pool, "mid"), await _repo(pool, "few")
    async with pool.acquire() as conn:
        await _load(conn, [(big, 1500, E0, 0.02), (mid, 500, ZERO, 1.0), (few, 8, ZERO, 1.0)])
        async with conn.transaction():  # without iterative scans: the problem
            plain = await conn.fetch(memory._SIMILAR_HNSW, mid, E0, EMBEDDER, 5, None)
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN " + memory._SIMILAR_HNSW, mid, E0, EMBEDDER, 5, None
                )
            )
        assert "agent_memory_embedding_idx" in plan
        assert len(plain) < 5

        async with conn.transaction():
            recorder = RecordingExecutor(conn)
            found = await MemoryRepo(recorder).similar(mid, E0, 5, embedder=EMBEDDER)
            exact = await conn.fetch(memory._SIMILAR_EXACT, mid, E0, EMBEDDER, 5, None)
        assert memory._SIMILAR_HNSW in recorder.queries
        assert memory._SIMILAR_EXACT not in recorder.queries  # HNSW alone found them all
        assert [m.id for m in found] == [r["id"] for r in exact]
        assert {m.repo_id for m in found} == {mid}
        similarities = [m.similarity or 0.0 for m in found]
        assert similarities == sorted(similarities, reverse=True)

        async with conn.transaction():
            recorder = RecordingExecutor(conn)
            found = await MemoryRepo(recorder).similar(few, E0, 5, embedder=EMBEDDER)
        assert memory._SIMILAR_HNSW not in recorder.queries
        assert len(found) == 5
        assert {m.repo_id for m in found} == {few}

        found = await MemoryRepo(conn).similar(big, E0, 5, embedder=EMBEDDER)
        assert len(found) == 5
        assert {m.repo_id for m in found} == {big}


async def test_without_a_transaction_a_short_hnsw_answer_is_redone_exactly(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a transaction the HNSW settings don't hold; the answer is still complete."""
    monkeypatch.setattr(memory, "EXACT_SCAN_MAX", 20)
    big, mid = await _repo(pool, "big"), await _repo(pool, "mid")
    async with pool.acquire() as conn:
        await _load(conn, [(big, 1500, E0, 0.02), (mid, 500, ZERO, 1.0)])
        recorder = RecordingExecutor(conn)
        found = await MemoryRepo(recorder).similar(mid, E0, 5, embedder=EMBEDDER)
    assert memory._SIMILAR_EXACT in recorder.queries
    assert len(found) == 5
    assert {m.repo_id for m in found} == {mid}
