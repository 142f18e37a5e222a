"""Apply migrations/*.sql in order, once each, under an advisory lock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

_LOCK_KEY = 7_310_420_115  # any constant; shared by every process that migrates
_CREATE = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version     text PRIMARY KEY,
        applied_at  timestamptz NOT NULL DEFAULT now()
    )
"""
_APPLIED = "SELECT version FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version) VALUES ($1)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # the file name without .sql, e.g. 0003_core_tables
    sql: str


def available() -> list[Migration]:
    files = [f for f in resources.files("migrations").iterdir() if f.name.endswith(".sql")]
    return [
        Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8"))
        for f in sorted(files, key=lambda f: f.name)
    ]


async def apply_all(dsn: str) -> list[str]:
    """Apply every missing migration; returns the versions applied now (empty if none)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            await conn.execute(_CREATE)
            done = {r["version"] for r in await conn.fetch(_APPLIED)}
            applied = []
            for migration in available():
                if migration.version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(_RECORD, migration.version)
                log.info("migration applied", extra={"version": migration.version})
                applied.append(migration.version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
