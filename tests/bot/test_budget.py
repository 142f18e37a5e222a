"""Budgets from Telegram: /budget shows and changes limits; Extend buttons raise them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiogram import Bot

from bot.app import build_dispatcher
from bot.outbox import Outbox
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from tests.bot.updates import as_update, callback_update, message_update
from tests.bot.world import ALICE, Pool, add_repo, add_task, make_deps, settings
from tests.fakes.telegram import FakeTelegram


async def _say(bot: Bot, pool: Pool, text: str) -> None:
    update = as_update(message_update(text, user_id=ALICE), bot)
    await build_dispatcher(make_deps(pool)).feed_update(bot, update)


async def _limited(pool: Pool) -> Task:
    task = await add_task(pool, await add_repo(pool), status=TaskStatus.RUNNING)
    return await TaskRepo(pool).set_budget(
        task.id, cost_usd=Decimal("2.00"), wall_seconds=600, turns=40
    )


def _buttons(params: dict[str, Any]) -> list[tuple[str, str]]:
    rows = params["reply_markup"]["inline_keyboard"]
    return [(b["text"], b["callback_data"]) for row in rows for b in row]


async def _deliver(bot: Bot, pool: Pool) -> None:
    box = Outbox(bot, pool, settings())
    for _ in range(5):
        await box.deliver_due()


async def test_budget_shows_and_changes_limits(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    task = await add_task(pool, await add_repo(pool))
    await _say(bot, pool, f"/budget {task.key}")
    assert "Cost: $0.00 (no limit of its own)" in fake_tg.last("sendMessage").params["text"]
    await _say(bot, pool, f"/budget {task.key} cost $5.50")
    await _say(bot, pool, f"/budget {task.key} wall 45m")
    await _say(bot, pool, f"/budget {task.key} turns 80")
    changed = await TaskRepo(pool).by_id(task.id)
    assert (changed.max_cost_usd, changed.max_wall_seconds, changed.max_turns) == (
        Decimal("5.50"), 2700, 80
    )  # fmt: skip
    text = fake_tg.last("sendMessage").params["text"]
    assert "Cost: $0.00 of $5.50" in text
    assert "Wall time: 0m 00s of 45m 00s" in text
    await _say(bot, pool, f"/budget {task.key} cost off")
    assert (await TaskRepo(pool).by_id(task.id)).max_cost_usd is None
    for bad in ("cost -1", "cost lots", "wall 9999h", "turns 0", "speed 5", "cost"):
        await _say(bot, pool, f"/budget {task.key} {bad}")
        assert "Usage" in fake_tg.last("sendMessage").params["text"]
    actions = [e.payload["action"] for e in await TaskEventRepo(pool).for_task(task.id)
               if e.kind is EventKind.OPERATOR_ACTION]  # fmt: skip
    assert actions == ["budget_set_cost", "budget_set_wall", "budget_set_turns", "budget_set_cost"]


async def test_a_warning_offers_extend_and_it_raises_every_limit(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    task = await _limited(pool)
    await TaskEventRepo(pool).add(task.id, EventKind.BUDGET_WARNING, {"limit": "cost"})
    await _deliver(bot, pool)
    warning = fake_tg.last("sendMessage")
    assert "80% of its cost limit" in warning.params["text"]
    buttons = _buttons(warning.params)
    assert [text for text, _ in buttons] == ["Extend +50%", "Extend +100%"]
    update = callback_update(buttons[0][1], user_id=ALICE, message=fake_tg.add_message(ALICE, "w"))
    await build_dispatcher(make_deps(pool)).feed_update(bot, as_update(update, bot))
    raised = await TaskRepo(pool).by_id(task.id)
    assert (raised.max_cost_usd, raised.max_wall_seconds, raised.max_turns) == (
        Decimal("3.00"), 900, 60
    )  # fmt: skip
    assert raised.status is TaskStatus.RUNNING  # extend alone does not touch the run


async def test_a_task_stopped_by_its_budget_offers_extend_and_resume(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    task = await _limited(pool)
    async with pool.acquire() as conn, conn.transaction():
        task = await record_move(conn, task, TaskStatus.BLOCKED, reason="cost limit $2.00 reached",
                                 budget_exceeded={"limit": "cost"})  # fmt: skip
    await _deliver(bot, pool)
    stopped = next(c for c in fake_tg.sent("sendMessage") if "Stopped at its budget" in
                   c.params["text"])  # fmt: skip
    buttons = _buttons(stopped.params)
    assert [text for text, _ in buttons] == [
        "Extend 50% & resume", "Extend 100% & resume", "🚫 Cancel"
    ]  # fmt: skip
    update = callback_update(buttons[1][1], user_id=ALICE, message=fake_tg.add_message(ALICE, "s"))
    await build_dispatcher(make_deps(pool)).feed_update(bot, as_update(update, bot))
    resumed = await TaskRepo(pool).by_id(task.id)
    assert resumed.status is TaskStatus.QUEUED
    assert resumed.max_cost_usd == Decimal("4.00")
    assert "queued again" in fake_tg.last("sendMessage").params["text"]


async def test_with_a_subscription_the_cost_is_unknown_not_zero(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    task = await add_task(pool, await add_repo(pool))
    await TaskRepo(pool).add_spend(task.id, wall_seconds=12.0, turns=3, cost_unknown=True)
    await _say(bot, pool, f"/budget {task.key}")
    assert "Cost: unknown (subscription)" in fake_tg.last("sendMessage").params["text"]
    await _say(bot, pool, f"/task {task.key}")
    assert "Cost: unknown (subscription)" in fake_tg.last("sendMessage").params["text"]
