"""Every CallbackData factory. Short prefixes: packed data must fit Telegram's 64 bytes."""

from __future__ import annotations

from typing import Literal

from aiogram.filters.callback_data import CallbackData

TaskVerb = Literal["cancel", "retry", "log", "patches", "refresh"]
NewField = Literal["repo", "mode", "flow", "budget", "confirm"]
PlanDecision = Literal["approve", "revise", "reject"]


class TaskAction(CallbackData, prefix="t"):
    action: TaskVerb
    task_id: int


class TaskPage(CallbackData, prefix="tp"):
    """A page of /tasks: `status` "" means all; `before` 0 means the newest."""

    status: str
    before: int


class TaskOpen(CallbackData, prefix="to"):
    task_id: int


class NewStep(CallbackData, prefix="n"):
    """One choice in the guided /new dialog."""

    field: NewField
    value: str


class PlanAction(CallbackData, prefix="p"):
    """A decision on one round of a task's plan; a stale round changes nothing."""

    action: PlanDecision
    task_id: int
    round: int


class BudgetAction(CallbackData, prefix="b"):
    """Raise every limit the task has by `percent`; with `resume`, queue it again too."""

    task_id: int
    percent: int
    resume: bool
