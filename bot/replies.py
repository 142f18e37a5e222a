"""Small shared rules for talking to Telegram."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup

from bot import texts


@contextlib.contextmanager
def not_modified_is_fine() -> Iterator[None]:
    """Editing a message to what it already says is a success, not an error."""
    try:
        yield
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise


def chunks(html: str, limit: int = texts.MESSAGE_LIMIT) -> list[str] | None:
    """Split HTML at line ends into messages of at most `limit` visible characters; None if
    one line alone is too long (our renderers keep each line's tags within the line)."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in html.split("\n"):
        visible = len(texts.plain(line, limit=10**9)) + 1
        if visible > limit:
            return None
        if size + visible > limit and current:
            parts.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += visible
    parts.append("\n".join(current))
    return parts


async def send_html(
    bot: Bot,
    chat_id: int,
    thread_id: int | None,
    html: str,
    *,
    reply_markup: InlineKeyboardMarkup | None = None,
    filename: str = "message.txt",
) -> None:
    """Send `html`, split over several messages when long, or as a text file when a single
    line does not fit; buttons go on the last message."""
    parts = chunks(html)
    if parts is None:
        document = BufferedInputFile(texts.plain(html, limit=10**9).encode(), filename)
        caption = texts.plain(html, limit=200)
        await bot.send_document(
            chat_id,
            document,
            caption=caption,
            message_thread_id=thread_id,
            reply_markup=reply_markup,
        )
        return
    for number, part in enumerate(parts, 1):
        await bot.send_message(
            chat_id,
            part,
            parse_mode=ParseMode.HTML,
            message_thread_id=thread_id,
            reply_markup=reply_markup if number == len(parts) else None,
        )
