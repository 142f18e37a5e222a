from __future__ import annotations

import uuid

import asyncpg

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


async def test_migrations_apply_to_empty_database_and_twice_is_no_change(pg_dsn: str) -> None:
    name = f"migrate_twice_{uuid.uuid4().hex[:8]}"
    await admin_execute(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin_execute(pg_dsn, f'CREATE DATABASE "{name}"')
    dsn = with_db(pg_dsn, name)
    try:
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
    finally:
        await admin_execute(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_concurrent_migrations_apply_each_file_once(pg_dsn: str) -> None:
    import asyncio  # noqa: PLC0415

    name = f"migrate_concurrent_{uuid.uuid4().hex[:8]}"
    await admin_execute(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin_execute(pg_dsn, f'CREATE DATABASE "{name}"')
    dsn = with_db(pg_dsn, name)
    try:
        results = await asyncio.gather(*(migrate.apply_all(dsn) for _ in range(3)))
        applied = [v for r in results for v in r]
        assert sorted(applied) == [m.version for m in migrate.available()]
    finally:
        await admin_execute(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
