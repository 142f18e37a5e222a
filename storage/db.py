"""Connections: the asyncpg pool (with the pgvector codec) and DSN helpers."""

from __future__ import annotations

import logging
from typing import Any, Protocol, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pgvector.asyncpg import register_vector

log = logging.getLogger(__name__)

# A connection of our own or one acquired from a pool: both run transactions.
Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)


class Executor(Protocol):
    """Satisfied by a Pool, a Connection, and a connection acquired from a pool."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...


async def _init(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await register_vector(conn)


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """No server round trip on release: see create_pool's `session_free`."""


async def create_pool(
    dsn: str, *, read_only: bool = False, min_size: int = 1, max_size: int = 10,
    session_free: bool = False, generic_plans: bool = False,
) -> asyncpg.Pool[asyncpg.Record]:  # fmt: skip
    """A pool with the pgvector codec on each connection.

    `session_free`: the caller never leaves session state on a pooled connection (no SET
    but SET LOCAL / set_config(..., true), no LISTEN, no session advisory lock, no cursor
    outside a transaction). asyncpg then skips the reset query it otherwise sends on every
    release (RESET ALL, UNLISTEN *, ...): about 40 round trips per task in the worker
    (bench/overhead.py). An open transaction is still rolled back.

    `generic_plans`: each prepared statement is planned once per connection, never again at
    each run with its parameters (plan_cache_mode). For PgQueuer's dequeue, a large query
    that PostgreSQL otherwise plans anew every time: 2.7 of its 3.7 ms (bench/RESULTS.md)."""
    extra = {"default_transaction_read_only": "on"} if read_only else {}
    if generic_plans:
        extra["plan_cache_mode"] = "force_generic_plan"
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init, server_settings=extra,
        reset=_keep_session if session_free else None,
    )  # fmt: skip
    assert pool is not None  # noqa: S101  # create_pool only returns None when not awaited
    return pool


def with_db(dsn: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "postgres"


async def admin_execute(dsn: str, sql: str) -> None:
    """Run one statement on the server's maintenance database (CREATE/DROP DATABASE)."""
    conn = await asyncpg.connect(with_db(dsn, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def ensure_database(dsn: str) -> None:
    """Create the database named in `dsn` when it does not exist yet."""
    name = database_name(dsn)
    conn = await asyncpg.connect(with_db(dsn, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute("CREATE DATABASE " + quoted)
            log.info("database created", extra={"database": name})
    except asyncpg.DuplicateDatabaseError:
        pass  # another process created it between our check and our CREATE
    finally:
        await conn.close()
