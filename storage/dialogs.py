"""Rows and SQL of `bot_dialogs`: where each person is in a guided dialog, kept across restarts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage.db import Executor

_GET = """
    SELECT state, data FROM bot_dialogs
     WHERE bot_id = $1 AND chat_id = $2 AND user_id = $3 AND thread_id = $4 AND destiny = $5
"""
_SET_STATE = """
    INSERT INTO bot_dialogs (bot_id, chat_id, user_id, thread_id, destiny, state)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (bot_id, chat_id, user_id, thread_id, destiny)
    DO UPDATE SET state = excluded.state, updated_at = now()
"""
_SET_DATA = """
    INSERT INTO bot_dialogs (bot_id, chat_id, user_id, thread_id, destiny, data)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb)
    ON CONFLICT (bot_id, chat_id, user_id, thread_id, destiny)
    DO UPDATE SET data = excluded.data, updated_at = now()
"""


@dataclass(frozen=True, slots=True)
class DialogKey:
    bot_id: int
    chat_id: int
    user_id: int
    thread_id: int  # 0 outside forum topics
    destiny: str

    def args(self) -> tuple[int, int, int, int, str]:
        return (self.bot_id, self.chat_id, self.user_id, self.thread_id, self.destiny)


class DialogRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def state(self, key: DialogKey) -> str | None:
        row = await self._db.fetchrow(_GET, *key.args())
        return None if row is None else row["state"]

    async def data(self, key: DialogKey) -> dict[str, Any]:
        row = await self._db.fetchrow(_GET, *key.args())
        return {} if row is None else dict(json.loads(row["data"]))

    async def set_state(self, key: DialogKey, state: str | None) -> None:
        await self._db.execute(_SET_STATE, *key.args(), state)

    async def set_data(self, key: DialogKey, data: dict[str, Any]) -> None:
        await self._db.execute(_SET_DATA, *key.args(), json.dumps(data))
