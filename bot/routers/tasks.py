"""/tasks, /task, /cancel, /retry, /log and the buttons on task cards."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ParseMode
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, InaccessibleMessage, Message

from bot import actions, keyboards, new_texts, texts
from bot.actions import UserError
from bot.callbacks import TaskAction, TaskOpen, TaskPage
from bot.deps import BotDeps, Operator
from bot.mbox import mbox_stats
from bot.notices import DOCUMENT_LIMIT
from bot.replies import not_modified_is_fine
from storage.artifacts import ArtifactRepo
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo

HTML = ParseMode.HTML
PAGE_SIZE = 8


def _key(command: CommandObject, usage: str) -> str:
    key = (command.args or "").strip()
    if not key or len(key.split()) != 1:
        raise UserError(texts.usage(command.command, usage))
    return key


def _status(text: str | None) -> TaskStatus | None:
    if not text:
        return None
    try:
        return TaskStatus(text.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in TaskStatus)
        raise UserError(f"Unknown status. Use one of: {texts.esc(names)}") from None


async def _send_card(message: Message, deps: BotDeps, task: Task) -> None:
    await message.answer(
        await actions.card_text(deps.pool, task),
        parse_mode=HTML,
        reply_markup=keyboards.task_card(task),
    )


async def _send_log(message: Message, deps: BotDeps, task: Task) -> None:
    """Short logs inline; long ones as a file (the message keeps the tail)."""
    text = await actions.log_text(deps.pool, task)
    if len(texts.pre(text, limit=10**9)) <= texts.MESSAGE_LIMIT:
        await message.answer(texts.pre(text), parse_mode=HTML)
        return
    document = BufferedInputFile(text.encode(), filename=f"{task.key}-log.txt")
    await message.answer_document(document, caption=texts.pre(text, limit=900), parse_mode=HTML)


async def _send_patches(message: Message, deps: BotDeps, task: Task) -> None:
    """As the task's end sent them: the whole series with its summary and the command that
    applies it, or (over Telegram's limit) one numbered patch per commit, or a link."""
    found = await actions.series(deps.pool, task, limit=DOCUMENT_LIMIT)
    if not found.size:
        await message.answer(texts.no_patches(task), parse_mode=HTML)
        return
    if not found.files:
        text = texts.too_big(task, found.size, deps.settings.status_page_url)
        await message.answer(text, parse_mode=HTML)
        return
    artifacts = ArtifactRepo(deps.pool)
    for number, stored in enumerate(found.files, 1):
        content = await artifacts.content(task.id, stored)
        name = f"{task.key}.mbox" if found.whole else stored
        if found.whole:
            caption = texts.mbox_caption(task, mbox_stats(content), name)
        else:
            caption = texts.split_patch_caption(task, number, len(found.files))
        document = BufferedInputFile(content, filename=name)
        await message.answer_document(document, caption=caption, parse_mode=HTML)


async def _page(deps: BotDeps, status: str, before: int | None) -> tuple[str, keyboards.Markup]:
    parsed = _status(status)
    statuses = None if parsed is None else [parsed]
    tasks = await TaskRepo(deps.pool).page(statuses=statuses, before_id=before, limit=PAGE_SIZE + 1)
    shown = tasks[:PAGE_SIZE]
    text = texts.task_list(shown, status or None)
    return text, keyboards.task_page(shown, status, has_more=len(tasks) > PAGE_SIZE)


async def cmd_tasks(message: Message, command: CommandObject, deps: BotDeps) -> None:
    status = (command.args or "").strip().lower()
    text, markup = await _page(deps, status, None)
    await message.answer(text, parse_mode=HTML, reply_markup=markup)


async def cb_tasks_page(query: CallbackQuery, callback_data: TaskPage, deps: BotDeps) -> None:
    text, markup = await _page(deps, callback_data.status, callback_data.before)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(text, parse_mode=HTML, reply_markup=markup)


async def cmd_task(message: Message, command: CommandObject, deps: BotDeps) -> None:
    task = await actions.task_by_key(deps.pool, _key(command, "KEY"))
    await _send_card(message, deps, task)


async def cb_task_open(query: CallbackQuery, callback_data: TaskOpen, deps: BotDeps) -> None:
    task = await actions.task_by_id(deps.pool, callback_data.task_id)
    await query.answer()
    if isinstance(query.message, Message):
        await _send_card(query.message, deps, task)


async def cmd_cancel(
    message: Message, command: CommandObject, deps: BotDeps, operator: Operator, state: FSMContext
) -> None:
    if not (command.args or "").strip() and await state.get_state() is not None:
        await state.clear()  # plain /cancel inside a dialog ends the dialog
        await message.answer(new_texts.NEW_CANCELLED)
        return
    task = await actions.task_by_key(deps.pool, _key(command, "KEY"))
    task = await actions.cancel(deps.pool, task.id, operator, via="command")
    done = task.status == TaskStatus.CANCELLED
    await message.answer(
        texts.cancelled(task) if done else texts.cancel_requested(task), parse_mode=HTML
    )


async def cmd_retry(
    message: Message, command: CommandObject, deps: BotDeps, operator: Operator
) -> None:
    task = await actions.task_by_key(deps.pool, _key(command, "KEY"))
    task = await actions.retry(deps.pool, task.id, operator, via="command")
    await message.answer(texts.retried(task), parse_mode=HTML)


async def cmd_log(message: Message, command: CommandObject, deps: BotDeps) -> None:
    task = await actions.task_by_key(deps.pool, _key(command, "KEY"))
    await _send_log(message, deps, task)


async def cb_task_action(
    query: CallbackQuery, callback_data: TaskAction, deps: BotDeps, operator: Operator
) -> None:
    task = await actions.task_by_id(deps.pool, callback_data.task_id)
    message = query.message
    match callback_data.action:
        case "cancel":
            task = await actions.cancel(deps.pool, task.id, operator, via="button")
            done = task.status == TaskStatus.CANCELLED
            await query.answer(
                texts.plain(texts.cancelled(task) if done else texts.cancel_requested(task))
            )
        case "retry":
            task = await actions.retry(deps.pool, task.id, operator, via="button")
            await query.answer(texts.plain(texts.retried(task)))
        case "log":
            await query.answer()
            if isinstance(message, Message):
                await _send_log(message, deps, task)
            return
        case "patches":
            await query.answer()
            if isinstance(message, Message):
                await _send_patches(message, deps, task)
            return
        case "refresh":
            await query.answer()
    if message is not None and not isinstance(message, InaccessibleMessage):
        await _refresh(message, deps, task)


async def _refresh(message: Message, deps: BotDeps, task: Task) -> None:
    """Edit the card the button sits on to show the task as it is now."""
    task = await TaskRepo(deps.pool).by_id(task.id)
    text = await actions.card_text(deps.pool, task)
    with not_modified_is_fine():
        await message.edit_text(text, parse_mode=HTML, reply_markup=keyboards.task_card(task))


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_tasks, Command("tasks"))
    router.callback_query.register(cb_tasks_page, TaskPage.filter())
    router.message.register(cmd_task, Command("task"))
    router.callback_query.register(cb_task_open, TaskOpen.filter())
    router.message.register(cmd_cancel, Command("cancel"))
    router.message.register(cmd_retry, Command("retry"))
    router.message.register(cmd_log, Command("log"))
    router.callback_query.register(cb_task_action, TaskAction.filter())
    return router
