"""/start and /help. The task commands arrive with the Telegram issue."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

router = Router(name=__name__)

HELP = (
    "DevServer is running. Tasks are added with the command line for now:\n"
    'devserver task add REPO "title"'
)


@router.message(CommandStart())
@router.message(Command("help"))
async def cmd_start(message: Message) -> None:
    await message.answer(HELP)
