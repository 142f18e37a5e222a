"""The pool (storage/db.py): what `session_free` skips on release, and what it still does."""

from __future__ import annotations

import pytest

from storage.db import create_pool


@pytest.mark.parametrize("session_free", [False, True])
async def test_release_resets_the_session_unless_it_is_declared_free(
    db_dsn: str, session_free: bool
) -> None:
    pool = await create_pool(db_dsn, min_size=1, max_size=1, session_free=session_free)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'left behind'")
        async with pool.acquire() as conn:  # the same connection: the pool has one
            name = await conn.fetchval("SHOW application_name")
        # Without the reset query the session keeps what it was given: hence the contract
        # that a session_free pool's users leave nothing there.
        assert (name == "left behind") is session_free
    finally:
        await pool.close()


async def test_a_session_free_release_still_rolls_back_an_open_transaction(db_dsn: str) -> None:
    pool = await create_pool(db_dsn, min_size=1, max_size=1, session_free=True)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE scratch (n integer)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO scratch VALUES (1)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM scratch") == 0
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_a_pool_of_generic_plans_plans_each_statement_once(db_dsn: str) -> None:
    generic = await create_pool(db_dsn, min_size=1, max_size=1, generic_plans=True)
    plain = await create_pool(db_dsn, min_size=1, max_size=1)
    try:
        assert await generic.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        assert await plain.fetchval("SHOW plan_cache_mode") == "auto"
    finally:
        await generic.close()
        await plain.close()
