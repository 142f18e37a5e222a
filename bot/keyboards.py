"""Functions returning inline keyboards; callback data comes from bot/callbacks.py."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callbacks import (
    BudgetAction,
    NewField,
    NewStep,
    PlanAction,
    PlanDecision,
    TaskAction,
    TaskOpen,
    TaskPage,
    TaskVerb,
)
from storage.repos import Repo
from storage.task_status import ACTIVE, TERMINAL, TaskStatus
from storage.tasks import Task

# The budgets /new offers: button value → (cost in dollars, working time in seconds, label).
BUDGET_PRESETS = {
    "s": ("1", 900, "$1 · 15 min"),
    "m": ("5", 3600, "$5 · 1 h"),
    "l": ("20", 4 * 3600, "$20 · 4 h"),
}

Button = InlineKeyboardButton
Markup = InlineKeyboardMarkup


def _action(text: str, verb: TaskVerb, task: Task) -> Button:
    return Button(text=text, callback_data=TaskAction(action=verb, task_id=task.id).pack())


def task_card(task: Task) -> InlineKeyboardMarkup:
    """Cancel while it can be stopped, Retry once it ended badly; Log and Patches always."""
    first: list[Button] = []
    if task.status not in TERMINAL:
        first.append(_action("🚫 Cancel", "cancel", task))
    if task.status in (TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.CANCELLED):
        first.append(_action("🔁 Retry", "retry", task))
    second = [_action("📜 Log", "log", task)]
    if task.status in TERMINAL:
        second.append(_action("📦 Patches", "patches", task))
    if task.status in ACTIVE or task.status == TaskStatus.QUEUED:
        second.append(_action("🔄 Refresh", "refresh", task))
    return InlineKeyboardMarkup(inline_keyboard=[row for row in (first, second) if row])


LIST_BUTTONS = 40  # task buttons under one message (Telegram allows 100 buttons)


def _open_rows(tasks: Sequence[Task]) -> list[list[Button]]:
    return [
        [Button(text=f"{t.key} · {t.title[:40]}", callback_data=TaskOpen(task_id=t.id).pack())]
        for t in tasks
    ]


def task_list(tasks: Sequence[Task]) -> InlineKeyboardMarkup | None:
    """A button per task opening its card; None for no tasks."""
    return InlineKeyboardMarkup(inline_keyboard=_open_rows(tasks)) if tasks else None


def task_page(tasks: Sequence[Task], status: str, *, has_more: bool) -> InlineKeyboardMarkup:
    rows = _open_rows(tasks)
    if has_more and tasks:
        more = TaskPage(status=status, before=tasks[-1].id).pack()
        rows.append([Button(text="Older →", callback_data=more)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _step(text: str, field: NewField, value: str) -> Button:
    return Button(text=text, callback_data=NewStep(field=field, value=value).pack())


def pick_repo(repos: Sequence[Repo]) -> InlineKeyboardMarkup:
    rows = [[_step(r.name, "repo", str(r.id))] for r in repos]
    rows.append([_step("✖ Cancel", "confirm", "no")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def pick_mode() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _step("🤖 Autonomous", "mode", "autonomous"),
                _step("🧭 Interactive", "mode", "interactive"),
            ],
            [_step("✖ Cancel", "confirm", "no")],
        ]
    )


FLOW_BUTTONS = {"patch": "📦 Patch", "pr": "🔀 PR", "direct": "⬆️ Direct"}


def pick_flow(flows: Sequence[str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_step(FLOW_BUTTONS[f], "flow", f) for f in flows],
            [_step("✖ Cancel", "confirm", "no")],
        ]
    )


def pick_budget() -> InlineKeyboardMarkup:
    presets = [_step(label, "budget", key) for key, (_, _, label) in BUDGET_PRESETS.items()]
    return InlineKeyboardMarkup(
        inline_keyboard=[
            presets,
            [_step("Default", "budget", "")],
            [_step("✖ Cancel", "confirm", "no")],
        ]
    )


def confirm() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_step("✅ Create", "confirm", "yes"), _step("✖ Cancel", "confirm", "no")]]
    )


def plan_review(task: Task) -> InlineKeyboardMarkup:
    """Approve / Revise / Reject; a plan that could not be read offers Re-plan instead."""

    def button(text: str, action: PlanDecision) -> Button:
        data = PlanAction(action=action, task_id=task.id, round=task.plan_round).pack()
        return Button(text=text, callback_data=data)

    readable = bool(task.plan and task.plan.get("ok"))
    first = [button("✅ Approve", "approve"), button("✏️ Revise", "revise")] if readable else [
        button("🔁 Re-plan", "revise")]  # fmt: skip
    return InlineKeyboardMarkup(inline_keyboard=[first, [button("⛔ Reject", "reject")]])


def budget(task: Task, *, resume: bool) -> InlineKeyboardMarkup:
    """Extend +50 % / +100 %; for a task the budget stopped, extend & resume, or cancel."""
    label = "Extend {}% & resume" if resume else "Extend +{}%"
    extend = [Button(text=label.format(p), callback_data=BudgetAction(
        task_id=task.id, percent=p, resume=resume).pack()) for p in (50, 100)]  # fmt: skip
    rows = [extend]
    if resume:
        rows.append([_action("🚫 Cancel", "cancel", task)])
    return InlineKeyboardMarkup(inline_keyboard=rows)
