"""How long the bot takes to answer a command when the database holds many tasks.

Fills a fresh database with N tasks (default 10,000) and 20 events each, then sends each
command R times through the real dispatcher (middleware, routers, FSM storage in
PostgreSQL) to the fake Bot API over HTTP on 127.0.0.1, and prints p50/p95/max of the time
from the update entering the dispatcher to the bot's first Bot API call being received.

    .venv/bin/python bench/bot_commands.py [--tasks 10000] [--repeat 30]

Uses DATABASE_URL when set, else the embedded PostgreSQL under $TMPDIR.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import build_dispatcher
from bot.deps import BotDeps
from bot.settings import BotSettings
from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from storage.migrate import apply_all
from tests.bot.updates import as_update, message_update
from tests.fakes.telegram import TEST_TOKEN, FakeTelegram

USER = 1001
FILL = """
    INSERT INTO tasks (key, repo_id, title, description, status, chat_id, created_by,
                       started_at, finished_at)
    SELECT 'SHOP-' || n, $1, 'Task number ' || n, repeat('words ', 50),
           (ARRAY['done', 'failed', 'cancelled', 'queued', 'running'])[1 + n % 5], $2, 'bench',
           now() - interval '1 hour', CASE WHEN n % 5 < 3 THEN now() END
      FROM generate_series(1, $3) AS n
"""
EVENTS = """
    INSERT INTO task_events (task_id, kind, payload)
    SELECT t.id, 'agent_started', jsonb_build_object('attempt', e)
      FROM tasks t CROSS JOIN generate_series(1, 20) AS e
"""


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL") or start_embedded(
        Path(tempfile.gettempdir()) / f"devserver-bench-pg-{os.getuid()}"
    )
    name = f"bench_bot_{uuid.uuid4().hex[:8]}"
    await admin_execute(base, f'CREATE DATABASE "{name}"')
    dsn = with_db(base, name)
    try:
        await apply_all(dsn)
        await _run(dsn, args.tasks, args.repeat)
    finally:
        await admin_execute(base, f'DROP DATABASE "{name}" WITH (FORCE)')


async def _run(dsn: str, tasks: int, repeat: int) -> None:
    pool = await create_pool(dsn, max_size=8)
    repo = await pool.fetchval(
        "INSERT INTO repos (name, key_prefix, source, default_branch, task_seq)"
        " VALUES ('shop', 'SHOP', '/tmp/none', 'main', $1) RETURNING id",
        tasks,
    )
    started = time.perf_counter()
    await pool.execute(FILL, repo, USER, tasks)
    await pool.execute(EVENTS)
    await pool.execute("ANALYZE")
    print(f"filled {tasks} tasks, {tasks * 20} events in {time.perf_counter() - started:.1f}s")

    fake = FakeTelegram()
    server = TestServer(fake.make_app(), host="127.0.0.1")
    await server.start_server()
    api = TelegramAPIServer.from_base(str(server.make_url("")).rstrip("/"))
    bot = Bot(TEST_TOKEN, session=AiohttpSession(api=api))
    settings = BotSettings(bot_token=TEST_TOKEN, allowed_users=frozenset({USER}))
    dp = build_dispatcher(BotDeps(pool=pool, settings=settings))
    middle = tasks // 2
    commands = ["/start", "/tasks", "/tasks failed", "/status", f"/task SHOP-{middle}",
                f"/log SHOP-{middle}", "/repos", "/new shop A new task\nwith a body"]  # fmt: skip
    print(f"{'command':<24} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    try:
        for command in commands:
            times = []
            for _ in range(repeat):
                before = len(fake.calls)
                t0 = time.perf_counter()
                task = asyncio.create_task(
                    dp.feed_update(bot, as_update(message_update(command, user_id=USER), bot))
                )
                while len(fake.calls) == before:  # the first Bot API call of the answer
                    await asyncio.sleep(0.0005)
                times.append((time.perf_counter() - t0) * 1000)
                await task
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            label = command.splitlines()[0]
            print(f"{label:<24} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}")
    finally:
        await bot.session.close()
        await server.close()
        await pool.close()
    assert not fake.violations, fake.violations


if __name__ == "__main__":
    asyncio.run(main())
