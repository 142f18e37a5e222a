"""What the ideas tree says: /idea, /ideas, their buttons, and making an idea a task.

User text (titles, bodies, folder names) is clipped first, then escaped with `esc`.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.event_texts import clip
from bot.new_texts import flow_line
from bot.texts import ICONS, esc, repo_list
from storage.ideas import Idea
from storage.repos import Repo
from storage.task_status import TaskStatus
from storage.tasks import Task

ROOT = "Ideas"
BODY_LIMIT = 3000  # of an idea's body on its card; the whole body is on the status page

USAGE = (
    "Usage: <code>/idea title</code>, with the body (markdown) on the following lines. It "
    "is saved in the folder /ideas last showed you."
)
GONE_IDEA = "That idea is gone."
GONE_FOLDER = "That folder is gone."
GONE_REPO = "That repository is gone; pick another."
NO_REPOS = repo_list([])
INVALID_MOVE = "A folder cannot go inside itself or a folder below it."
NAME_AS_TEXT = "Please send the folder's name as text, or /cancel."
NAME_EMPTY = "The folder needs a name. Send it as one line, or /cancel."
NAME_CANCELLED = "No new folder."
CLIPPED = (
    "The title was over {limit} characters: it is clipped here and kept whole at the top "
    "of the body."
)

# Button labels
OPEN_FOLDER = "📁 {name}"
UP = "⬆️ Up"
NEW_FOLDER = "🆕 New folder"
MOVE = "📦 Move"
DELETE = "🗑 Delete"
PREVIOUS = "◀️ Previous"
NEXT = "Next ▶️"
BACK_TO = "⬅️ {name}"
CONVERT = "🚀 Convert to task"
OPEN_TASK = "📋 Task {key}"
REFRESH = "🔄 Refresh"
CONFIRM_DELETE = "🗑 Yes, delete"
KEEP = "✖ Keep it"
MOVE_HERE = "✅ Move here"
CANCEL = "✖ Cancel"
CREATE_DEFAULTS = "✅ Create with defaults"
CREATE = "✅ Create: {mode} · {flow}"
OTHER_REPO = "⬅️ Other repository"
MODES = {"autonomous": "🤖 Autonomous", "interactive": "🧭 Interactive"}
FLOWS = {"patch": "📦 Patch", "pr": "🔀 PR", "direct": "⬆️ Direct"}
CHOSEN = "✓ {label}"


def folder_name(folder: Idea | None) -> str:
    return ROOT if folder is None else folder.title


def crumbs(path: Sequence[Idea]) -> str:
    """📂 Ideas / Backlog / Web: the folders of `path`, the innermost last (long ones cut)."""
    names = [ROOT, *(clip(f.title, 40) for f in path)]
    if len(names) > 6:
        names = [*names[:2], "…", *names[-3:]]
    return "📂 " + " / ".join(esc(n) for n in names)


def _icon(idea: Idea) -> str:
    if idea.is_folder:
        return "📁"
    if idea.task_status is None:
        return "💡"
    try:
        return ICONS[TaskStatus(idea.task_status)]
    except ValueError:
        return "💡"


def item_label(idea: Idea) -> str:
    """A button naming a folder or idea (with its task, if it became one)."""
    task = f" · {idea.task_key}" if idea.task_key else ""
    return f"{_icon(idea)} {clip(idea.title, 48)}{task}"


def _note(note: str) -> str:
    return f"{note}\n\n" if note else ""


def folder(path: Sequence[Idea], children: Sequence[Idea], *, page: int, pages: int,
           note: str = "") -> str:  # fmt: skip
    """A folder's listing: where it is, what it holds (the buttons name each item)."""
    folders = sum(1 for c in children if c.is_folder)
    ideas = len(children) - folders
    lines = [f"<b>{crumbs(path)}</b>"]
    if not children:
        lines.append("Empty. Send <code>/idea title</code> to save an idea here.")
    else:
        counts = f"{folders} folder(s) · {ideas} idea(s)"
        lines.append(counts + (f" · page {page + 1} of {pages}" if pages > 1 else ""))
        lines.append("New ideas (/idea) are saved here.")
    return _note(note) + "\n".join(lines)


