"""Every CallbackData factory. Short prefixes: packed data must fit Telegram's 64 bytes.

Ids are bounded to what the database's columns hold: data from a forged button with an id
past bigint then fails to parse (the button is not ours) instead of failing in the query."""

from __future__ import annotations

from typing import Annotated, Literal

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

TaskVerb = Literal["cancel", "retry", "log", "patches", "refresh"]
NewField = Literal["repo", "mode", "flow", "budget", "confirm"]
PlanDecision = Literal["approve", "revise", "reject"]
RowId = Annotated[int, Field(ge=0, le=2**63 - 1)]  # a bigint id; 0 is "none" (the root)
Round = Annotated[int, Field(ge=0, le=2**31 - 1)]  # tasks.plan_round is an integer


class TaskAction(CallbackData, prefix="t"):
    action: TaskVerb
    task_id: RowId


class TaskPage(CallbackData, prefix="tp"):
    """A page of /tasks: `status` "" means all; `before` 0 means the newest."""

    status: str
    before: RowId


class TaskOpen(CallbackData, prefix="to"):
    task_id: RowId


class NewStep(CallbackData, prefix="n"):
    """One choice in the guided /new dialog."""

    field: NewField
    value: str


class PlanAction(CallbackData, prefix="p"):
    """A decision on one round of a task's plan; a stale round changes nothing."""

    action: PlanDecision
    task_id: RowId
    round: Round


class BudgetAction(CallbackData, prefix="b"):
    """Raise every limit the task has by `percent`; with `resume`, queue it again too."""

    task_id: RowId
    percent: int
    resume: bool


IdeaVerb = Literal["ls", "show", "new", "mv", "mvto", "del", "rm"]
IdeaMode = Literal["autonomous", "interactive"]
IdeaFlow = Literal["patch", "pr", "direct"]


class IdeaAction(CallbackData, prefix="i"):
    """A button of the ideas tree: ls (open folder `idea_id`, page `page`), show (an idea's
    card), new (ask for a folder's name), mv (pick where to move `idea_id`, showing folder
    `arg`), mvto (move it into folder `arg`), del (ask to confirm), rm (delete)."""

    action: IdeaVerb
    idea_id: RowId
    arg: RowId = 0
    page: Annotated[int, Field(ge=0, le=9999)] = 0


class IdeaConvert(CallbackData, prefix="ic"):
    """Making an idea a task: `repo_id` 0 asks for the repository; `go` creates it."""

    idea_id: RowId
    repo_id: RowId = 0
    mode: IdeaMode = "autonomous"
    flow: IdeaFlow = "patch"
    go: bool = False


class ApplyAction(CallbackData, prefix="a"):
    """Apply the forwarded patch series `series` (the first 12 hex digits of its sha256;
    bot/routers/patches.py) to the repository `repo_id`."""

    series: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")]
    repo_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
