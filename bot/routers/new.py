"""/new: a guided dialog (repo → text → mode → flow → budget → confirm), or one line.

The dialog's state lives in PostgreSQL (bot/dialogs.py), so it survives a restart. The
message carrying the dialog's buttons becomes the task's status card on confirm.
"""

from __future__ import annotations

from decimal import Decimal

from aiogram import F, Router
from aiogram.enums import ParseMode
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot import actions, event_texts, keyboards, new_texts, texts
from bot.actions import UserError
from bot.callbacks import NewStep
from bot.deps import BotDeps, Operator
from bot.replies import not_modified_is_fine
from storage.errors import NotFound
from storage.repos import Repo, RepoRepo
from storage.tasks import NewTask

HTML = ParseMode.HTML
TITLE_LIMIT = 200
MODES = ("autonomous", "interactive")


class NewTaskForm(StatesGroup):
    repo = State()
    text = State()
    mode = State()
    flow = State()
    budget = State()
    confirm = State()


def supported_flows(repo: Repo) -> tuple[str, ...]:
    """Delivery flows offered for this repo: every repo can take all three (a `local` repo's
    PR is its pushed branch); a missing forge token fails the task before any work."""
    del repo
    return ("patch", "pr", "direct")


def split_text(text: str) -> tuple[str, str]:
    """First line is the title (clipped), the rest the description; a long title is kept
    whole at the top of the description."""
    first, _, rest = text.strip().partition("\n")
    first, rest = first.strip(), rest.strip()
    if not first:
        raise UserError("The task needs a title on its first line.")
    if len(first) > TITLE_LIMIT:
        return event_texts.clip(first, TITLE_LIMIT), f"{first}\n\n{rest}".strip()
    return first, rest


def _where(message: Message) -> tuple[int, int | None]:
    return message.chat.id, message.message_thread_id if message.is_topic_message else None


async def _create(card: Message, deps: BotDeps, operator: Operator, data: dict[str, str]) -> None:
    """`card` (a message of the bot's) becomes the task's status card."""
    chat_id, thread_id = _where(card)
    budget = Decimal(data["budget"]) if data.get("budget") else None
    new = NewTask(
        repo_id=int(data["repo_id"]),
        title=data["title"],
        description=data["description"],
        mode=data.get("mode", "autonomous"),
        git_flow=data.get("flow", "patch"),
        max_cost_usd=budget,
        max_wall_seconds=int(data["wall"]) if data.get("wall") else None,
        created_by=operator.label,
        chat_id=chat_id,
        thread_id=thread_id,
        message_id=card.message_id,
    )
    task = await actions.create(deps.pool, new)
    text = await actions.card_text(deps.pool, task)
    with not_modified_is_fine():  # the outbox may have shown the card already
        await card.edit_text(text, parse_mode=HTML, reply_markup=keyboards.task_card(task))


# -- one line: /new REPO title, description on the next lines --------------------------------


async def cmd_new_line(
    message: Message, command: CommandObject, deps: BotDeps, operator: Operator, state: FSMContext
) -> None:
    await state.clear()
    head, _, body = (command.args or "").partition("\n")
    name, _, title = head.strip().partition(" ")
    if not title.strip():
        raise UserError(new_texts.NEW_USAGE)
    repo = await actions.repo_by_name(deps.pool, name)
    title, description = split_text(f"{title}\n{body}")
    card = await message.answer("🕓 Creating the task…")
    data = {"repo_id": str(repo.id), "title": title, "description": description}
    await _create(card, deps, operator, data)


# -- the guided dialog ---------------------------------------------------------------------


async def cmd_new(message: Message, deps: BotDeps, state: FSMContext) -> None:
    repos = [r for r in await RepoRepo(deps.pool).all() if r.active]
    if not repos:
        await message.answer(new_texts.NO_REPOS, parse_mode=HTML)
        return
    await state.clear()
    if len(repos) == 1:  # nothing to choose
        await state.set_state(NewTaskForm.text)
        await state.update_data(repo_id=str(repos[0].id), repo=repos[0].name)
        await message.answer(
            new_texts.NEW_ASK_TEXT.format(repo=texts.esc(repos[0].name)), parse_mode=HTML
        )
        return
    await state.set_state(NewTaskForm.repo)
    await message.answer(
        new_texts.NEW_PICK_REPO, parse_mode=HTML, reply_markup=keyboards.pick_repo(repos)
    )


