"""Plan review: Approve / Revise / Reject buttons under a plan, and the feedback for Revise
(the person's next message in that chat)."""

from __future__ import annotations

import contextlib

from aiogram import F, Router
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot import actions, plan_texts, texts
from bot.actions import UserError
from bot.callbacks import PlanAction
from bot.deps import BotDeps, Operator
from storage.task_status import TaskStatus

HTML = ParseMode.HTML


class PlanFeedback(StatesGroup):
    waiting = State()


async def cb_plan(query: CallbackQuery, callback_data: PlanAction, deps: BotDeps,
                  operator: Operator, state: FSMContext) -> None:  # fmt: skip
    data = callback_data
    task = await actions.task_by_id(deps.pool, data.task_id)
    current = (task.status is TaskStatus.AWAITING_APPROVAL and task.plan_round == data.round
               and task.plan_decided_by is None)  # fmt: skip
    if data.action == "revise" and current and task.plan and task.plan.get("ok"):
        await state.set_state(PlanFeedback.waiting)
        await state.set_data({"task_id": task.id, "round": data.round})
        await query.answer()
        if isinstance(query.message, Message):
            await query.message.answer(plan_texts.PLAN_ASK_FEEDBACK.format(key=texts.esc(task.key)),
                                       parse_mode=HTML)  # fmt: skip
        return
    task = await actions.decide_plan(deps.pool, data.task_id, data.round, data.action, operator)
    decided = plan_texts.plan_decided(task, data.action, operator.label)
    await query.answer(texts.plain(decided, 200))
    if isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):  # too old to edit: the buttons just stay
            await query.message.edit_reply_markup(reply_markup=None)
        await query.message.answer(plan_texts.plan_decided(task, data.action, operator.label),
                                   parse_mode=HTML)  # fmt: skip


async def got_feedback(message: Message, deps: BotDeps, operator: Operator,
                       state: FSMContext) -> None:  # fmt: skip
    data = await state.get_data()
    await state.clear()
    feedback = (message.text or "").strip()
    if not feedback:
        raise UserError("Please send the feedback as text.")
    task = await actions.decide_plan(deps.pool, int(data["task_id"]), int(data["round"]),
                                     "revise", operator, feedback=feedback)  # fmt: skip
    await message.answer(plan_texts.plan_revising(task), parse_mode=HTML)


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(cb_plan, PlanAction.filter())
    router.message.register(got_feedback, PlanFeedback.waiting, F.text, ~F.text.startswith("/"))
    return router