def task_line(idea: Idea) -> str:
    if idea.task_key is None:
        return ""
    status = (idea.task_status or "?").replace("_", " ")
    return f"Task: {_icon(idea)} <b>{esc(idea.task_key)}</b> · {esc(status)}"


def card(idea: Idea, parents: Sequence[Idea], note: str = "") -> str:
    """An idea's card: title, where it is, its body, and its task with the task's status."""
    lines = [f"💡 <b>{esc(idea.title)}</b>", f"<i>{crumbs(parents)}</i>"]
    if idea.body:
        lines += ["", esc(clip(idea.body, BODY_LIMIT))]
    if idea.task_key is not None:
        lines += ["", task_line(idea)]
    return _note(note) + "\n".join(lines)


def saved(clipped_at: int | None) -> str:
    return "💡 Saved." + (" " + CLIPPED.format(limit=clipped_at) if clipped_at else "")


def ask_folder_name(path: Sequence[Idea]) -> str:
    return f"📁 <b>New folder</b> in {crumbs(path)}.\nSend its name (one line), or /cancel."


def folder_created(name: str) -> str:
    return f"📁 <b>{esc(name)}</b> created."


def duplicate_folder(name: str) -> str:
    return f"There is already a folder <b>{esc(name)}</b> here. Send another name, or /cancel."


def confirm_delete(idea: Idea) -> str:
    if idea.is_folder:
        return f"🗑 Delete the empty folder <b>{esc(idea.title)}</b>?"
    task = f" Its task <b>{esc(idea.task_key)}</b> stays." if idea.task_key else ""
    return f"🗑 Delete the idea <b>{esc(idea.title)}</b>? This cannot be undone.{task}"


def not_empty(idea: Idea, children: Sequence[Idea]) -> str:
    """Plain text for an alert (at most 200 characters)."""
    folders = sum(1 for c in children if c.is_folder)
    names = ", ".join(clip(c.title, 20) for c in children[:3])
    more = ", …" if len(children) > 3 else ""
    return clip(
        f"📁 {clip(idea.title, 40)} is not empty: {folders} folder(s), "
        f"{len(children) - folders} idea(s) ({names}{more}). Move or delete them first.",
        200,
    )


def deleted(idea: Idea) -> str:
    return f"🗑 Deleted <b>{esc(idea.title)}</b>."


def move_prompt(item: Idea, parents: Sequence[Idea], browsing: Sequence[Idea]) -> str:
    what = "📁" if item.is_folder else "💡"
    return (
        f"📦 Move {what} <b>{esc(item.title)}</b>\nNow in: {crumbs(parents)}\n\n"
        f"Showing: <b>{crumbs(browsing)}</b>\nOpen a folder, then <b>Move here</b>."
    )


def moved(path: Sequence[Idea]) -> str:
    return f"📦 Moved to {crumbs(path)}."


def pick_repo(idea: Idea) -> str:
    return f"🚀 <b>{esc(idea.title)}</b> → a task. Which repository?"


def convert_options(idea: Idea, repo: Repo, mode: str, flow: str) -> str:
    how = ("straight to work" if mode == "autonomous"
           else "a plan comes first, for you to approve")  # fmt: skip
    return (
        f"🚀 <b>{esc(idea.title)}</b> → a task in <b>{esc(repo.name)}</b>\n\n"
        f"Mode: <b>{esc(mode)}</b>: {how}.\nFlow: {flow_line(flow, repo)}\n\n"
        "Tap <b>Create</b>, or change the mode or flow first."
    )


def converted(task: Task) -> str:
    return (
        f"🚀 Task <b>{esc(task.key)}</b> created and queued; its status card follows and "
        "updates itself."
    )


def converted_answer(task: Task) -> str:
    return f"{task.key} queued"


def already_converted(idea: Idea) -> str:
    return f"This idea is already task <b>{esc(idea.task_key or '?')}</b>."
