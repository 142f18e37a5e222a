"""/night [until HH:MM], /night stop, /night status: the night cycle (worker/night.py).

Times are in the configured timezone (TELEGRAM_TIMEZONE, an IANA name), else the server's.
Starting a night and its first tick commit together; stopping one queues its summary.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from aiogram import Router
from aiogram.enums import ParseMode
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot import night_texts
from bot.deps import BotDeps, Operator
from bot.night_texts import timezone
from storage.errors import Conflict
from storage.nights import NightRepo
from worker import night

HTML = ParseMode.HTML
DEFAULT_END = (7, 0)  # a night without "until" ends at 07:00
_TIME = re.compile(r"^(?:until\s+)?([01]?\d|2[0-3])[:.h]([0-5]\d)$", re.IGNORECASE)


def end_time(text: str, now: datetime, zone: tzinfo) -> datetime | None:
    """The next HH:MM in `zone` after `now` (UTC); None when `text` is not a time."""
    if text:
        match = _TIME.match(text.strip())
        if match is None:
            return None
        hour, minute = int(match.group(1)), int(match.group(2))
    else:
        hour, minute = DEFAULT_END
    local = now.astimezone(zone)
    end = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.astimezone(UTC)


async def cmd_night(
    message: Message, command: CommandObject, deps: BotDeps, operator: Operator
) -> None:
    args = (command.args or "").strip()
    zone = timezone(deps.settings.timezone)
    now = datetime.now(UTC)
    if args.lower() == "stop":
        await message.answer(await _stop(deps, operator, now), parse_mode=HTML)
        return
    if args.lower() == "status":
        await message.answer(await _status(deps, zone), parse_mode=HTML)
        return
    ends_at = end_time(args, now, zone)
    if ends_at is None:
        await message.answer(night_texts.USAGE, parse_mode=HTML)
        return
    thread = message.message_thread_id if message.is_topic_message else None
    try:
        async with deps.pool.acquire() as conn, conn.transaction():
            started = await NightRepo(conn).start(chat_id=message.chat.id, thread_id=thread,
                                                  by=operator.label, ends_at=ends_at)  # fmt: skip
            await night.begin(conn, started)
    except Conflict:
        current = await NightRepo(deps.pool).current()
        await message.answer(night_texts.already_on(current, zone), parse_mode=HTML)
        return
    await message.answer(night_texts.started(started, zone), parse_mode=HTML)


async def _stop(deps: BotDeps, operator: Operator, now: datetime) -> str:
    async with deps.pool.acquire() as conn, conn.transaction():
        current = await NightRepo(conn).current()
        if current is None:
            return night_texts.NOT_ON
        await night.finish(conn, current, now, f"stopped by {operator.name}")
    return night_texts.STOPPED


async def _status(deps: BotDeps, zone: tzinfo) -> str:
    nights = NightRepo(deps.pool)
    current = await nights.current()
    if current is None:
        return night_texts.NOT_ON
    return night_texts.status(current, await nights.fed(current.id), zone)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_night, Command("night"))
    return router
