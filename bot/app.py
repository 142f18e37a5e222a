"""build_dispatcher(): the bot's wiring, used by `devserver bot` and by tests alike."""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import PRODUCTION, TelegramAPIServer
from aiogram.types import BotCommand

from bot import texts
from bot.deps import BotDeps
from bot.dialogs import PgDialogStorage
from bot.middlewares.auth import AllowlistMiddleware
from bot.middlewares.nul import NulMiddleware
from bot.outbox import Outbox
from bot.routers import all_routers
from bot.settings import BotSettings
from storage.db import create_pool

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30  # seconds for one Bot API call (long polls add their own timeout)


class BotConfigError(Exception):
    pass


def build_dispatcher(deps: BotDeps) -> Dispatcher:
    dp = Dispatcher(storage=PgDialogStorage(deps.pool), deps=deps)
    allowlist = AllowlistMiddleware(deps.settings.allowed_users, deps.settings.allowed_chats)
    dp.update.outer_middleware(allowlist)
    dp.update.outer_middleware(NulMiddleware())  # after the allow-list: strangers get nothing
    dp.include_routers(*all_routers())
    return dp


def build_bot(settings: BotSettings) -> Bot:
    problem = settings.problem()
    if problem is not None or settings.bot_token is None:
        raise BotConfigError(problem)
    api = (
        TelegramAPIServer.from_base(settings.api_base_url) if settings.api_base_url else PRODUCTION
    )
    session = AiohttpSession(api=api, timeout=REQUEST_TIMEOUT)
    return Bot(settings.bot_token.get_secret_value(), session=session)


async def register_commands(bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command=c, description=d) for c, d in texts.COMMANDS])


async def run_bot(settings: BotSettings, dsn: str, stop: asyncio.Event) -> None:
    """Poll for updates and deliver the outbox until `stop` is set."""
    bot = build_bot(settings)
    pool = await create_pool(dsn, min_size=1, max_size=8)
    try:
        deps = BotDeps(pool=pool, settings=settings)
        dp = build_dispatcher(deps)
        await register_commands(bot)
        outbox = asyncio.create_task(Outbox(bot, pool, settings).run(stop), name="outbox")
        polling = asyncio.create_task(
            dp.start_polling(bot, handle_signals=False,
                             allowed_updates=dp.resolve_used_update_types()),
            name="polling",
        )  # fmt: skip
        stopper = asyncio.create_task(stop.wait())
        log.info("bot started", extra={"users": len(settings.allowed_users)})
        await asyncio.wait({polling, outbox, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not polling.done():
            await dp.stop_polling()
        for task in (outbox, stopper):
            task.cancel()
        results = await asyncio.gather(polling, outbox, stopper, return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception)]
        log.info("bot stopped")
        if errors:
            raise errors[0]
    finally:
        await bot.session.close()
        await pool.close()
