"""Shared fixtures: a real PostgreSQL, a migrated template, a fresh database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from storage import migrate
from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded

TEMPLATE = "devserver_test_template"


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """TEST_DATABASE_URL, or the embedded server started once for this test session."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return with_db(start_embedded(tmp_path_factory.mktemp("pg")), "postgres")


async def _make_template(pg_dsn: str) -> None:
    await admin_execute(pg_dsn, f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    await admin_execute(pg_dsn, f'CREATE DATABASE "{TEMPLATE}"')
    await migrate.apply_all(with_db(pg_dsn, TEMPLATE))


@pytest.fixture(scope="session")
def template_db(pg_dsn: str) -> str:
    asyncio.run(_make_template(pg_dsn))
    return TEMPLATE


@pytest.fixture
def db_dsn(pg_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for one test: a copy of the template."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_execute(pg_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    yield with_db(pg_dsn, name)
    asyncio.run(admin_execute(pg_dsn, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await create_pool(db_dsn, max_size=5)
    yield pool
    await pool.close()
