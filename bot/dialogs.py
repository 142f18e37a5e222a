"""aiogram FSM storage in PostgreSQL: a guided /new survives a bot restart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

from bot.deps import Pool
from storage.dialogs import DialogKey, DialogRepo


def _key(key: StorageKey) -> DialogKey:
    return DialogKey(key.bot_id, key.chat_id, key.user_id, key.thread_id or 0, key.destiny)


class PgDialogStorage(BaseStorage):
    def __init__(self, pool: Pool) -> None:
        self._repo = DialogRepo(pool)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._repo.set_state(_key(key), value)

    async def get_state(self, key: StorageKey) -> str | None:
        return await self._repo.state(_key(key))

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._repo.set_data(_key(key), dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return await self._repo.data(_key(key))

    async def close(self) -> None:
        """The pool belongs to the app, which closes it."""
