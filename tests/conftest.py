"""Shared fixtures: a real PostgreSQL, a migrated template, a fresh database per test."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient, AiohttpServer

from storage import migrate
from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from tests.databases import Databases
from tests.gitrepos import isolate_git_config
from tests.secret_guard import SecretGuard, watching
from tests.secrets import SECRETS

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


@pytest.fixture(scope="session")
def databases(pg_dsn: str, template_db: str) -> Iterator[Databases]:
    made = Databases(pg_dsn, template_db)
    yield made
    made.close()


@pytest.fixture
def db_dsn(databases: Databases) -> Iterator[str]:
    """A fresh, migrated database for one test: a copy of the template."""
    dsn = databases.take()
    yield dsn
    databases.give_back(dsn)


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await create_pool(db_dsn, max_size=5)
    yield pool
    await pool.close()


# -- The secret guard (tests/secret_guard.py): across the whole run, no test secret may appear
# in a log record, a page of the status page, or a call to the fake Bot API. What it finds
# fails the session at the end, naming the test and the place.

GUARD = SecretGuard(SECRETS)


@pytest.fixture(autouse=True)
def _secret_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Names the running test for the guard; (re)attaches its root log handler, which a test
    that configures logging (the CLI's dictConfig) removes; searches the fake Bot API's calls."""
    GUARD.test = request.node.nodeid
    root = logging.getLogger()
    if GUARD.handler not in root.handlers:
        root.addHandler(GUARD.handler)
    fake = request.getfixturevalue("fake_tg") if "fake_tg" in request.fixturenames else None
    yield
    if fake is not None:
        GUARD.scan_calls(fake.calls)
    GUARD.test = "(between tests)"


@pytest.fixture
def aiohttp_client(aiohttp_client: AiohttpClient) -> AiohttpClient:
    """pytest-aiohttp's, with what the status page answers searched by the guard."""
    return watching(GUARD, aiohttp_client)  # type: ignore[return-value]


@pytest.fixture
def aiohttp_server(aiohttp_server: AiohttpServer) -> AiohttpServer:
    """pytest-aiohttp's, with what the status page answers searched by the guard."""
    return watching(GUARD, aiohttp_server)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if GUARD.found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(GUARD.report(), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
