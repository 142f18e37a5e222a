"""10,000 generated updates (tests/bot/fuzz_updates.py) through the real dispatcher, against
the fake Bot API and a database with repos, tasks in many statuses, ideas, a night and a plan
waiting for review.

For every update: nothing escapes `feed_update`, nothing is logged at ERROR, and the bot
makes no call Telegram would refuse (the `fake_tg` fixture checks its violations). A stranger's
update makes no call at all, and a batch of strangers' updates leaves every table as it was.
Alice's updates may change things, but only plausibly: new tasks are hers and no more than her
updates that could create one. The seed is FUZZ_SEED (default below) and every failure names
it, so a failing run can be repeated: FUZZ_SEED=<seed> pytest tests/bot/test_fuzz.py.
The last test pins the exact answers to NUL characters and to task keys with path tricks.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram import Bot, Dispatcher

from bot import texts
from bot.app import build_dispatcher
from bot.outbox import Outbox
from storage.ideas import IdeaRepo
from storage.nights import NightRepo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from tests.bot.fuzz_updates import GROUP, JSON, Fuzzer, Targets
from tests.bot.updates import as_update, message_update
from tests.bot.world import ALICE, Pool, add_repo, add_task, make_deps, settings
from tests.fakes.telegram import FakeTelegram
from worker import night

SEED = int(os.environ.get("FUZZ_SEED", "20251125"))
BATCH = 2500  # updates per batch; two batches per test, two tests: 10,000 in all
REFRESH_EVERY = 200  # updates between looks at what exists now (new tasks, ideas)
ALICE_LABEL = "Ada Lovelace (1001)"
MBOX = (b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        b"From: Eve <eve@example.com>\nSubject: [PATCH] Escape\n\n---\n"
        b"diff --git a/../../x b/../../x\nnew file mode 100644\n--- /dev/null\n"
        b"+++ b/../../x\n@@ -0,0 +1 @@\n+owned\n")  # fmt: skip


async def _world(pool: Pool, fake: FakeTelegram) -> tuple[Targets, list[dict[str, Any]]]:
    """Repos (one inactive), tasks in many statuses, a plan waiting, ideas (one deleted, one
    converted), a night; and a few files a user could send that the bot can download."""
    shop, web = await add_repo(pool, "shop"), await add_repo(pool, "web", key_prefix="WEB")
    old = await add_repo(pool, "old")
    await pool.execute("UPDATE repos SET active = false WHERE id = $1", old.id)
    tasks = [await add_task(pool, shop, status=s) for s in
             (None, TaskStatus.RUNNING, TaskStatus.FAILED, TaskStatus.DONE)]  # fmt: skip
    tasks.append(await add_task(pool, web, "In the group", chat_id=GROUP, thread_id=7))
    tasks += [await _moved(pool, await add_task(pool, shop), to) for to in
              (TaskStatus.BLOCKED, TaskStatus.CANCELLED, TaskStatus.AWAITING_APPROVAL)]  # fmt: skip
    ideas = IdeaRepo(pool)
    folder = await ideas.add_folder(None, "Later", created_by=ALICE)
    kept = await ideas.add(folder.id, "Dark mode", "for the page", created_by=ALICE)
    gone = await ideas.add(None, "Gone", "", created_by=ALICE)
    await ideas.delete(gone.id)
    converted = await ideas.add(None, "Done already", "", created_by=ALICE)
    await ideas.set_task(converted.id, tasks[0].id)
    ends = tasks[0].created_at.replace(year=2999)
    async with pool.acquire() as conn, conn.transaction():
        started = await NightRepo(conn).start(chat_id=ALICE, thread_id=None, by=ALICE_LABEL,
                                              ends_at=ends)  # fmt: skip
        await night.begin(conn, started)
    documents = [fake.add_file(data, name) for name, data in (
        ("garbage.patch", random.Random(SEED).randbytes(3000)), ("traversal.mbox", MBOX),
        ("0001-x.patch", MBOX.replace(b"../../x", b"ok.txt")), ("e.zip", b"PK\x03\x04junk"),
    )]  # fmt: skip
    targets = Targets(repo_ids=[shop.id, web.id, old.id], repo_names=["shop", "web", "old"],
                      idea_ids=[folder.id, kept.id, gone.id, converted.id])  # fmt: skip
    await _refresh(pool, targets)
    return targets, documents


async def _moved(pool: Pool, task: Task, to: TaskStatus) -> Task:
    async with pool.acquire() as conn, conn.transaction():
        task = await record_move(conn, task, TaskStatus.PREPARING)
        if to is TaskStatus.AWAITING_APPROVAL:
            task = await TaskRepo(conn).set_plan(task.id, {"ok": True, "summary": "<b>plan</b>",
                                                           "steps": ["one"]})  # fmt: skip
            task = await record_move(conn, task, TaskStatus.PLANNING)
            await TaskEventRepo(conn).add(task.id, EventKind.PLAN_PENDING, {"round": 1})
        return await record_move(conn, task, to, reason="fuzz world")


async def _refresh(pool: Pool, targets: Targets) -> None:
    rows = await pool.fetch("SELECT id, key, plan_round FROM tasks ORDER BY id")
    targets.task_ids = [r["id"] for r in rows]
    targets.keys = [r["key"] for r in rows]
    targets.plans = [(r["id"], r["plan_round"]) for r in rows if r["plan_round"]]
    ideas = await pool.fetch("SELECT id FROM ideas")
    targets.idea_ids = sorted({*targets.idea_ids, *(r["id"] for r in ideas)})


async def _snapshot(pool: Pool) -> dict[str, list[str]]:
    """Every table of the database, row by row, as text."""
    tables = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    snapshot = {}
    for table in sorted(r["tablename"] for r in tables):
        query = f'SELECT row_to_json(t)::text AS row FROM "{table}" t'  # noqa: S608  # a catalog name
        snapshot[table] = sorted(r["row"] for r in await pool.fetch(query))
    return snapshot


@dataclass
class Fuzz:
    bot: Bot
    fake: FakeTelegram
    pool: Pool
    dispatcher: Dispatcher
    fuzzer: Fuzzer
    seed: int
    caplog: pytest.LogCaptureFixture

    async def feed(
        self, count: int, *, strangers: float, first: Sequence[JSON] = (), outbox: bool = False
    ) -> None:
        """`count` updates (`first` among them), a share `strangers` of the others from
        strangers; fails naming the seed and the update when one raises, logs an error, or
        (a stranger's) made a call to Telegram. With `outbox`, what the updates caused is
        delivered now and then: cards and alerts with hostile titles, and their buttons."""
        rng = self.fuzzer.rng
        box = Outbox(self.bot, self.pool, settings())
        for number in range(count):
            if number % REFRESH_EVERY == 0:
                await _refresh(self.pool, self.fuzzer.targets)
                for _ in range(3 if outbox else 0):
                    await box.deliver_due()
            stranger = number >= len(first) and rng.random() < strangers
            raw = first[number] if number < len(first) else self.fuzzer.update(stranger=stranger)
            where = f"FUZZ_SEED={self.seed}, update {number}: {raw!r:.1500}"
            assert not (problems := self.fake.spec.check_object("Update", raw)), problems
            calls, logged = len(self.fake.calls), len(self.caplog.records)
            try:
                await self.dispatcher.feed_update(self.bot, as_update(raw, self.bot))
            except Exception as exc:
                raise AssertionError(f"feed_update raised: {where}") from exc
            errors = [r for r in self.caplog.records[logged:] if r.levelno >= logging.ERROR]
            assert not errors, f"{errors[0].getMessage()}: {where}"
            if stranger:
                made = [str(c) for c in self.fake.calls[calls:]]
                assert not made, f"a stranger got an answer: {where}\n{made}"

    def check(self) -> None:
        errors = [f"{r.name}: {r.getMessage()}" for r in self.caplog.records
                  if r.levelno >= logging.ERROR]  # fmt: skip
        assert not errors, f"FUZZ_SEED={self.seed}: errors logged:\n" + "\n".join(errors[:20])
        assert not self.fake.violations, f"FUZZ_SEED={self.seed}: {self.fake.violations[:20]}"


@pytest.fixture
async def fuzz(
    request: pytest.FixtureRequest, bot: Bot, fake_tg: FakeTelegram, pool: Pool,
    caplog: pytest.LogCaptureFixture,
) -> Fuzz:  # fmt: skip
    caplog.set_level(logging.WARNING)
    seed = SEED + int(request.param)
    targets, documents = await _world(pool, fake_tg)
    fuzzer = Fuzzer(random.Random(seed), targets, fake_tg, documents)
    return Fuzz(bot, fake_tg, pool, build_dispatcher(make_deps(pool)), fuzzer, seed, caplog)


@pytest.mark.parametrize("fuzz", [0, 1], indirect=True)
async def test_fuzzed_updates_break_nothing_and_strangers_change_nothing(fuzz: Fuzz) -> None:
    pool = fuzz.pool
    last_task = await pool.fetchval("SELECT max(id) FROM tasks")
    await fuzz.feed(BATCH, strangers=0.3, first=fuzz.fuzzer.corpus(), outbox=True)
    fuzz.check()
    new_tasks = await pool.fetch("SELECT key, created_by FROM tasks WHERE id > $1", last_task)
    assert len(new_tasks) <= fuzz.fuzzer.counted.creating, f"FUZZ_SEED={fuzz.seed}"
    assert {r["created_by"] for r in new_tasks} <= {ALICE_LABEL}, f"FUZZ_SEED={fuzz.seed}"
    actors = await pool.fetch("SELECT DISTINCT payload->>'user_id' AS who FROM task_events "
                              "WHERE kind = 'operator_action'")  # fmt: skip
    assert {r["who"] for r in actors} <= {str(ALICE)}, f"FUZZ_SEED={fuzz.seed}"

    before = await _snapshot(pool)  # Alice left dialogs half done: strangers may not go on
    await fuzz.feed(BATCH, strangers=1.0)
    fuzz.check()
    after = await _snapshot(pool)
    changed = [table for table in before if before[table] != after[table]]
    assert not changed, f"FUZZ_SEED={fuzz.seed}: strangers changed {changed}"


async def test_nul_and_keys_with_path_tricks_are_answered_and_change_nothing(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    dispatcher = build_dispatcher(make_deps(pool))
    await add_task(pool, await add_repo(pool))
    before = await _snapshot(pool)

    async def say(text: str) -> str:
        await dispatcher.feed_update(bot, as_update(message_update(text, user_id=ALICE), bot))
        return str(fake_tg.last("sendMessage").params["text"])

    for text in ("/new shop Fix\0it", "/idea a\0b", "/task SHOP-1\0", "/budget SHOP-1 cost \0"):
        assert await say(text) == texts.NUL_REFUSED
    for key in ("../../etc/passwd", "SHOP-1/../../x", "SHOP-99999999999999999999", "$(id)"):
        for command in ("task", "cancel", "retry", "log", "budget"):
            assert await say(f"/{command} {key}") == texts.unknown_task(key), (command, key)
    assert await _snapshot(pool) == before
