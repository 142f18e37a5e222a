"""The tests' own databases (tests/databases.py): made ahead, dropped behind, never silently."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from storage.db import with_db
from tests.databases import Databases


def test_each_take_is_a_fresh_migrated_database_and_a_failed_drop_is_raised(
    pg_dsn: str, template_db: str
) -> None:
    made = Databases(pg_dsn, template_db)
    first, second = made.take(), made.take()
    assert first != second

    async def tasks_in(dsn: str) -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM tasks"))
        finally:
            await conn.close()

    assert asyncio.run(tasks_in(first)) == 0
    made.give_back(first)
    made.give_back(second)
    made.give_back(with_db(pg_dsn, "t_never_made"))
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        made.close()
