"""A whole user journey: the real bot (long polling, outbox) and the real worker, against the
fake Bot API: /new in Telegram → card edited while it runs → done → the mbox applies."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path

from storage.errors import NotFound
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.bot.updates import message_update
from tests.bot.world import ALICE, MALLORY, Pool, add_repo, bot_and_worker
from tests.fakes.telegram import FakeTelegram
from tests.gitrepos import apply_mbox, make_repo
from tests.procs import wait_gone
from tests.worker.running import hang_agent, wait_pids, wait_until
from worker.settings import WorkerSettings

AGENT = Path(__file__).resolve().parents[1] / "fakes" / "agents" / "pipeline_agent.py"
PY = shlex.quote(sys.executable)


async def test_new_task_in_telegram_comes_back_as_an_mbox_that_applies(
    fake_tg: FakeTelegram, tg_url: str, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "up", {"README.md": "# Shop\n"})
    await add_repo(pool, "shop", str(upstream), agent_backend="command",
                   agent_command=f"{PY} {shlex.quote(str(AGENT))} {{prompt}} write",
                   test_command="test -f hello.txt")  # fmt: skip
    async with bot_and_worker(tg_url, db_dsn, tmp_path / "home", WorkerSettings(concurrency=1)):
        commands = (await fake_tg.wait_for("setMyCommands"))[0].params["commands"]
        assert {c["command"] for c in commands} >= {"new", "tasks", "cancel", "pause"}
        fake_tg.push_update(message_update("/new shop steal the secrets", user_id=MALLORY))
        fake_tg.push_update(message_update(
            "/new shop Greet <everyone> & all\nWrite hello.txt, mention it in README.",
            user_id=ALICE))  # fmt: skip
        document = (await fake_tg.wait_for("sendDocument", timeout=60))[0]
        await fake_tg.wait_for("sendMessage", where=lambda c: "Done" in c.params["text"])

    task = await TaskRepo(pool).by_key("SHOP-1")
    assert task.status is TaskStatus.DONE
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1  # the stranger made nothing
    assert all(c.params.get("chat_id") != MALLORY for c in fake_tg.calls)
    card = next(m for m in fake_tg.messages(ALICE) if m["message_id"] == task.message_id)
    assert "Greet <everyone> & all" in card["text"]
    assert "Status: done" in card["text"]
    edits = [
        c for c in fake_tg.sent("editMessageText") if c.params["message_id"] == task.message_id
    ]
    assert len(edits) >= 2  # created → … → done, edited in place
    loud = [c.params["text"] for c in fake_tg.sent("sendMessage")
            if "disable_notification" not in c.params]  # fmt: skip
    assert loud[0] == "🕓 Creating the task…"  # no apology: nothing went wrong on the way
    assert [text.splitlines()[1] for text in loud[1:]] == ["Done. 1 commit(s) ready as patches"]

    name, content = document.files["document"]
    assert name == "SHOP-1.mbox"
    assert "git am --3way SHOP-1.mbox" in document.params["caption"]
    clone = apply_mbox(upstream, content, tmp_path / "mine")
    assert (clone / "hello.txt").read_text() == "hello from the agent\n"


async def test_cancel_and_pause_from_telegram_reach_the_running_worker(
    fake_tg: FakeTelegram, tg_url: str, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "up", {"README.md": "# Shop\n"})
    pids = tmp_path / "pids"
    await add_repo(pool, "shop", str(upstream), agent_backend="command",
                   agent_command=hang_agent(pids, "--write", "partial.txt"))  # fmt: skip
    tasks = TaskRepo(pool)
    async with bot_and_worker(
        tg_url, db_dsn, tmp_path / "home", WorkerSettings(concurrency=2, recheck_seconds=0.5)
    ):
        fake_tg.push_update(message_update("/new shop Never ends", user_id=ALICE))
        await wait_until(lambda: _status(pool, "SHOP-1", TaskStatus.RUNNING), "running", 30)
        agent_pids = await wait_pids(pids)
        fake_tg.push_update(message_update("/cancel SHOP-1", user_id=ALICE))
        document = (await fake_tg.wait_for("sendDocument", timeout=30))[0]  # the partial work
        assert (await tasks.by_key("SHOP-1")).status is TaskStatus.CANCELLED
        for pid in agent_pids:
            assert await wait_gone(pid)
        assert b"partial work" in document.files["document"][1]

        fake_tg.push_update(message_update("/pause", user_id=ALICE))
        await fake_tg.wait_for("sendMessage", where=lambda c: "Paused" in c.params["text"])
        await asyncio.sleep(1.0)  # the worker's re-check interval, twice over
        pids.unlink()
        fake_tg.push_update(message_update("/new shop Waits for resume", user_id=ALICE))
        await wait_until(lambda: _status(pool, "SHOP-2", TaskStatus.QUEUED), "queued", 30)
        await asyncio.sleep(1.5)  # a worker taking jobs would have started it by now
        assert (await tasks.by_key("SHOP-2")).status is TaskStatus.QUEUED
        fake_tg.push_update(message_update("/resume", user_id=ALICE))
        await wait_until(lambda: _status(pool, "SHOP-2", TaskStatus.RUNNING), "resumed", 30)
        fake_tg.push_update(message_update("/cancel SHOP-2", user_id=ALICE))
        await wait_until(lambda: _status(pool, "SHOP-2", TaskStatus.CANCELLED), "cancelled", 30)
    cancelled = await tasks.by_key("SHOP-1")
    assert cancelled.status_reason == "cancelled by Ada Lovelace (1001)"
    alert = next(c for c in fake_tg.sent("sendMessage") if "Cancelled" in c.params["text"])
    assert "agent/SHOP-1" in alert.params["text"]  # where the partial work is


async def _status(pool: Pool, key: str, status: TaskStatus) -> bool:
    try:
        return (await TaskRepo(pool).by_key(key)).status is status
    except NotFound:  # not created yet
        return False
