"""Outbox upkeep (the outbox_upkeep schedule): notifications the bot gave up on during a
Telegram outage go out once it is over; a chat that blocked the bot stays given up; old rows
are deleted. Driven through the real outbox against the fake Bot API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram import Bot

from bot import outbox as outbox_module
from bot.outbox import Outbox
from storage.notifications import NoticeKind, NotificationRepo
from tests.bot.world import ALICE, Pool, settings
from tests.fakes.telegram import FakeTelegram
from worker.schedules import Housekeeping
from worker.settings import WorkerSettings
from worker.workspace import Workspace

GROUP = -100123


def _upkeep(pool: Pool, tmp_path: Path) -> Housekeeping:
    return Housekeeping(pool, Workspace(tmp_path / "ws"), tmp_path / "maps", WorkerSettings())


async def _state(pool: Pool, key: str) -> tuple[bool, bool, int, str | None]:
    row = await pool.fetchrow("SELECT sent_at IS NOT NULL AS sent, given_up_at IS NOT NULL AS "
                              "given_up, attempts, last_error FROM notifications "
                              "WHERE dedupe_key = $1", key)  # fmt: skip
    assert row is not None
    return row["sent"], row["given_up"], row["attempts"], row["last_error"]


async def _round(box: Outbox, pool: Pool) -> None:
    """One delivery round, with any back-off skipped."""
    await pool.execute("UPDATE notifications SET next_attempt_at = now() WHERE sent_at IS NULL")
    await box.deliver_due()


async def test_rows_given_up_in_an_outage_go_out_after_it_and_a_blocked_chat_stays_given_up(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "MAX_ATTEMPTS", 2)  # give up after the second 5xx
    rows = NotificationRepo(pool)
    await rows.add(GROUP, NoticeKind.MESSAGE, "to-group", payload={"html": "hello group"})
    await rows.add(ALICE, NoticeKind.MESSAGE, "to-alice", payload={"html": "hello alice"})
    fake_tg.fail_next("sendMessage", status=403, description="Forbidden: bot was kicked")
    fake_tg.fail_next("sendMessage", status=502, times=10)  # a long outage
    box = Outbox(bot, pool, settings())
    for _ in range(3):
        await _round(box, pool)
    assert await _state(pool, "to-group") == (False, True, 1,
                                              "TelegramForbiddenError: Telegram server says - "
                                              "Forbidden: bot was kicked")  # fmt: skip
    sent, given_up, attempts, error = await _state(pool, "to-alice")
    assert (sent, given_up, attempts) == (False, True, 2)
    assert error is not None
    assert error.startswith("TelegramServerError: ")

    fake_tg.clear_failures()  # Telegram is back
    alice = await pool.fetchval("SELECT id FROM notifications WHERE dedupe_key = 'to-alice'")
    assert await _upkeep(pool, tmp_path).outbox_upkeep() == ([alice], 0)
    await _round(box, pool)
    await _round(box, pool)
    sent_now = [(int(c.params["chat_id"]), c.params["text"]) for c in fake_tg.sent("sendMessage")]
    assert sent_now == [(ALICE, "hello alice")]
    assert (await _state(pool, "to-alice"))[:2] == (True, False)
    assert (await _state(pool, "to-group"))[:2] == (False, True)
    assert await _upkeep(pool, tmp_path).outbox_upkeep() == ([], 0)


async def test_a_revived_row_gets_one_more_try_and_old_ones_none(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path
) -> None:
    rows = NotificationRepo(pool)
    for key in ("recent", "old"):
        row = await rows.add(ALICE, NoticeKind.MESSAGE, key, payload={"html": key})
        assert row is not None
        await rows.give_up(row, "TelegramNetworkError: HTTP Client says - connection reset")
    await pool.execute("UPDATE notifications SET attempts = 29, created_at = now() - "
                       "interval '3 days' WHERE dedupe_key = 'old'")  # fmt: skip
    await pool.execute("UPDATE notifications SET attempts = 29 WHERE dedupe_key = 'recent'")
    recent = await pool.fetchval("SELECT id FROM notifications WHERE dedupe_key = 'recent'")

    fake_tg.fail_next("sendMessage", status=500, times=5)  # still down
    assert (await _upkeep(pool, tmp_path).outbox_upkeep())[0] == [recent]
    await Outbox(bot, pool, settings()).deliver_due()
    assert len(fake_tg.calls_of("sendMessage")) == 1  # one try, and given up again at once
    assert await _state(pool, "recent") == (False, True, 30,
                                            "TelegramServerError: Telegram server says - "
                                            "Internal Server Error")  # fmt: skip
    assert (await _state(pool, "old"))[:3] == (False, True, 29)


async def test_rows_sent_or_given_up_longer_ago_than_the_retention_are_deleted(
    pool: Pool, tmp_path: Path
) -> None:
    rows = NotificationRepo(pool)
    for key in ("sent-old", "sent-new", "given-up-old", "pending-old"):
        await rows.add(ALICE, NoticeKind.MESSAGE, key, payload={"html": key})
    long_ago = datetime.now(UTC) - timedelta(days=15)
    await pool.execute("UPDATE notifications SET sent_at = $1 WHERE dedupe_key = 'sent-old'",
                       long_ago)  # fmt: skip
    await pool.execute("UPDATE notifications SET sent_at = now() WHERE dedupe_key = 'sent-new'")
    await pool.execute("UPDATE notifications SET given_up_at = $1, last_error = 'Forbidden' "
                       "WHERE dedupe_key = 'given-up-old'", long_ago)  # fmt: skip
    await pool.execute("UPDATE notifications SET created_at = $1 WHERE dedupe_key = "
                       "'pending-old'", long_ago)  # fmt: skip
    assert await _upkeep(pool, tmp_path).outbox_upkeep() == ([], 2)
    left = await pool.fetch("SELECT dedupe_key FROM notifications ORDER BY id")
    assert [r["dedupe_key"] for r in left] == ["sent-new", "pending-old"]
