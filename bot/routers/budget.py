"""/budget KEY (show, or change one limit) and the Extend buttons of budget messages."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ParseMode
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot import actions, keyboards, texts
from bot.actions import UserError
from bot.callbacks import BudgetAction
from bot.deps import BotDeps, Operator
from storage.task_status import TaskStatus

HTML = ParseMode.HTML


async def cmd_budget(message: Message, command: CommandObject, deps: BotDeps,
                     operator: Operator) -> None:  # fmt: skip
    words = (command.args or "").split()
    if len(words) not in (1, 3):
        raise UserError(texts.BUDGET_USAGE)
    task = await actions.task_by_key(deps.pool, words[0])
    if len(words) == 3:
        task = await actions.set_limit(deps.pool, task, words[1], words[2], operator)
    resume = task.status is TaskStatus.BLOCKED
    await message.answer(texts.budget(task), parse_mode=HTML,
                         reply_markup=keyboards.budget(task, resume=resume))  # fmt: skip


async def cb_extend(query: CallbackQuery, callback_data: BudgetAction, deps: BotDeps,
                    operator: Operator) -> None:  # fmt: skip
    data = callback_data
    if data.percent not in (50, 100):
        raise UserError(texts.STALE_BUTTON)
    task = await actions.extend_budget(deps.pool, data.task_id, data.percent, operator,
                                       resume=data.resume)  # fmt: skip
    await query.answer(texts.plain(texts.budget_extended(task), 200))
    if isinstance(query.message, Message):
        text = texts.budget_extended(task) + ("\n" + texts.retried(task) if data.resume else "")
        await query.message.answer(text, parse_mode=HTML)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_budget, Command("budget"))
    router.callback_query.register(cb_extend, BudgetAction.filter())
    return router
