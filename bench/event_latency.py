"""Event latency: a task event written -> the Telegram call it causes reaches the Bot API,
and -> the task page's SSE stream delivers it; the same events, side by side.

Runs the real bot (`python -m devserver bot`, long polling and its outbox) against the fake
Bot API of the tests (tests/fakes/telegram.py, in this process, which stamps each call on
arrival), and the real status page (`python -m devserver web`) with one SSE client on the
task's page. Then it writes N events one by one with TaskEventRepo.add, as the worker does
(event and outbox rows in one statement, NOTIFY at commit), a random 20-60 ms apart.

Each event is a `verify_failed` whose step name is unique, so the task card the bot edits
says which event it shows ("check s123 failed"). A card edit covers every event written
before the bot looked, so an event's Telegram latency is the arrival of the first call
showing it or a later event (the edit that made it visible). The clock starts at add()'s
call (the NOTIFY can beat add()'s own answer). Pacing is off (TELEGRAM_PRIVATE_CHAT_INTERVAL
=0): in production Telegram's one-message-a-second per chat spaces the edits, by design.

    .venv/bin/python bench/event_latency.py [--events 1000] [--dsn DSN]

Goal: p50 < 50 ms and p99 < 200 ms on both paths.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from web_clients import SseStream, percentile
from web_status import machine, web_process

from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from storage.migrate import apply_all
from storage.repos import NewRepo, RepoRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.tasks import NewTask
from tests.fakes.telegram import TEST_TOKEN, Call, FakeTelegram
from worker.queue import submit_task

CHAT = 4242
MARK = re.compile(r"check s(\d+) failed")


class StampedTelegram(FakeTelegram):
    """The fake Bot API, noting when each call arrived (perf_counter)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[tuple[float, Call]] = []

    async def _handle(self, request: web.Request) -> web.Response:
        at, index = time.perf_counter(), len(self.calls)  # _handle appends the call first
        response = await super()._handle(request)
        self.arrived.append((at, self.calls[index]))
        return response


@contextlib.asynccontextmanager
async def fake_bot_api() -> AsyncIterator[tuple[StampedTelegram, str]]:
    fake = StampedTelegram()
    runner = web.AppRunner(fake.make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def bot_process(dsn: str, api: str, home: Path) -> AsyncIterator[None]:
    env = {**os.environ, "DATABASE_URL": dsn, "DEVSERVER_HOME": str(home),
           "TELEGRAM_BOT_TOKEN": TEST_TOKEN, "TELEGRAM_ALLOWED_USERS": str(CHAT),
           "TELEGRAM_API_BASE_URL": api, "TELEGRAM_PRIVATE_CHAT_INTERVAL": "0",
           "DEVSERVER_LOG_LEVEL": "WARNING"}  # fmt: skip
    log = (home / "bot.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "devserver", "bot"], env=env, cwd=ROOT,  # noqa: ASYNC220
                               stdout=log, stderr=log)  # fmt: skip
    try:
        yield
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        log.close()


async def until(check: object, seconds: float) -> bool:
    deadline = time.perf_counter() + seconds
    while not check():  # type: ignore[operator]
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def shown(fake: StampedTelegram) -> list[tuple[float, int]]:
    """(arrival, highest event number shown) for every card call that names one."""
    out = []
    for at, call in fake.arrived:
        found = [int(n) for n in MARK.findall(str(call.params.get("text", "")))]
        if call.method in ("editMessageText", "sendMessage") and found:
            out.append((at, max(found)))
    return out


def summary(label: str, values: list[float], lost: int) -> str:
    ordered = sorted(values)
    return (f"| {label} | {len(ordered)} | {percentile(ordered, 50):.1f} | "
            f"{percentile(ordered, 95):.1f} | {percentile(ordered, 99):.1f} | "
            f"{ordered[-1]:.1f} | {lost} |")  # fmt: skip


async def run(dsn: str, count: int, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311  # gaps between events, not secrets
    pool = await create_pool(dsn, max_size=4)
    home = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        repo = await RepoRepo(pool).add(NewRepo(name="latency", source=str(home),
                                                default_branch="main"))  # fmt: skip
        async with pool.acquire() as conn, conn.transaction():
            task = await submit_task(conn, NewTask(repo_id=repo.id, title="Latency probe",
                                                   chat_id=CHAT, created_by="bench"))  # fmt: skip
        async with fake_bot_api() as (fake, api), bot_process(dsn, api, home), \
                web_process(dsn) as (host, port):  # fmt: skip
            if not await until(lambda: fake.sent("sendMessage"), 60):
                raise SystemExit("the bot never sent the task's card:\n" + fake.summary())
            await asyncio.sleep(2)  # the card's first rows settle
            after = await pool.fetchval("SELECT max(id) FROM task_events")
            stream = SseStream(host, port, f"/tasks/{task.key}/live?after={after}")
            await stream.open()
            await asyncio.wait_for(stream.opened.wait(), 10)
            await asyncio.sleep(0.5)
            events, written = TaskEventRepo(pool), []
            for number in range(count):
                payload = {"step": f"s{number}", "exit_code": 1}
                before = time.perf_counter()
                event = await events.add(task.id, EventKind.VERIFY_FAILED, payload)
                written.append((number, event.id, before))
                await asyncio.sleep(rng.uniform(0.02, 0.06))
            await until(lambda: any(n == count - 1 for _, n in shown(fake)), 30)
            await until(lambda: len(stream.messages) >= count, 10)
            await stream.close()
        cards = shown(fake)
        telegram, lost_tg = [], 0
        for number, _, before in written:
            arrival = next((at for at, n in cards if n >= number and at >= before), None)
            if arrival is None:
                lost_tg += 1
            else:
                telegram.append((arrival - before) * 1000)
        seen = {m.event_id: m.at for m in stream.messages if m.event == "timeline"}
        sse = [(seen[eid] - before) * 1000 for _, eid, before in written if eid in seen]
        edits = len(cards)
        print(f"\n# {time.strftime('%Y-%m-%d %H:%M')} · {machine()}")
        print(
            f"\n{count} events, 20-60 ms apart; {edits} card calls covered them "
            f"({count - edits} events folded into a later edit). Milliseconds.\n"
        )
        print("| path | events | p50 | p95 | p99 | max | lost |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print(summary("event -> Telegram call (fake Bot API)", telegram, lost_tg))
        print(summary("event -> SSE message (task page)", sse, count - len(sse)))
        print("\nGoal: p50 < 50 ms, p99 < 200 ms.")
        if fake.violations:
            print("fake Bot API violations:", fake.violations)
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    embedded = Path(tempfile.gettempdir()) / f"devserver-bench-pg-{os.getuid()}"
    base = args.dsn or start_embedded(embedded)
    name = f"bench_latency_{uuid.uuid4().hex[:8]}"
    await admin_execute(base, f'CREATE DATABASE "{name}"')
    dsn = with_db(base, name)
    try:
        await apply_all(dsn)
        await run(dsn, args.events, args.seed)
    finally:
        await admin_execute(base, f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
