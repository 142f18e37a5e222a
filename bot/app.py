"""build_dispatcher(): the bot's wiring, used by `devserver bot` and by tests alike."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.middlewares.auth import AllowlistMiddleware
from bot.routers import all_routers
from bot.settings import BotSettings

log = logging.getLogger(__name__)


class BotConfigError(Exception):
    pass


def build_dispatcher(allowed_users: frozenset[int]) -> Dispatcher:
    dp = Dispatcher()
    dp.update.outer_middleware(AllowlistMiddleware(allowed_users))
    dp.include_routers(*all_routers())
    return dp


def build_bot(settings: BotSettings) -> Bot:
    problem = settings.problem()
    if problem is not None or settings.bot_token is None:
        raise BotConfigError(problem)
    session = None
    if settings.api_base_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.api_base_url))
    return Bot(settings.bot_token.get_secret_value(), session=session)


async def run_bot(settings: BotSettings, stop: asyncio.Event) -> None:
    bot = build_bot(settings)
    dp = build_dispatcher(settings.allowed_users)
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False))
    try:
        await asyncio.wait(
            {polling, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if polling.done():
            polling.result()
            return
        await dp.stop_polling()
        await polling
    finally:
        await bot.session.close()
