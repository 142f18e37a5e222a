"""Inline keyboards of the ideas tree; callback data from bot/callbacks.py.

Every button carries what it acts on (idea and folder ids, the choices made so far), so a
button works the same from any message, after any restart.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot import idea_texts as t
from bot.callbacks import IdeaAction, IdeaConvert, IdeaFlow, IdeaMode, IdeaVerb, TaskOpen
from storage.ideas import Idea
from storage.repos import Repo

Button = InlineKeyboardButton
Markup = InlineKeyboardMarkup
DEFAULT_MODE: IdeaMode = "autonomous"
DEFAULT_FLOW: IdeaFlow = "patch"


def _id(folder: Idea | None) -> int:
    return 0 if folder is None else folder.id


def _act(text: str, action: IdeaVerb, idea_id: int, arg: int = 0, page: int = 0) -> Button:
    data = IdeaAction(action=action, idea_id=idea_id, arg=arg, page=page).pack()
    return Button(text=text, callback_data=data)


def _open(idea: Idea) -> Button:
    return _act(t.item_label(idea), "ls" if idea.is_folder else "show", idea.id)


def folder(
    here: Idea | None, shown: Sequence[Idea], *, page: int, pages: int
) -> InlineKeyboardMarkup:
    """One button per item shown, paging, then Up / New folder, and Move / Delete for a
    folder that is not the root."""
    rows = [[_open(child)] for child in shown]
    paging = []
    if page > 0:
        paging.append(_act(t.PREVIOUS, "ls", _id(here), page=page - 1))
    if page + 1 < pages:
        paging.append(_act(t.NEXT, "ls", _id(here), page=page + 1))
    if paging:
        rows.append(paging)
    if here is None:
        rows.append([_act(t.NEW_FOLDER, "new", 0)])
        return Markup(inline_keyboard=rows)
    rows.append([_act(t.UP, "ls", here.parent_id or 0), _act(t.NEW_FOLDER, "new", here.id)])
    rows.append([_act(t.MOVE, "mv", here.id), _act(t.DELETE, "del", here.id)])
    return Markup(inline_keyboard=rows)


def card(idea: Idea, parent: Idea | None) -> InlineKeyboardMarkup:
    """Convert (or the task and Refresh once converted), Move / Delete, back to its folder."""
    if idea.task_id is None:
        first = [Button(text=t.CONVERT, callback_data=IdeaConvert(idea_id=idea.id).pack())]
    else:
        task = Button(text=t.OPEN_TASK.format(key=idea.task_key or "?"),
                      callback_data=TaskOpen(task_id=idea.task_id).pack())  # fmt: skip
        first = [task, _act(t.REFRESH, "show", idea.id)]
    back = _act(t.BACK_TO.format(name=t.folder_name(parent)), "ls", _id(parent))
    return Markup(inline_keyboard=[
        first, [_act(t.MOVE, "mv", idea.id), _act(t.DELETE, "del", idea.id)], [back]
    ])  # fmt: skip


def _back(item: Idea, label: str = t.CANCEL) -> Button:
    """Back to where the item's buttons were: its listing (a folder) or its card."""
    return _act(label, "ls" if item.is_folder else "show", item.id)


def confirm_delete(item: Idea) -> InlineKeyboardMarkup:
    return Markup(inline_keyboard=[[_act(t.CONFIRM_DELETE, "rm", item.id), _back(item, t.KEEP)]])


def move_picker(item: Idea, browsing: Idea | None, folders: Sequence[Idea]) -> InlineKeyboardMarkup:
    """The folders in `browsing` to look into, Up, Move here, Cancel."""
    rows = [[_act(t.OPEN_FOLDER.format(name=f.title[:48]), "mv", item.id, f.id)] for f in folders]
    last = [_act(t.MOVE_HERE, "mvto", item.id, _id(browsing))]
    if browsing is not None:
        last.insert(0, _act(t.UP, "mv", item.id, browsing.parent_id or 0))
    rows += [last, [_back(item)]]
    return Markup(inline_keyboard=rows)


def pick_repo(idea: Idea, repos: Sequence[Repo]) -> InlineKeyboardMarkup:
    rows = [[Button(text=r.name, callback_data=IdeaConvert(idea_id=idea.id, repo_id=r.id).pack())]
            for r in repos]  # fmt: skip
    rows.append([_back(idea)])
    return Markup(inline_keyboard=rows)


def convert_options(
    idea: Idea, repo: Repo, mode: IdeaMode, flow: IdeaFlow, *, other_repos: bool
) -> InlineKeyboardMarkup:
    """Create (one tap with the defaults), then the modes and flows: tapping one marks it."""

    def step(text: str, m: IdeaMode, f: IdeaFlow, *, go: bool = False) -> Button:
        data = IdeaConvert(idea_id=idea.id, repo_id=repo.id, mode=m, flow=f, go=go).pack()
        return Button(text=text, callback_data=data)

    def mark(label: str, chosen: bool) -> str:
        return t.CHOSEN.format(label=label) if chosen else label

    defaults = (mode, flow) == (DEFAULT_MODE, DEFAULT_FLOW)
    create = t.CREATE_DEFAULTS if defaults else t.CREATE.format(mode=mode, flow=flow)
    rows = [
        [step(create, mode, flow, go=True)],
        [step(mark(label, m == mode), m, flow) for m, label in _modes()],
        [step(mark(label, f == flow), mode, f) for f, label in _flows()],
    ]
    last = [_back(idea)]
    if other_repos:
        last.insert(0, Button(text=t.OTHER_REPO,
                              callback_data=IdeaConvert(idea_id=idea.id).pack()))  # fmt: skip
    rows.append(last)
    return Markup(inline_keyboard=rows)


def _modes() -> list[tuple[IdeaMode, str]]:
    return [("autonomous", t.MODES["autonomous"]), ("interactive", t.MODES["interactive"])]


def _flows() -> list[tuple[IdeaFlow, str]]:
    return [("patch", t.FLOWS["patch"]), ("pr", t.FLOWS["pr"]), ("direct", t.FLOWS["direct"])]
