"""Raw Bot API updates as Telegram sends them: for `FakeTelegram.push_update` or `feed_update`."""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiogram import Bot
from aiogram.types import Update

from tests.fakes.telegram import bot_user

JSON = dict[str, Any]
_ids = itertools.count(1000)  # update, message and callback query ids: unique, increasing


def user(user_id: int) -> JSON:
    return {"id": user_id, "is_bot": False, "first_name": "Ada", "last_name": "Lovelace",
            "username": f"user{user_id}", "language_code": "en"}  # fmt: skip


def chat(chat_id: int, *, user_id: int, is_forum: bool = False) -> JSON:
    """The user's private chat when chat_id is user_id, else a supergroup."""
    if chat_id == user_id:
        return {"id": chat_id, "type": "private", "first_name": "Ada", "username": f"user{user_id}"}
    return {"id": chat_id, "type": "supergroup", "title": "DevServer"} | (
        {"is_forum": True} if is_forum else {}
    )


def _message(
    *, user_id: int, chat_id: int | None = None, thread_id: int | None = None,
    message_id: int | None = None, is_topic: bool = False, sender: JSON | None = None,
) -> JSON:  # fmt: skip
    """A Message without content: add text, document, ..."""
    raw: JSON = {
        "message_id": message_id or next(_ids),
        "from": sender or user(user_id),
        "date": int(time.time()),
        "chat": chat(chat_id or user_id, user_id=user_id, is_forum=is_topic),
    }
    if thread_id is not None:
        raw["message_thread_id"] = thread_id
    if is_topic:
        raw["is_topic_message"] = True
    return raw


def message_update(
    text: str, *, user_id: int, chat_id: int | None = None, thread_id: int | None = None,
    update_id: int | None = None, message_id: int | None = None, is_topic: bool = False,
) -> JSON:  # fmt: skip
    """A text message; a leading /command gets its bot_command entity, as from Telegram."""
    raw = _message(user_id=user_id, chat_id=chat_id, thread_id=thread_id,
                   message_id=message_id, is_topic=is_topic) | {"text": text}  # fmt: skip
    if text.startswith("/") and (command := text.split(maxsplit=1)[0]) != "/":
        length = len(command.encode("utf-16-le")) // 2
        raw["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return {"update_id": update_id or next(_ids), "message": raw}


def callback_update(
    data: str, *, user_id: int, chat_id: int | None = None, message_id: int = 1,
    message_text: str = "…", update_id: int | None = None, message: JSON | None = None,
) -> JSON:  # fmt: skip
    """A button press under a bot message: `message` (say, from `fake.add_message`) or a stub."""
    if message is None:
        message = _message(user_id=user_id, chat_id=chat_id, message_id=message_id,
                           sender=bot_user()) | {"text": message_text}  # fmt: skip
    query = {"id": str(next(_ids)), "from": user(user_id), "message": message,
             "chat_instance": str(message["chat"]["id"]), "data": data}  # fmt: skip
    return {"update_id": update_id or next(_ids), "callback_query": query}


def document_update(
    file: str | JSON, mime_type: str = "application/octet-stream", *, user_id: int,
    file_size: int = 0, chat_id: int | None = None, caption: str | None = None,
    thread_id: int | None = None, update_id: int | None = None, message_id: int | None = None,
    forwarded_from: JSON | None = None,
) -> JSON:  # fmt: skip
    """A file the user sent: `file` is a Document (from `FakeTelegram.add_file`, so the bot
    can download it) or a file name, for a made-up Document that cannot be downloaded.
    With `forwarded_from` (a User), the user forwarded it from that user's message."""
    if isinstance(file, str):
        file_number = next(_ids)
        file = {"file_id": f"file-{file_number}", "file_unique_id": f"u{file_number}",
                "file_name": file, "mime_type": mime_type, "file_size": file_size}  # fmt: skip
    raw = _message(user_id=user_id, chat_id=chat_id, thread_id=thread_id, message_id=message_id)
    raw["document"] = dict(file)
    if caption is not None:
        raw["caption"] = caption
    if forwarded_from is not None:
        raw["forward_origin"] = {"type": "user", "date": raw["date"] - 60,
                                 "sender_user": forwarded_from}  # fmt: skip
    return {"update_id": update_id or next(_ids), "message": raw}


def as_update(raw: JSON, bot: Bot | None = None) -> Update:
    """The aiogram Update for `Dispatcher.feed_update`; pass `bot` to mount it for shortcuts."""
    return Update.model_validate(raw, context={"bot": bot} if bot else None)
