from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage import migrate
from storage.db import admin_execute, with_db

TABLES = {
    "repos", "tasks", "task_runs", "task_events", "ideas", "agent_memory", "artifacts",
    "notifications", "worker_state", "schema_migrations", "pgqueuer", "pgqueuer_log",
    "pgqueuer_statistics", "pgqueuer_schedules",
}  # fmt: skip


async def _schema(dsn: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
                WHERE table_schema = 'public' ORDER BY 1, 2"""
        )
        return [(r[0], r[1], r[2]) for r in rows]
    finally:
        await conn.close()


@pytest.fixture
async def empty_dsn(pg_dsn: str) -> AsyncIterator[str]:
    """A database with nothing in it, not even the migrations."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    await admin_execute(pg_dsn, f'CREATE DATABASE "{name}"')
    yield with_db(pg_dsn, name)
    await admin_execute(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_migrations_apply_to_empty_database_and_twice_is_no_change(empty_dsn: str) -> None:
    dsn = empty_dsn
    first = await migrate.apply_all(dsn)
    assert first == [m.version for m in migrate.available()]
    before = await _schema(dsn)
    assert await migrate.apply_all(dsn) == []
    assert await _schema(dsn) == before
    assert {table for table, _, _ in before} >= TABLES
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname='vector'")
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'agent_memory_embedding_idx'"
        )
        assert "hnsw" in index
        assert "vector_cosine_ops" in index
    finally:
        await conn.close()


async def test_concurrent_migrations_apply_each_file_once(empty_dsn: str) -> None:
    results = await asyncio.gather(*(migrate.apply_all(empty_dsn) for _ in range(3)))
    applied = [v for r in results for v in r]
    assert sorted(applied) == [m.version for m in migrate.available()]
