"""Fail closed: only allow-listed Telegram users (in allowed chats, if set) get any answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject, User

from bot.deps import Operator

log = logging.getLogger(__name__)


class AllowlistMiddleware(BaseMiddleware):
    def __init__(self, users: frozenset[int], chats: frozenset[int] = frozenset()) -> None:
        self._users = users
        self._chats = chats

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is None or user.id not in self._users:
            log.info("dropped update from stranger", extra={"user_id": user and user.id})
            return None
        if self._chats and (chat is None or chat.id not in self._chats):
            log.info(
                "dropped update from a chat not allowed",
                extra={"user_id": user.id, "chat_id": chat and chat.id},
            )
            return None
        data["operator"] = Operator(user.id, user.full_name)
        return await handler(event, data)
