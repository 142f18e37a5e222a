"""The daily report: its figures (storage/reports.py), its text, and its trip through the
outbox to each chat, once a day however often (and by however many workers) it runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from aiogram import Bot

from bot.outbox import Outbox
from bot.report_texts import daily_report
from storage.notifications import NotificationRepo
from storage.reports import DailyReport, Failure, ReportTask, summarise
from storage.repos import Repo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import Task
from tests.bot.world import ALICE, Pool, add_repo, add_task, settings
from tests.fakes.telegram import FakeTelegram
from worker.schedules import Housekeeping
from worker.settings import WorkerSettings
from worker.workspace import Workspace

GROUP = -100123
NOON = datetime(2025, 3, 4, 8, 0, tzinfo=UTC)


def _row(key: str, status: TaskStatus, **fields: object) -> ReportTask:
    values: dict[str, object] = {"reason": "", "cost": Decimal(0), "cost_unknown": False,
                                 "chat_id": ALICE, "ended": True, "error_class": None}  # fmt: skip
    return ReportTask(key, status, **(values | fields))  # type: ignore[arg-type]


def test_failures_are_grouped_by_class_else_by_the_start_of_the_reason() -> None:
    rows = [
        _row("A-1", TaskStatus.DONE, cost=Decimal("1.25")),
        _row("A-2", TaskStatus.FAILED, error_class="pytest"),
        _row("A-3", TaskStatus.FAILED, error_class="pytest"),
        _row("A-4", TaskStatus.FAILED, reason="internal error: KeyError: 'x'"),
        _row("A-5", TaskStatus.BLOCKED, reason="budget"),
        _row("A-6", TaskStatus.RUNNING, ended=False, cost=Decimal("0.5"), cost_unknown=True),
        _row("A-7", TaskStatus.CANCELLED),
    ]
    report = summarise(rows, NOON - timedelta(days=1), NOON)
    assert (report.done, report.failed, report.blocked, report.cancelled, report.still_open) == (
        1, 3, 1, 1, 1,
    )  # fmt: skip
    assert (report.cost, report.cost_unknown) == (Decimal("1.75"), True)
    assert report.failures == (
        Failure("pytest", 2, ("A-2", "A-3")), Failure("internal error", 1, ("A-4",)),
    )  # fmt: skip
    assert DailyReport.from_payload(report.to_payload()) == report


def test_the_report_text_has_the_counts_the_cost_and_the_top_failures_escaped() -> None:
    report = DailyReport(
        NOON - timedelta(days=1), NOON, done=3, failed=7, blocked=1, cancelled=0, still_open=2,
        cost=Decimal("4.5"), cost_unknown=False,
        failures=(Failure("check <lint> failed", 7, ("W-1", "W-2", "W-3", "W-4", "W-5")),),
    )  # fmt: skip
    assert daily_report(report).split("\n") == [
        "📊 <b>Daily report</b>: the 24 h to 2025-03-04 08:00 UTC",
        "✅ 3 done · ❌ 7 failed · ⛔ 1 blocked · 🚫 0 cancelled",
        "Still open (created in that time): 2 · Cost: $4.50",
        "<b>Top failures</b>",
        "• check &lt;lint&gt; failed (7): W-1, W-2, W-3, W-4, W-5 and 2 more",
    ]


async def _ended(pool: Pool, repo: Repo, to: TaskStatus, *, chat_id: int | None = ALICE,
                 reason: str = "", cost: str = "0") -> Task:  # fmt: skip
    task = await add_task(pool, repo, chat_id=chat_id)
    await pool.execute("UPDATE tasks SET spent_cost_usd = $2 WHERE id = $1", task.id, Decimal(cost))
    async with pool.acquire() as conn, conn.transaction():
        delivering = [TaskStatus.DELIVERING] if to is TaskStatus.DONE else []
        for step in [TaskStatus.PREPARING, TaskStatus.RUNNING, *delivering, to]:
            task = await record_move(conn, task, step, reason=reason if step is to else "")
    return task


def _housekeeping(pool: Pool, tmp_path: Path, **worker: object) -> Housekeeping:
    return Housekeeping(pool, Workspace(tmp_path / "ws"), tmp_path / "maps",
                        WorkerSettings(**worker))  # type: ignore[arg-type]  # fmt: skip


async def _deliver(bot: Bot, pool: Pool) -> None:
    box = Outbox(bot, pool, settings())
    for _ in range(50):
        await box.deliver_due()
        if await NotificationRepo(pool).pending_count() == 0:
            return
    raise AssertionError("outbox did not drain")


async def test_each_chat_gets_its_report_once_a_day_even_from_two_workers(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path
) -> None:
    repo = await add_repo(pool)
    await _ended(pool, repo, TaskStatus.DONE, cost="1.50")
    await _ended(pool, repo, TaskStatus.FAILED, reason="internal error: boom")
    classified = await _ended(pool, repo, TaskStatus.FAILED, reason="check test failed")
    await TaskEventRepo(pool).add(classified.id, EventKind.ERROR_CLASSIFIED, {"key": "pytest"})
    await _ended(pool, repo, TaskStatus.BLOCKED, chat_id=GROUP, reason="budget")
    await _ended(pool, repo, TaskStatus.DONE, chat_id=None)  # from the CLI: no chat to tell
    old = await _ended(pool, repo, TaskStatus.FAILED, reason="long ago")
    await pool.execute("UPDATE tasks SET finished_at = now() - interval '2 days', "
                       "created_at = now() - interval '3 days' WHERE id = $1", old.id)  # fmt: skip
    await pool.execute("UPDATE notifications SET sent_at = now()")  # the tasks' own messages

    first, second = _housekeeping(pool, tmp_path), _housekeeping(pool, tmp_path)
    sent = await asyncio.gather(first.daily_report(), second.daily_report())
    assert sorted(sent[0] + sent[1]) == [GROUP, ALICE]  # each chat by one of them
    assert await first.daily_report() == []  # a rerun the same day adds nothing

    await _deliver(bot, pool)
    texts = {int(c.params["chat_id"]): c.params["text"] for c in fake_tg.sent("sendMessage")}
    assert set(texts) == {ALICE, GROUP}
    alice = texts[ALICE].split("\n")
    assert alice[0].startswith("📊 <b>Daily report</b>: the 24 h to ")
    assert alice[1:] == [
        "✅ 1 done · ❌ 2 failed · ⛔ 0 blocked · 🚫 0 cancelled",
        "Still open (created in that time): 0 · Cost: $1.50",
        "<b>Top failures</b>",
        "• internal error (1): SHOP-2",
        "• pytest (1): SHOP-3",
    ]
    assert "⛔ 1 blocked" in texts[GROUP]
    assert "Top failures" not in texts[GROUP]


async def test_a_report_chat_gets_one_report_of_all_tasks(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path
) -> None:
    repo = await add_repo(pool)
    await _ended(pool, repo, TaskStatus.DONE)
    await _ended(pool, repo, TaskStatus.DONE, chat_id=GROUP)
    await _ended(pool, repo, TaskStatus.DONE, chat_id=None)
    running = await add_task(pool, repo, chat_id=None, status=TaskStatus.RUNNING)
    await pool.execute("UPDATE notifications SET sent_at = now()")
    housekeeping = _housekeeping(pool, tmp_path, report_chat_id=-500)
    assert await housekeeping.daily_report() == [-500]
    await _deliver(bot, pool)
    [message] = fake_tg.sent("sendMessage")
    assert int(message.params["chat_id"]) == -500
    assert "✅ 3 done" in message.params["text"]
    assert "Still open (created in that time): 1" in message.params["text"]
    assert running.status is TaskStatus.RUNNING


async def test_no_tasks_no_report(pool: Pool, tmp_path: Path) -> None:
    assert await _housekeeping(pool, tmp_path).daily_report() == []
