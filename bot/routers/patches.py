"""A patch series sent or forwarded to the bot (.mbox, .patch, or a .zip of them): it is read
and checked (bot/series.py), shown (commits, authors, diffstat) with an **Apply to …**
button per active repository, and a button makes it a task of kind `apply` (worker/apply.py).

Between the preview and the button, the chat remembers only where the file is on Telegram
(its file_id, in `bot_dialogs` under DESTINY, the last PENDING_KEPT series): the button
downloads and checks it again, and the task and its `source` artifact commit together.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ParseMode
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot import actions, keyboards, patch_texts, series
from bot.actions import UserError
from bot.callbacks import ApplyAction
from bot.deps import BotDeps, Operator
from bot.replies import not_modified_is_fine
from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.db import Executor
from storage.dialogs import DialogKey, DialogRepo
from storage.errors import NotFound
from storage.repos import Repo, RepoRepo
from storage.tasks import NewTask, Task
from worker.queue import submit_task

HTML = ParseMode.HTML
DESTINY = "patches"  # the bot_dialogs slot of a chat's series (aiogram's FSM uses "default")
PENDING_KEPT = 10
SOURCE_FILE = "source.mbox"  # the `source` artifact worker/apply.py applies
FLOW = "pr"  # an applied series is delivered as a pull request (a plain repo: the branch)

_applying: set[tuple[int, str, int]] = set()  # (chat, series, repo) being made a task now


def _dialog(bot: Bot, chat_id: int) -> DialogKey:
    """One slot per chat: anyone allowed in it may press the buttons."""
    return DialogKey(bot.id, chat_id, 0, 0, DESTINY)


def _entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in data.get("series", []) if isinstance(e, dict)]


def _buttons(found: series.Series, repos: list[Repo]) -> InlineKeyboardMarkup | None:
    if not repos:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
        text=f"➡️ Apply to {repo.name}",
        callback_data=ApplyAction(series=found.id, repo_id=repo.id).pack(),
    )] for repo in repos])  # fmt: skip


async def _remember(
    db: Executor, key: DialogKey, found: series.Series, file: dict[str, Any]
) -> None:
    dialogs = DialogRepo(db)
    entries = _entries(await dialogs.data(key))
    earlier = next((e for e in entries if e.get("id") == found.id), None)
    applied = earlier.get("applied", {}) if earlier else {}
    entries = [e for e in entries if e.get("id") != found.id]
    entries.append({"id": found.id, **file, "applied": applied})
    await dialogs.set_data(key, {"series": entries[-PENDING_KEPT:]})


async def on_document(message: Message, bot: Bot, deps: BotDeps) -> None:
    document = message.document
    if document is None:
        return
    name = document.file_name or "file"
    if not series.accepted(name):
        await message.answer(patch_texts.WRONG_KIND, parse_mode=HTML)
        return
    data = await series.download(bot, document.file_id, name, size=document.file_size)
    found = await series.read_series(name, data)
    repos = [r for r in await RepoRepo(deps.pool).all() if r.active]
    if repos:
        file = {"file_id": document.file_id, "name": name, "size": len(data)}
        await _remember(deps.pool, _dialog(bot, message.chat.id), found, file)
    await message.answer(patch_texts.preview(found, repos), parse_mode=HTML,
                         reply_markup=_buttons(found, repos))  # fmt: skip


async def cb_apply(
    query: CallbackQuery, callback_data: ApplyAction, bot: Bot, deps: BotDeps, operator: Operator
) -> None:
    message = query.message
    if not isinstance(message, Message):
        raise UserError(patch_texts.STALE)
    key = _dialog(bot, message.chat.id)
    entry = next((e for e in _entries(await DialogRepo(deps.pool).data(key))
                  if e.get("id") == callback_data.series), None)  # fmt: skip
    if entry is None:
        raise UserError(patch_texts.STALE)
    repo = await _active_repo(deps, callback_data.repo_id)
    if done := entry.get("applied", {}).get(str(repo.id)):
        await query.answer(patch_texts.applied_already(repo, done), show_alert=True)
        return
    busy = (message.chat.id, callback_data.series, repo.id)
    if busy in _applying:  # pressed again while the first press is at work
        await query.answer()
        return
    _applying.add(busy)
    try:
        name = str(entry["name"])
        data = await series.download(bot, str(entry["file_id"]), name, size=entry.get("size"))
        found = await series.read_series(name, data)
        if found.id != callback_data.series:
            raise UserError(patch_texts.CHANGED)
        card = await message.answer(patch_texts.CREATING)
        task = await _submit(deps, key, found, repo, operator=operator, card=card)
    finally:
        _applying.discard(busy)
    await query.answer(patch_texts.queued(repo, task.key))
    text = await actions.card_text(deps.pool, task)
    with not_modified_is_fine():  # the outbox may have shown the card already
        await card.edit_text(text, parse_mode=HTML, reply_markup=keyboards.task_card(task))


async def _active_repo(deps: BotDeps, repo_id: int) -> Repo:
    try:
        repo = await RepoRepo(deps.pool).by_id(repo_id)
    except NotFound:
        raise UserError(patch_texts.STALE) from None
    if not repo.active:
        raise UserError(patch_texts.STALE)
    return repo


async def _submit(
    deps: BotDeps, key: DialogKey, found: series.Series, repo: Repo, *, operator: Operator,
    card: Message,
) -> Task:  # fmt: skip
    """The task, its series and the chat's note that it was applied: one transaction."""
    new = NewTask(
        repo_id=repo.id, title=patch_texts.title(found), description=patch_texts.description(found),
        kind="apply", git_flow=FLOW, created_by=operator.label, chat_id=card.chat.id,
        thread_id=card.message_thread_id if card.is_topic_message else None,
        message_id=card.message_id,
    )  # fmt: skip
    async with deps.pool.acquire() as conn, conn.transaction():
        task = await submit_task(conn, new)
        await ArtifactRepo(conn).put(task.id, ArtifactKind.SOURCE, SOURCE_FILE, found.mbox)
        dialogs = DialogRepo(conn)
        entries = _entries(await dialogs.data(key))
        for entry in entries:
            if entry.get("id") == found.id:
                entry["applied"] = {**entry.get("applied", {}), str(repo.id): task.key}
        await dialogs.set_data(key, {"series": entries})
    return task


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_document, F.document)
    router.callback_query.register(cb_apply, ApplyAction.filter())
    return router