async def _picked_repo(deps: BotDeps, value: str) -> Repo:
    """The active repository a button names; a forged or stale button is told so."""
    repo_id = int(value) if value.isascii() and value.isdigit() else 0
    try:
        repo = await RepoRepo(deps.pool).by_id(repo_id) if 0 < repo_id < 2**63 else None
    except NotFound:
        repo = None
    if repo is None or not repo.active:
        raise UserError(texts.STALE_BUTTON)
    return repo


async def cb_repo(
    query: CallbackQuery, callback_data: NewStep, deps: BotDeps, state: FSMContext
) -> None:
    repo = await _picked_repo(deps, callback_data.value)
    await state.update_data(repo_id=str(repo.id), repo=repo.name)
    await state.set_state(NewTaskForm.text)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(
            new_texts.NEW_ASK_TEXT.format(repo=texts.esc(repo.name)), parse_mode=HTML
        )


async def got_text(message: Message, state: FSMContext) -> None:
    title, description = split_text(message.text or "")
    await state.update_data(title=title, description=description)
    await state.set_state(NewTaskForm.mode)
    await message.answer(
        new_texts.NEW_PICK_MODE, parse_mode=HTML, reply_markup=keyboards.pick_mode()
    )


async def got_no_text(message: Message) -> None:
    await message.answer("Please send the task as text: the title on the first line.")


async def cb_mode(
    query: CallbackQuery, callback_data: NewStep, deps: BotDeps, state: FSMContext
) -> None:
    if callback_data.value not in MODES:  # a forged button
        await query.answer("Unknown choice.", show_alert=True)
        return
    data = await state.update_data(mode=callback_data.value)
    repo = await RepoRepo(deps.pool).by_id(int(data["repo_id"]))
    await state.set_state(NewTaskForm.flow)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(
            new_texts.new_flow(supported_flows(repo), repo),
            parse_mode=HTML,
            reply_markup=keyboards.pick_flow(supported_flows(repo)),
        )


async def cb_flow(query: CallbackQuery, callback_data: NewStep, state: FSMContext) -> None:
    if callback_data.value not in new_texts.FLOW_NAMES:  # a forged button
        await query.answer("Unknown choice.", show_alert=True)
        return
    await state.update_data(flow=callback_data.value)
    await state.set_state(NewTaskForm.budget)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(
            new_texts.NEW_PICK_BUDGET, parse_mode=HTML, reply_markup=keyboards.pick_budget()
        )


async def cb_budget(query: CallbackQuery, callback_data: NewStep, state: FSMContext) -> None:
    cost, wall, label = keyboards.BUDGET_PRESETS.get(callback_data.value, ("", 0, "default"))
    data = await state.update_data(budget=cost, wall=str(wall or ""), budget_label=label)
    await state.set_state(NewTaskForm.confirm)
    await query.answer()
    if isinstance(query.message, Message):
        summary = new_texts.new_summary(data)
        await query.message.edit_text(summary, parse_mode=HTML, reply_markup=keyboards.confirm())


async def cb_confirm(
    query: CallbackQuery,
    callback_data: NewStep,
    deps: BotDeps,
    operator: Operator,
    state: FSMContext,
) -> None:
    data = await state.get_data()
    current = await state.get_state()
    await state.clear()
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if callback_data.value != "yes" or current != NewTaskForm.confirm.state:
        await query.message.edit_text(new_texts.NEW_CANCELLED)
        return
    await query.message.edit_text("🕓 Creating the task…")
    await _create(query.message, deps, operator, data)


async def cb_stale(query: CallbackQuery) -> None:
    """A button of a dialog that is over (or of another step)."""
    await query.answer(new_texts.NEW_EXPIRED, show_alert=True)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_new_line, Command("new"), F.text.regexp(r"^/new(@\w+)?[ \t]+\S"))
    router.message.register(cmd_new, Command("new"))
    router.callback_query.register(cb_repo, NewStep.filter(F.field == "repo"), NewTaskForm.repo)
    router.message.register(got_text, NewTaskForm.text, F.text, ~F.text.startswith("/"))
    router.message.register(got_no_text, NewTaskForm.text, ~F.text)
    router.callback_query.register(cb_mode, NewStep.filter(F.field == "mode"), NewTaskForm.mode)
    router.callback_query.register(cb_flow, NewStep.filter(F.field == "flow"), NewTaskForm.flow)
    router.callback_query.register(
        cb_budget, NewStep.filter(F.field == "budget"), NewTaskForm.budget
    )
    router.callback_query.register(cb_confirm, NewStep.filter(F.field == "confirm"), NewTaskForm())
    router.callback_query.register(cb_stale, NewStep.filter())
    return router
