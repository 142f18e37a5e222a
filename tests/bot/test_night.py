"""/night through the fake Bot API: start until a time, status, refuse a second, stop; and
the summary arriving through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram import Bot

from bot.app import build_dispatcher
from bot.deps import BotDeps
from bot.night_texts import timezone
from bot.outbox import Outbox
from bot.routers.night import end_time
from storage.nights import NightRepo
from storage.task_status import TaskStatus
from tests.bot.updates import as_update, callback_update, message_update
from tests.bot.world import ALICE, MALLORY, Pool, add_repo, add_task, make_deps, settings
from tests.fakes.telegram import FakeTelegram
from worker import night


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


async def test_the_summary_links_each_task_and_its_button_opens_the_card(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    repo = await add_repo(pool)
    done = await add_task(pool, repo, "Add a health endpoint", status=TaskStatus.DONE)
    failed = await add_task(pool, repo, "Fix <the> login", status=TaskStatus.FAILED)
    nights = NightRepo(pool)
    started = await nights.start(chat_id=ALICE, thread_id=None, by="Alice",
                                 ends_at=datetime.now(UTC) + timedelta(hours=8))  # fmt: skip
    for task in (failed, done):
        await nights.feed(started.id, task.id, "backlog")
    await pool.execute("UPDATE tasks SET cost_unknown = true WHERE id = $1", done.id)
    await pool.execute("UPDATE tasks SET spent_cost_usd = 0.4 WHERE id = $1", failed.id)
    async with pool.acquire() as conn, conn.transaction():
        assert await night.finish(conn, started, datetime.now(UTC), "stopped by Alice")

    box = Outbox(bot, pool, settings(status_page_url="https://ds.example/", timezone="UTC"))
    while await box.deliver_due() == 0:  # the tasks' own cards and alerts go first
        pass
    [summary] = [c.params for c in fake_tg.sent("sendMessage") if "Night" in c.params["text"]]
    text = summary["text"]
    assert f'<a href="https://ds.example/tasks/{done.key}">{done.key}</a>' in text
    assert "Fix &lt;the&gt; login — failed" in text
    assert text.index(done.key) < text.index(failed.key)  # done first
    assert "2 task(s) run: done 1 · failed 1 · cost $0.40 (+ 1 task(s) of unknown cost)" in text
    buttons = [row[0] for row in summary["reply_markup"]["inline_keyboard"]]
    assert [b["text"].split(" · ")[0] for b in buttons] == [done.key, failed.key]

    message = fake_tg.add_message(ALICE, text)
    press = callback_update(buttons[1]["callback_data"], user_id=ALICE, message=message)
    await build_dispatcher(make_deps(pool)).feed_update(bot, as_update(press, bot))
    assert failed.key in fake_tg.last("sendMessage").params["text"]
