"""`devserver bot` as a process against the fake Bot API: answers, and after `kill -9` with
undelivered notifications, a restart delivers each of them exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from storage.task_events import EventKind, TaskEventRepo
from tests.bot.updates import message_update
from tests.bot.world import ALICE, MALLORY, Pool, add_repo, add_task
from tests.fakes.telegram import TEST_TOKEN, FakeTelegram


async def _start(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("a") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devserver", "bot", env=env, stdout=sink, stderr=sink
        )


async def _failed_calls(fake: FakeTelegram, count: int) -> None:
    for _ in range(1000):
        if len([c for c in fake.calls_of("sendMessage") if c.failed]) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(fake.summary())


async def _outbox_empty(pool: Pool) -> None:
    for _ in range(1000):
        if not await pool.fetchval("SELECT count(*) FROM notifications WHERE sent_at IS NULL"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("notifications still undelivered")


def _env(db_dsn: str, tg_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "DEVSERVER_HOME": str(tmp_path / "home"),
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_ALLOWED_USERS": str(ALICE),
        "TELEGRAM_API_BASE_URL": tg_url,
        "TELEGRAM_PRIVATE_CHAT_INTERVAL": "0",
    }


async def test_bot_process_answers_and_a_killed_bot_delivers_everything_once_after_restart(
    fake_tg: FakeTelegram, tg_url: str, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    env, log = _env(db_dsn, tg_url, tmp_path), tmp_path / "bot.log"
    bot = await _start(env, log)
    try:
        fake_tg.push_update(message_update("/start", user_id=MALLORY))
        fake_tg.push_update(message_update("/start", user_id=ALICE))
        await fake_tg.wait_for("sendMessage", timeout=30)
        assert [c.params["chat_id"] for c in fake_tg.sent("sendMessage")] == [ALICE]

        fake_tg.fail_next("sendMessage", status=502, times=1000)  # Telegram goes down …
        repo = await add_repo(pool)
        tasks = [await add_task(pool, repo, f"task {n}") for n in range(3)]
        for task in tasks:
            await TaskEventRepo(pool).add(task.id, EventKind.TASK_FAILED, {"reason": task.title})
        await _failed_calls(fake_tg, 2)  # … it tries, backs off …
    finally:
        bot.send_signal(signal.SIGKILL)  # … and dies without a goodbye
        await bot.wait()
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE sent_at IS NULL AND kind = 'alert'"
        )
        == 3
    )

    fake_tg.clear_failures()  # Telegram is back
    await pool.execute("UPDATE notifications SET next_attempt_at = now()")  # skip the back-off
    bot = await _start(env, log)
    try:
        await _outbox_empty(pool)
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
    finally:
        bot.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bot.wait(), timeout=30) == 0, log.read_text()
    alerts = [c.params["text"] for c in fake_tg.sent("sendMessage") if "Failed" in c.params["text"]]
    assert len(alerts) == 3  # each once
    assert {a.splitlines()[1] for a in alerts} == {f"Failed: task {n}" for n in range(3)}
    cards = [c for c in fake_tg.sent("sendMessage") if c.params.get("disable_notification")]
    assert len(cards) == 3  # one card per task; later progress edits it
    assert "bot stopped" in log.read_text()
    assert TEST_TOKEN not in log.read_text()
