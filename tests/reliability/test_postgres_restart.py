"""PostgreSQL restarted under a running worker, bot and web (real `devserver` processes on a
private server): `pg_ctl restart` while an agent runs, then a stop, a few seconds without a
database, and a start. All three carry on: the running task and the ones queued later end
done, every notification is delivered (each patch series once), /healthz answers again, each
LISTEN connection is back, and no process exited.

Each restart comes while the outbox is drained. The outbox is at-least-once: a message that
Telegram accepted just before the database went away cannot be marked sent, and goes out
again once the database is back (a duplicate, as after a kill in that window; see
test_bot_kill.py). That window is not what this test is about.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg

from storage import migrate
from storage.db import create_pool, ensure_database
from storage.outage import is_outage
from storage.tasks import NewTask
from tests.fakes.telegram import FakeTelegram
from tests.gitrepos import make_repo
from tests.reliability.conftest import (
    Service,
    add_repo,
    agent_command,
    bot_env,
    fake_telegram,
    pause,
    services,
    start,
    wait_file,
)
from tests.reliability.postgres import PrivatePostgres, free_port
from tests.worker.running import Pool, wait_until
from worker.queue import submit_task

CHAT = 1001
LISTENERS = {"devserver-worker-queue", "devserver-worker-control", "devserver-web-live"}


async def _query(pool: Pool, sql: str) -> list[asyncpg.Record] | None:
    """The rows, or None while the database is away (our own pool meets the restarts too)."""
    try:
        return await pool.fetch(sql)
    except Exception as exc:
        if is_outage(exc):
            return None
        raise


async def _submit(pool: Pool, repo_id: int, title: str) -> str:
    """Create and queue a task, as the bot does; again if our connection died in a restart."""
    for _ in range(50):
        try:
            async with pool.acquire() as conn:
                new = NewTask(repo_id=repo_id, title=title, chat_id=CHAT)
                return (await submit_task(conn, new)).key
        except Exception as exc:
            if not is_outage(exc):
                raise
        await pause(0.2)
    raise AssertionError("the database did not come back")


async def _all_done(pool: Pool, keys: list[str], running: list[Service]) -> None:
    async def done() -> bool:
        exited = [s.name for s in running if s.process.poll() is not None]
        assert not exited, f"exited: {exited}"
        rows = await _query(pool, "SELECT key, status FROM tasks")
        return rows is not None and {r["key"]: r["status"] for r in rows} == dict.fromkeys(
            keys, "done"
        )

    await wait_until(done, f"{', '.join(keys)} done", within=60)


async def _drained(pool: Pool) -> None:
    """Wait until the bot has delivered every notification written so far."""

    async def drained() -> bool:
        rows = await _query(pool, "SELECT count(*) AS n FROM notifications WHERE sent_at IS NULL")
        return rows is not None and rows[0]["n"] == 0

    await wait_until(drained, "every notification sent", within=60)


async def _healthy(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as response:
            return response.status == 200 and (await response.json())["ok"] is True
    except aiohttp.ClientError:
        return False


async def test_worker_bot_and_web_carry_on_through_postgres_restarts(
    tmp_path: Path, holds: Path
) -> None:
    server = PrivatePostgres()
    try:
        await asyncio.to_thread(server.init)
        await asyncio.to_thread(server.start)
        await ensure_database(server.dsn)
        await migrate.apply_all(server.dsn)
        pool = await create_pool(server.dsn, max_size=3)
        try:
            await _restarts(server, pool, tmp_path, holds)
        finally:
            await pool.close()
    finally:
        await asyncio.to_thread(server.remove)


async def _restarts(server: PrivatePostgres, pool: Pool, tmp_path: Path, holds: Path) -> None:
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})
    repo = await add_repo(pool, upstream, "demo", agent_command(tmp_path / "agents.log", holds))
    fake, web_port = FakeTelegram(), free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    async with fake_telegram(fake) as tg_url:
        env = bot_env(server.dsn, tmp_path / "home", tg_url, users=str(CHAT))
        env.update(WEB_PORT=str(web_port), WORKER_CONCURRENCY="2", WORKER_HEARTBEAT_SECONDS="10")
        worker = start("worker", env, tmp_path / "worker.log")
        bot = start("bot", env, tmp_path / "bot.log")
        web = start("web", env, tmp_path / "web.log")
        with services(worker, bot, web):
            await wait_until(lambda: _healthy(web_url), "/healthz ok", within=30)

            (holds / "running").touch()
            keys = [await _submit(pool, repo.id, "Runs through a restart")]
            await wait_file(holds / "running.seen")  # its agent runs now
            await _drained(pool)
            await asyncio.to_thread(server.restart, "fast")
            (holds / "running").unlink()
            keys += [await _submit(pool, repo.id, f"After the restart {n}") for n in (1, 2)]
            await _all_done(pool, keys, [worker, bot, web])
            await _drained(pool)

            await asyncio.to_thread(server.stop, "fast")
            await pause(4)  # no database at all for a while
            await asyncio.to_thread(server.start)
            keys += [await _submit(pool, repo.id, f"After the outage {n}") for n in (1, 2)]
            await _all_done(pool, keys, [worker, bot, web])

            await _drained(pool)
            await wait_until(lambda: _healthy(web_url), "/healthz ok again", within=30)

            async def listening() -> bool:
                rows = await _query(pool, "SELECT application_name FROM pg_stat_activity")
                names = set() if rows is None else {r["application_name"] for r in rows}
                return names >= LISTENERS

            await wait_until(listening, "every LISTEN connection back", within=30)
            assert [s.process.poll() for s in (worker, bot, web)] == [None] * 3  # none exited
            assert [s.stop() for s in (worker, bot, web)] == [0] * 3, worker.output()

    given_up = "SELECT count(*) FROM notifications WHERE given_up_at IS NOT NULL"
    assert not await pool.fetchval(given_up)
    documents = Counter(c.files["document"][0] for c in fake.sent("sendDocument"))
    assert documents == {f"{key}.mbox": 1 for key in keys}  # each task's patches, once
    assert "queue listener reconnected" in worker.output()
