"""Rows and SQL of `worker_state`: switches every worker obeys, such as `paused`."""

from __future__ import annotations

import json

from storage.db import Executor

CHANNEL = "worker_state"  # NOTIFY payload: the key that changed

_GET = "SELECT value FROM worker_state WHERE key = $1"
_SET = """
    WITH stored AS (
        INSERT INTO worker_state (key, value, updated_at)
        VALUES ($1, $2::jsonb, now())
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()
        RETURNING key
    )
    SELECT pg_notify('worker_state', stored.key) FROM stored
"""

PAUSED = "paused"


class WorkerStateRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def paused(self) -> bool:
        value = await self._db.fetchval(_GET, PAUSED)
        return bool(value is not None and json.loads(value))

    async def set_paused(self, paused: bool) -> None:
        """Workers stop (or resume) taking new jobs; running tasks are not touched."""
        await self._db.fetchval(_SET, PAUSED, json.dumps(paused))
