"""Errors at the edge: a UserError is answered with its text; anything else is logged and
answered with an apology, never with internals."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.enums import ParseMode
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from bot import texts
from bot.actions import UserError

log = logging.getLogger(__name__)


async def _reply(event: ErrorEvent, html: str) -> None:
    update = event.update
    if update.callback_query is not None:
        await update.callback_query.answer(texts.plain(html, 200), show_alert=True)
    elif update.message is not None:
        await update.message.answer(html, parse_mode=ParseMode.HTML)


async def on_user_error(event: ErrorEvent) -> None:
    assert isinstance(event.exception, UserError)  # noqa: S101  # the filter guarantees it
    await _reply(event, event.exception.html)


async def on_error(event: ErrorEvent) -> None:
    log.error(
        "update failed", exc_info=event.exception, extra={"update_id": event.update.update_id}
    )
    await _reply(event, texts.APOLOGY)


def make_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_user_error, ExceptionTypeFilter(UserError))
    router.errors.register(on_error)
    return router
