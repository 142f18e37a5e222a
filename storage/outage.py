"""What a database outage looks like from here: the server is down, restarting, or dropped
the connection. Such an error says nothing about the statement that met it, so the caller
waits and tries again (or hands the work back) rather than failing what it was doing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

log = logging.getLogger(__name__)
T = TypeVar("T")

# Raised by asyncpg when the server went away or is not accepting connections yet: class 08
# (connection exceptions, ConnectionDoesNotExistError among them) and the three shutdown /
# start-up errors of class 57. Not QueryCanceledError (also class 57): a statement timeout
# is about the statement.
_OUTAGES: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
)
_CHAIN_LIMIT = 10  # causes looked at: storage.errors wraps asyncpg's errors once or twice


def is_outage(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, is a lost or refused connection."""
    seen: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if seen is None:
            return False
        if isinstance(seen, _OUTAGES):
            return True
        if isinstance(seen, asyncpg.InterfaceError) and "connection is closed" in str(seen):
            return True
        # A connection broken mid-statement can be left half-way in asyncpg's protocol; the
        # pool's reset of it then fails like this (seen when PostgreSQL restarted).
        if isinstance(seen, asyncpg.InternalClientError) and "in progress" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def through_outage(
    op: Callable[[], Awaitable[T]], *, within: float = 600.0, pause: float = 1.0
) -> T:
    """Run `op` (a write), again after each outage, for up to `within` seconds; then, or on
    any other error, raise. For a write that follows what is already done elsewhere: a
    message Telegram accepted must be marked sent, or it is sent again."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await op()
        except Exception as exc:
            if not is_outage(exc) or time.monotonic() >= deadline:
                raise
            log.warning("database unavailable; retrying a write", extra={"error": str(exc)})
        await asyncio.sleep(pause)
