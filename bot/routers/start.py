"""/start and /help: what the bot does and its commands."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ParseMode
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot import texts


async def cmd_help(message: Message) -> None:
    await message.answer(texts.HELP, parse_mode=ParseMode.HTML)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_help, CommandStart())
    router.message.register(cmd_help, Command("help"))
    return router
