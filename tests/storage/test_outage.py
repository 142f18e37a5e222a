"""A write that must follow what is done elsewhere waits out a database outage, and only that."""

from __future__ import annotations

import asyncpg
import pytest

from storage.errors import Conflict
from storage.outage import is_outage, through_outage


def test_lost_and_refused_connections_are_outages_and_their_wrappers_too() -> None:
    assert is_outage(ConnectionRefusedError())
    assert is_outage(asyncpg.CannotConnectNowError("the database system is starting up"))
    wrapped = Conflict("wrapped")
    wrapped.__cause__ = asyncpg.ConnectionDoesNotExistError("connection was closed")
    assert is_outage(wrapped)
    assert is_outage(asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"))  # fmt: skip
    assert not is_outage(asyncpg.QueryCanceledError("statement timeout"))
    assert not is_outage(ValueError("a bug"))


async def test_a_write_is_tried_again_until_the_database_is_back() -> None:
    calls = 0

    async def write() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionResetError("the server went away")
        return "written"

    assert await through_outage(write, pause=0.01) == "written"
    assert calls == 3


async def test_other_errors_and_a_long_outage_are_raised() -> None:
    async def broken() -> None:
        raise ValueError("not an outage")

    with pytest.raises(ValueError, match="not an outage"):
        await through_outage(broken, pause=0.01)

    async def down() -> None:
        raise ConnectionRefusedError("still down")

    with pytest.raises(ConnectionRefusedError):
        await through_outage(down, within=0.05, pause=0.01)
