"""/idea and /ideas: a tree of folders and ideas, browsed with buttons; an idea becomes a task.

The buttons carry what they act on (bot/idea_keyboards.py), so browsing needs no state and
any message's buttons keep working. One thing is kept per chat (and person, and topic): the
current folder, where /idea saves. It is the folder the last listing showed, kept in
`bot_dialogs` under a destiny of its own, so it survives restarts and a /new dialog neither
sees nor clears it. Naming a new folder waits for the next message (IdeaForm).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace

from aiogram import F, Router
from aiogram.enums import ParseMode
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot import idea_keyboards, idea_texts, texts
from bot.actions import UserError
from bot.callbacks import IdeaAction, IdeaConvert
from bot.deps import BotDeps, Operator, Pool
from bot.event_texts import clip
from bot.replies import not_modified_is_fine
from storage.errors import NotFound
from storage.ideas import AlreadyConverted, FolderNotEmpty, Idea, IdeaRepo, InvalidMove
from storage.repos import Repo, RepoRepo
from storage.tasks import NewTask, Task
from worker.queue import submit_task

HTML = ParseMode.HTML
TITLE_LIMIT = 200  # as /new: a longer first line is clipped and kept whole in the body
NAME_LIMIT = 100
PAGE_SIZE = 20  # items on one page of a folder
PICKER_LIMIT = 80  # folders a move picker offers at once (Telegram allows 100 buttons)
PLACE = "ideas"  # the bot_dialogs destiny holding the current folder

View = tuple[str, InlineKeyboardMarkup]


class IdeaForm(StatesGroup):
    folder_name = State()


def split_idea(text: str) -> tuple[str, str, bool]:
    """Title (the first line, clipped), body (the rest), and whether the title was clipped."""
    first, _, rest = text.strip().partition("\n")
    first, rest = first.strip(), rest.strip()
    if not first:
        raise UserError(idea_texts.USAGE)
    if len(first) > TITLE_LIMIT:
        return clip(first, TITLE_LIMIT), f"{first}\n\n{rest}".strip(), True
    return first, rest, False


def folder_name(text: str) -> str:
    """One line: whitespace runs (new lines too) become single spaces; clipped."""
    name = " ".join(text.split())
    if not name:
        raise UserError(idea_texts.NAME_EMPTY)
    return clip(name, NAME_LIMIT)


@contextlib.contextmanager
def _gone() -> Iterator[None]:
    """A missing idea or folder (a stale or forged button) is answered, not an error."""
    try:
        yield
    except NotFound as exc:
        gone = idea_texts.GONE_FOLDER if exc.what == "folder" else idea_texts.GONE_IDEA
        raise UserError(gone) from None


def _id(folder: Idea | None) -> int:
    return 0 if folder is None else folder.id


def _place(state: FSMContext) -> FSMContext:
    return FSMContext(storage=state.storage, key=replace(state.key, destiny=PLACE))


async def _current(ideas: IdeaRepo, state: FSMContext) -> Idea | None:
    """The current folder; None (the root) when none was opened yet or it is gone."""
    folder_id = int((await _place(state).get_data()).get("folder") or 0)
    if not folder_id:
        return None
    try:
        return await ideas.folder(folder_id)
    except NotFound:
        return None


async def _show_folder(
    ideas: IdeaRepo, state: FSMContext, folder_id: int, *, page: int = 0, note: str = ""
) -> View:
    """A folder's listing (0: the root); it becomes the current folder."""
    here = await ideas.folder(folder_id) if folder_id else None
    path = await ideas.path(here.id) if here else []
    children = await ideas.children(here.id if here else None)
    pages = max(1, -(-len(children) // PAGE_SIZE))
    page = min(page, pages - 1)
    shown = children[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    await _place(state).set_data({"folder": _id(here)})
    return (idea_texts.folder(path, children, page=page, pages=pages, note=note),
            idea_keyboards.folder(here, shown, page=page, pages=pages))  # fmt: skip


async def _card(ideas: IdeaRepo, idea_id: int, note: str = "") -> View:
    path = await ideas.path(idea_id)
    idea, parents = path[-1], path[:-1]
    if idea.is_folder:
        raise NotFound("idea", idea_id)
    parent = parents[-1] if parents else None
    return idea_texts.card(idea, parents, note), idea_keyboards.card(idea, parent)


async def _answer(message: Message, view: View) -> None:
    await message.answer(view[0], parse_mode=HTML, reply_markup=view[1])


async def _edit(query: CallbackQuery, view: View) -> None:
    """Show `view` in place of the message the button is on (as a new one if it is too old)."""
    text, markup = view
    message = query.message
    if isinstance(message, Message):
        with not_modified_is_fine():
            await message.edit_text(text, parse_mode=HTML, reply_markup=markup)
    elif message is not None and query.bot is not None:
        await query.bot.send_message(message.chat.id, text, parse_mode=HTML, reply_markup=markup)


# -- commands ------------------------------------------------------------------------------


async def cmd_idea(message: Message, command: CommandObject, deps: BotDeps, operator: Operator,
                   state: FSMContext) -> None:  # fmt: skip
    title, body, clipped = split_idea(command.args or "")
    with _gone():
        async with deps.pool.acquire() as conn, conn.transaction():
            ideas = IdeaRepo(conn)
            here = await _current(ideas, state)
            idea = await ideas.add(here.id if here else None, title, body,
                                   created_by=operator.user_id)  # fmt: skip
            view = await _card(ideas, idea.id, idea_texts.saved(TITLE_LIMIT if clipped else None))
    await _answer(message, view)


async def cmd_ideas(message: Message, deps: BotDeps, state: FSMContext) -> None:
    async with deps.pool.acquire() as conn:
        ideas = IdeaRepo(conn)
        view = await _show_folder(ideas, state, _id(await _current(ideas, state)))
    await _answer(message, view)


async def got_folder_name(message: Message, deps: BotDeps, operator: Operator,
                          state: FSMContext) -> None:  # fmt: skip
    name = folder_name(message.text or "")
    parent_id = int((await state.get_data()).get("parent") or 0) or None
    async with deps.pool.acquire() as conn, conn.transaction():
        ideas = IdeaRepo(conn)
        siblings = await ideas.children(parent_id)
        if any(s.is_folder and s.title.casefold() == name.casefold() for s in siblings):
            raise UserError(idea_texts.duplicate_folder(name))  # the prompt stays: try again
        try:
            await ideas.add_folder(parent_id, name, created_by=operator.user_id)
        except NotFound:
            await state.clear()
            raise UserError(idea_texts.GONE_FOLDER) from None
        view = await _show_folder(ideas, state, parent_id or 0,
                                  note=idea_texts.folder_created(name))  # fmt: skip
    await state.clear()
    await _answer(message, view)


async def got_no_folder_name(message: Message) -> None:
    await message.answer(idea_texts.NAME_AS_TEXT)


async def cmd_cancel_folder(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(idea_texts.NAME_CANCELLED)


# -- browsing ------------------------------------------------------------------------------


async def cb_ls(query: CallbackQuery, callback_data: IdeaAction, deps: BotDeps,
                state: FSMContext) -> None:  # fmt: skip
    with _gone():
        async with deps.pool.acquire() as conn:
            ideas = IdeaRepo(conn)
            view = await _show_folder(ideas, state, callback_data.idea_id, page=callback_data.page)
    await query.answer()
    await _edit(query, view)


async def cb_show(query: CallbackQuery, callback_data: IdeaAction, deps: BotDeps) -> None:
    with _gone():
        view = await _card(IdeaRepo(deps.pool), callback_data.idea_id)
    await query.answer()
    await _edit(query, view)


async def cb_new(query: CallbackQuery, callback_data: IdeaAction, deps: BotDeps,
                 state: FSMContext) -> None:  # fmt: skip
    ideas = IdeaRepo(deps.pool)
    with _gone():
        here = await ideas.folder(callback_data.idea_id) if callback_data.idea_id else None
        path = await ideas.path(here.id) if here else []
    await state.set_state(IdeaForm.folder_name)
    await state.set_data({"parent": _id(here)})
    await query.answer()
    chat_id, thread_id = _where(query)
    if chat_id is not None and query.bot is not None:
        await query.bot.send_message(chat_id, idea_texts.ask_folder_name(path), parse_mode=HTML,
                                     message_thread_id=thread_id)  # fmt: skip


# -- delete and move -----------------------------------------------------------------------


async def cb_del(query: CallbackQuery, callback_data: IdeaAction, deps: BotDeps) -> None:
    ideas = IdeaRepo(deps.pool)
    with _gone():
        item = await ideas.by_id(callback_data.idea_id)
        children = await ideas.children(item.id)
    if children:
        await query.answer(idea_texts.not_empty(item, children), show_alert=True)
        return
    await query.answer()
    await _edit(query, (idea_texts.confirm_delete(item), idea_keyboards.confirm_delete(item)))


async def cb_rm(query: CallbackQuery, callback_data: IdeaAction, deps: BotDeps,
                state: FSMContext) -> None:  # fmt: skip
    with _gone():
        async with deps.pool.acquire() as conn, conn.transaction():
            ideas = IdeaRepo(conn)
            item = await ideas.by_id(callback_data.idea_id)
            try:
                await ideas.delete(item.id)
            except FolderNotEmpty:
                children = await ideas.children(item.id)
                raise UserError(texts.esc(idea_texts.not_empty(item, children))) from None
            note = idea_texts.deleted(item)
            view = await _show_folder(ideas, state, item.parent_id or 0, note=note)
    await query.answer(texts.plain(note, 200))  # an answer holds 200 characters
    await _edit(query, view)


async def cb_mv(query: CallbackQuery, callback_data: IdeaAction, deps: BotDeps) -> None:
    """The move picker: the folders inside folder `arg`, to look into or to move into."""
    ideas = IdeaRepo(deps.pool)
    with _gone():
        path = await ideas.path(callback_data.idea_id)
        item, parents = path[-1], path[:-1]
        browsing = await ideas.folder(callback_data.arg) if callback_data.arg else None
        shown = await ideas.path(browsing.id) if browsing else []
    if any(f.id == item.id for f in shown):  # inside the item itself: start from the root
        browsing, shown = None, []
    children = await ideas.children(browsing.id if browsing else None)
    folders = [c for c in children if c.is_folder and c.id != item.id][:PICKER_LIMIT]
    await query.answer()
    await _edit(query, (idea_texts.move_prompt(item, parents, shown),
                        idea_keyboards.move_picker(item, browsing, folders)))  # fmt: skip


async def cb_mvto(query: CallbackQuery, callback_data: IdeaAction, deps: BotDeps,
                  state: FSMContext) -> None:  # fmt: skip
    target = callback_data.arg or None
    with _gone():
        async with deps.pool.acquire() as conn, conn.transaction():
            ideas = IdeaRepo(conn)
            try:
                item = await ideas.move(callback_data.idea_id, target)
            except InvalidMove:
                raise UserError(idea_texts.INVALID_MOVE) from None
            note = idea_texts.moved(await ideas.path(target) if target else [])
            view = await (_show_folder(ideas, state, item.id, note=note) if item.is_folder
                          else _card(ideas, item.id, note))  # fmt: skip
    await query.answer(texts.plain(note, 200))
    await _edit(query, view)


# -- convert to a task ---------------------------------------------------------------------


def _where(query: CallbackQuery) -> tuple[int | None, int | None]:
    """The chat (and forum topic) the button was pressed in: where the task will report."""
    message = query.message
    if message is None:
        return None, None
    if isinstance(message, Message) and message.is_topic_message:
        return message.chat.id, message.message_thread_id
    return message.chat.id, None


async def convert(pool: Pool, idea_id: int, new: NewTask) -> Task:
    """Create and queue the task (`new` names the idea) and link the idea to it, in one
    transaction: an idea becomes one task, however often its button is pressed."""
    async with pool.acquire() as conn, conn.transaction():
        ideas = IdeaRepo(conn)
        idea = await ideas.by_id(idea_id, for_update=True)
        if idea.task_id is not None:
            raise AlreadyConverted(idea)
        if idea.is_folder:
            raise NotFound("idea", idea_id)
        task = await submit_task(conn, new)
        await ideas.set_task(idea.id, task.id)
    return task


async def cb_convert(query: CallbackQuery, callback_data: IdeaConvert, deps: BotDeps,
                     operator: Operator) -> None:  # fmt: skip
    data, ideas = callback_data, IdeaRepo(deps.pool)
    with _gone():
        idea = await _card_idea(ideas, data.idea_id)
    if idea.task_id is not None:
        await query.answer(texts.plain(idea_texts.already_converted(idea), 200), show_alert=True)
        await _edit(query, await _card(ideas, idea.id))
        return
    repos = [r for r in await RepoRepo(deps.pool).all() if r.active]
    if not repos:
        raise UserError(idea_texts.NO_REPOS)
    if data.repo_id == 0 and len(repos) > 1:
        await query.answer()
        await _edit(query, (idea_texts.pick_repo(idea), idea_keyboards.pick_repo(idea, repos)))
        return
    repo = _pick(repos, data.repo_id)
    if not data.go:
        await query.answer()
        markup = idea_keyboards.convert_options(idea, repo, data.mode, data.flow,
                                                other_repos=len(repos) > 1)  # fmt: skip
        await _edit(query, (idea_texts.convert_options(idea, repo, data.mode, data.flow), markup))
        return
    chat_id, thread_id = _where(query)
    new = NewTask(repo_id=repo.id, title=idea.title, description=idea.body, mode=data.mode,
                  git_flow=data.flow, created_by=operator.label, chat_id=chat_id,
                  thread_id=thread_id, idea_id=idea.id)  # fmt: skip
    try:
        with _gone():
            task = await convert(deps.pool, idea.id, new)
    except AlreadyConverted as exc:
        raise UserError(idea_texts.already_converted(exc.idea)) from None
    with _gone():
        view = await _card(ideas, idea.id, idea_texts.converted(task))
    await query.answer(idea_texts.converted_answer(task))
    await _edit(query, view)


async def _card_idea(ideas: IdeaRepo, idea_id: int) -> Idea:
    idea = await ideas.by_id(idea_id)
    if idea.is_folder:
        raise NotFound("idea", idea_id)
    return idea


def _pick(repos: list[Repo], repo_id: int) -> Repo:
    """The only repository when none was picked yet; else the one picked, if still active."""
    if repo_id == 0:
        return repos[0]
    for repo in repos:
        if repo.id == repo_id:
            return repo
    raise UserError(idea_texts.GONE_REPO)


async def cb_stale(query: CallbackQuery) -> None:
    """A button of ours whose data does not parse: forged, or from an older version."""
    await query.answer(texts.STALE_BUTTON, show_alert=True)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_idea, Command("idea"))
    router.message.register(cmd_ideas, Command("ideas"))
    router.message.register(cmd_cancel_folder, IdeaForm.folder_name, Command("cancel"),
                            F.text.regexp(r"^/cancel(@\w+)?\s*$"))  # fmt: skip
    router.message.register(got_folder_name, IdeaForm.folder_name, F.text,
                            ~F.text.startswith("/"))  # fmt: skip
    router.message.register(got_no_folder_name, IdeaForm.folder_name, ~F.text)
    for action, handler in (("ls", cb_ls), ("show", cb_show), ("new", cb_new), ("del", cb_del),
                            ("rm", cb_rm), ("mv", cb_mv), ("mvto", cb_mvto)):  # fmt: skip
        router.callback_query.register(handler, IdeaAction.filter(F.action == action))
    router.callback_query.register(cb_convert, IdeaConvert.filter())
    router.callback_query.register(cb_stale, F.data.regexp(r"^ic?:"))
    return router
