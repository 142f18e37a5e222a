"""The outbox when a delivery fails in a way it does not expect: one row's failure is counted
and backed off without holding other chats' rows, and a refused bot token pauses it all."""

from __future__ import annotations

import logging

import pytest
from aiogram import Bot

from bot import outbox as outbox_module
from bot.outbox import UNAUTHORIZED_PAUSE, Outbox
from storage.notifications import NoticeKind, NotificationRepo
from tests.bot.world import ALICE, Pool, add_repo, add_task, settings
from tests.fakes.telegram import FakeTelegram

GROUP = -100123


async def _state(pool: Pool, key: str) -> tuple[bool, bool, int, str | None, float]:
    """sent, given up, attempts, last error, and seconds until it is due again."""
    row = await pool.fetchrow(
        "SELECT sent_at IS NOT NULL AS sent, given_up_at IS NOT NULL AS given_up, attempts, "
        "last_error, extract(epoch FROM next_attempt_at - now())::float AS due_in "
        "FROM notifications WHERE dedupe_key = $1", key)  # fmt: skip
    assert row is not None
    return row["sent"], row["given_up"], row["attempts"], row["last_error"], row["due_in"]


async def _malformed_alert(pool: Pool) -> None:
    """An alert row whose payload lacks its event id: reading it raises KeyError."""
    task = await add_task(pool, await add_repo(pool))
    await NotificationRepo(pool).add(ALICE, NoticeKind.ALERT, "broken", task_id=task.id,
                                     payload={"oops": 1})  # fmt: skip
    await pool.execute("UPDATE notifications SET sent_at = now() WHERE dedupe_key <> 'broken'")


async def test_a_malformed_row_is_backed_off_and_counted_while_other_chats_go_on(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    await _malformed_alert(pool)
    await pool.execute("UPDATE notifications SET attempts = 4 WHERE dedupe_key = 'broken'")
    await NotificationRepo(pool).add(GROUP, NoticeKind.MESSAGE, "fine", payload={"html": "hi"})
    box = Outbox(bot, pool, settings())
    with caplog.at_level(logging.WARNING, logger="bot.outbox"):
        await box.deliver_due()  # one round: the broken row must not stop it
    assert [c.params["chat_id"] for c in fake_tg.sent("sendMessage")] == [GROUP]
    sent, given_up, attempts, error, due_in = await _state(pool, "broken")
    assert (sent, given_up, attempts) == (False, False, 5)
    assert error == "KeyError: 'event_id'"
    assert due_in > 10  # backed off like a 5xx: 16 s (20 % either way) after the 5th try
    [warning] = [r for r in caplog.records if r.name == "bot.outbox"]
    assert warning.getMessage() == "notification failed unexpectedly; will retry"
    assert warning.exc_info is not None  # a bug: its traceback is in the log

    await box.deliver_due()  # not due yet: nothing happens
    assert (await _state(pool, "broken"))[2] == 5


async def test_a_row_that_keeps_failing_unexpectedly_is_given_up_with_the_reason_logged(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    await _malformed_alert(pool)
    await pool.execute("UPDATE notifications SET attempts = $1 WHERE dedupe_key = 'broken'",
                       outbox_module.MAX_ATTEMPTS - 1)  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="bot.outbox"):
        await Outbox(bot, pool, settings()).deliver_due()
    sent, given_up, attempts, error, _ = await _state(pool, "broken")
    assert (sent, given_up, attempts) == (False, True, outbox_module.MAX_ATTEMPTS)
    assert error == "KeyError: 'event_id'"
    [record] = caplog.records
    assert record.getMessage() == "notification given up"
    assert record.__dict__["error"] == "KeyError: 'event_id'"
    assert fake_tg.calls == []


@pytest.mark.parametrize(("status", "expected"), [(409, "TelegramConflictError"),
                                                  (418, "TelegramAPIError")])  # fmt: skip
async def test_an_unexpected_telegram_answer_is_retried_later_not_given_up(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, status: int, expected: str
) -> None:
    await NotificationRepo(pool).add(ALICE, NoticeKind.MESSAGE, "hello", payload={"html": "hi"})
    await pool.execute("UPDATE notifications SET attempts = 4")
    fake_tg.fail_next("sendMessage", status=status, description="Conflict: something odd")
    box = Outbox(bot, pool, settings())
    await box.deliver_due()
    sent, given_up, attempts, error, due_in = await _state(pool, "hello")
    assert (sent, given_up, attempts) == (False, False, 5)
    assert error is not None
    assert error.startswith(f"{expected}: ")
    assert due_in > 10  # backed off like a 5xx
    await pool.execute("UPDATE notifications SET next_attempt_at = now()")  # skip the back-off
    await box.deliver_due()
    assert (await _state(pool, "hello"))[:3] == (True, False, 6)


async def test_a_document_telegram_finds_too_large_is_given_up_at_once(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    await NotificationRepo(pool).add(ALICE, NoticeKind.MESSAGE, "big", payload={"html": "hi"})
    fake_tg.fail_next("sendMessage", status=413, description="Request Entity Too Large")
    await Outbox(bot, pool, settings()).deliver_due()
    sent, given_up, attempts, error, _ = await _state(pool, "big")
    assert (sent, given_up, attempts) == (False, True, 1)  # not 30 tries as a network error
    assert error is not None
    assert error.startswith("TelegramEntityTooLarge: ")


async def test_a_refused_bot_token_pauses_the_whole_outbox_loudly_and_gives_up_nothing(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    rows = NotificationRepo(pool)
    await rows.add(ALICE, NoticeKind.MESSAGE, "to-alice", payload={"html": "hello alice"})
    await rows.add(GROUP, NoticeKind.MESSAGE, "to-group", payload={"html": "hello group"})
    fake_tg.fail_next("sendMessage", status=401, description="Unauthorized", times=2)
    now = [1000.0]
    box = Outbox(bot, pool, settings(), clock=lambda: now[0])
    with caplog.at_level(logging.CRITICAL, logger="bot.outbox"):
        pause = await box.deliver_due()
    assert pause == UNAUTHORIZED_PAUSE
    assert len(fake_tg.calls_of("sendMessage")) == 1  # the other chat was not tried in vain
    [record] = caplog.records
    assert "refused the bot token" in record.getMessage()
    for key in ("to-alice", "to-group"):
        assert (await _state(pool, key))[:3] == (False, False, 0)  # nothing counted

    now[0] += 30
    assert await box.deliver_due() == UNAUTHORIZED_PAUSE - 30  # still paused: no call made
    assert len(fake_tg.calls_of("sendMessage")) == 1
    now[0] += 30
    assert await box.deliver_due() == 2 * UNAUTHORIZED_PAUSE  # refused again: a longer pause
    now[0] += 2 * UNAUTHORIZED_PAUSE
    await box.deliver_due()  # the token works again
    await box.deliver_due()
    texts = sorted(c.params["text"] for c in fake_tg.sent("sendMessage"))
    assert texts == ["hello alice", "hello group"]
