"""Work a job starts beside its main line (the memory recall while the workspace is made,
the patches while the preflight reads, the collision lookup while the repo map is built), to
be awaited later or dropped when it is not needed after all."""

from __future__ import annotations

import asyncio
from typing import Any


async def drop(future: asyncio.Future[Any]) -> None:
    """Stop `future` and wait until it has stopped. What it raised goes with it: retrieved
    here, so asyncio does not log it as never retrieved."""
    future.cancel()
    await asyncio.wait({future})
    if not future.cancelled():
        future.exception()
