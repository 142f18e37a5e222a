"""Refuse NUL characters at the door: PostgreSQL can store none.

Telegram apps cannot type a NUL, but the Bot API's JSON can carry one ("\\u0000"), and
PostgreSQL's text and jsonb refuse it ("invalid byte sequence for encoding UTF8: 0x00"). A
task, an idea, a dialog step or a file name holding one would fail deep inside a handler, as an
error logged with an apology. Checked here once, for every handler: a clear answer, nothing
stored. Registered after the allow-list, so strangers still get silence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User

from bot import texts
from bot.actions import UserError


class NulMiddleware(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        if isinstance(event, Update) and any("\0" in v for v in _typed(event, user) if v):
            raise UserError(texts.NUL_REFUSED)  # answered by the error router
        return await handler(event, data)


def _typed(update: Update, user: User | None) -> list[str | None]:
    """What of an update may be stored: text, caption, a file's name, button data, and the
    sender's name (recorded with every change they make)."""
    values: list[str | None] = [user.full_name] if user else []
    if (message := update.message or update.edited_message) is not None:
        document = message.document
        values += [message.text, message.caption, document.file_name if document else None]
    if update.callback_query is not None:
        values.append(update.callback_query.data)
    return values
