"""Shared fixtures: a real PostgreSQL, a migrated template, a fresh database per test."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from storage import migrate
from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from tests.gitrepos import isolate_git_config

# The embedded server's data lives outside pytest's rotating temp dirs, so it survives and is
# shared by concurrent test sessions; each session works in databases of its own.
EMBEDDED_HOME = Path(tempfile.gettempdir()) / f"devserver-test-pg-{os.getuid()}"


@pytest.fixture(autouse=True)
def _isolated_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the machine's git identity or config: as on a fresh machine."""
    for key, value in isolate_git_config(tmp_path / "git-home").items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """TEST_DATABASE_URL, or the embedded server (started or joined once per session)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return with_db(start_embedded(EMBEDDED_HOME), "postgres")


async def _make_template(pg_dsn: str, name: str) -> None:
    await admin_execute(pg_dsn, f'CREATE DATABASE "{name}"')
    await migrate.apply_all(with_db(pg_dsn, name))


@pytest.fixture(scope="session")
def template_db(pg_dsn: str) -> Iterator[str]:
    name = f"template_{uuid.uuid4().hex[:12]}"
    asyncio.run(_make_template(pg_dsn, name))
    yield name
    asyncio.run(admin_execute(pg_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
