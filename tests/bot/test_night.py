"""/night through the fake Bot API: start until a time, status, refuse a second, stop; and
the summary arriving through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiogram import Bot

from bot.app import build_dispatcher
from bot.deps import BotDeps
from bot.outbox import Outbox
from bot.routers.night import end_time, timezone
from storage.nights import NightRepo
from tests.bot.updates import as_update, message_update
from tests.bot.world import ALICE, MALLORY, Pool, add_repo, make_deps, settings
from tests.fakes.telegram import FakeTelegram


async def _say(bot: Bot, deps: BotDeps, text: str, user: int = ALICE) -> None:
    update = as_update(message_update(text, user_id=user), bot)
    await build_dispatcher(deps).feed_update(bot, update)


def test_end_time_is_the_next_such_time_in_the_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 11, 25, 21, 30, tzinfo=UTC)  # 22:30 in Berlin
    assert end_time("until 06:30", now, berlin) == datetime(2026, 11, 26, 5, 30, tzinfo=UTC)
    assert end_time("23:15", now, berlin) == datetime(2026, 11, 25, 22, 15, tzinfo=UTC)
    assert end_time("", now, berlin) == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)  # 07:00
    assert end_time("25:00", now, berlin) is None
    assert end_time("tomorrow", now, berlin) is None
    assert str(timezone("Nowhere/Else")) == str(timezone(None))  # unknown: the server's


async def test_night_commands_and_the_summary(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    deps = make_deps(pool, timezone="UTC")
    await add_repo(pool)
    await _say(bot, deps, "/night until 06:30")
    started = fake_tg.last("sendMessage").params["text"]
    assert "Night on until 06:30 (UTC)" in started
    current = await NightRepo(pool).current()
    assert current is not None
    assert current.ends_at.strftime("%H:%M") == "06:30"
    assert await pool.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'night_tick'") == 1

    await _say(bot, deps, "/night")
    assert "A night is on already, until 06:30 (UTC)" in fake_tg.last("sendMessage").params["text"]
    await _say(bot, deps, "/night status")
    assert "Fed so far: 0 task(s)." in fake_tg.last("sendMessage").params["text"]
    await _say(bot, deps, "/night at dawn")
    assert "Usage:" in fake_tg.last("sendMessage").params["text"]
    await _say(bot, deps, "/night stop", user=MALLORY)  # a stranger: ignored
    assert await NightRepo(pool).current() is not None

    await _say(bot, deps, "/night stop")
    assert "Night stopped" in fake_tg.last("sendMessage").params["text"]
    assert await NightRepo(pool).current() is None
    box = Outbox(bot, pool, settings())
    await box.deliver_due()
    summary = fake_tg.last("sendMessage").params
    assert summary["chat_id"] == ALICE
    assert "Night summary" in summary["text"]
    assert "stopped by" in summary["text"]
    await _say(bot, deps, "/night stop")
    assert "No night is on" in fake_tg.last("sendMessage").params["text"]
