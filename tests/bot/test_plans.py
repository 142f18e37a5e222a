"""Plan review from Telegram: the plan message and its buttons, decisions taken once."""

from __future__ import annotations

from typing import Any

from aiogram import Bot

from bot.app import build_dispatcher
from bot.callbacks import PlanAction, PlanDecision
from bot.outbox import Outbox
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from tests.bot.updates import as_update, callback_update, message_update
from tests.bot.world import ALICE, MALLORY, Pool, add_repo, add_task, make_deps, settings
from tests.fakes.telegram import FakeTelegram

PLAN: dict[str, Any] = {
    "ok": True, "summary": "Add a <health> endpoint & its test", "approach": "Small and safe.",
    "steps": ["Add the route", "Add the test"], "files_to_touch": ["app/routes.py", "tests/t.py"],
    "risks": ["none"], "acceptance_check": "GET /health returns 200",
}  # fmt: skip


async def _awaiting(pool: Pool, plan: dict[str, Any]) -> Task:
    """A task whose plan (round 1) waits for a decision, announced by plan_pending."""
    task = await add_task(pool, await add_repo(pool), "Health check")
    task = await TaskRepo(pool).set_plan(task.id, plan)
    async with pool.acquire() as conn, conn.transaction():
        for step in (TaskStatus.PREPARING, TaskStatus.PLANNING, TaskStatus.AWAITING_APPROVAL):
            task = await record_move(conn, task, step)
        await TaskEventRepo(conn).add(task.id, EventKind.PLAN_PENDING, {"round": 1, "ok": True})
    return task


async def _press(bot: Bot, fake: FakeTelegram, pool: Pool, action: PlanDecision, task: Task, *,
                 user: int = ALICE) -> None:  # fmt: skip
    """Press a plan button (round 1) under a plan message of the bot's."""
    data = PlanAction(action=action, task_id=task.id, round=1).pack()
    update = callback_update(data, user_id=user, message=fake.add_message(ALICE, "plan"))
    await build_dispatcher(make_deps(pool)).feed_update(bot, as_update(update, bot))


async def _say(bot: Bot, pool: Pool, text: str) -> None:
    update = message_update(text, user_id=ALICE)
    await build_dispatcher(make_deps(pool)).feed_update(bot, as_update(update, bot))


def _buttons(call_params: dict[str, Any]) -> list[str]:
    return [b["text"] for row in call_params["reply_markup"]["inline_keyboard"] for b in row]


async def test_the_plan_arrives_with_three_buttons_and_approve_counts_once(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    task = await _awaiting(pool, PLAN)
    box = Outbox(bot, pool, settings())
    for _ in range(5):
        await box.deliver_due()
    message = next(c for c in fake_tg.sent("sendMessage") if "Plan, round 1" in c.params["text"])
    text = message.params["text"]
    assert "Add a &lt;health&gt; endpoint &amp; its test" in text
    assert "1. Add the route\n2. Add the test" in text
    assert "<code>app/routes.py</code>" in text
    assert [b.split()[-1] for b in _buttons(message.params)] == ["Approve", "Revise", "Reject"]

    await _press(bot, fake_tg, pool, "approve", task, user=MALLORY)  # a stranger decides nothing
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    await _press(bot, fake_tg, pool, "approve", task)
    approved = await TaskRepo(pool).by_id(task.id)
    assert approved.status is TaskStatus.QUEUED
    assert approved.plan_approved_at is not None
    assert approved.plan_decided_by == "Ada Lovelace (1001)"
    assert "Approved by Ada Lovelace" in fake_tg.last("sendMessage").params["text"]
    await _press(bot, fake_tg, pool, "approve", task)  # a double click
    await _press(bot, fake_tg, pool, "reject", task)  # a stale button
    assert "already decided" in fake_tg.last("answerCallbackQuery").params["text"]
    kinds = [e.kind.value for e in await TaskEventRepo(pool).for_task(task.id)]
    assert kinds.count("plan_approved") == 1
    assert kinds.count("task_queued") == 2  # created, then approved: one implement job
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED


async def test_revise_takes_the_next_message_as_feedback(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    task = await _awaiting(pool, PLAN)
    await _press(bot, fake_tg, pool, "revise", task)
    assert "What should change" in fake_tg.last("sendMessage").params["text"]
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    await _say(bot, pool, "Also log every <request> & keep it small")
    revised = await TaskRepo(pool).by_id(task.id)
    assert revised.status is TaskStatus.QUEUED  # planned again by the worker
    assert revised.plan_feedback == "Also log every <request> & keep it small"
    assert revised.plan_approved_at is None
    assert "planning again" in fake_tg.last("sendMessage").params["text"]


async def test_reject_blocks_the_task(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    task = await _awaiting(pool, PLAN)
    await _press(bot, fake_tg, pool, "reject", task)
    rejected = await TaskRepo(pool).by_id(task.id)
    assert rejected.status is TaskStatus.BLOCKED
    assert rejected.status_reason == "plan rejected by Ada Lovelace (1001)"
    assert rejected.plan_rejected_at is not None
    assert "Rejected" in fake_tg.last("sendMessage").params["text"]


async def test_an_unreadable_plan_offers_replan_and_cannot_be_approved(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    task = await _awaiting(pool, {"ok": False, "error": "no JSON object", "raw": "I think <x>"})
    box = Outbox(bot, pool, settings())
    for _ in range(5):
        await box.deliver_due()
    message = next(c for c in fake_tg.sent("sendMessage") if "Plan, round 1" in c.params["text"])
    assert "could not be read: no JSON object" in message.params["text"]
    assert "I think &lt;x&gt;" in message.params["text"]
    assert [b.split()[-1] for b in _buttons(message.params)] == ["Re-plan", "Reject"]
    await _press(bot, fake_tg, pool, "approve", task)  # a forged button
    assert "nothing to approve" in fake_tg.last("answerCallbackQuery").params["text"]
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.AWAITING_APPROVAL
    await _press(bot, fake_tg, pool, "revise", task)  # Re-plan: no feedback needed
    replanned = await TaskRepo(pool).by_id(task.id)
    assert replanned.status is TaskStatus.QUEUED
    assert replanned.plan_feedback is None
