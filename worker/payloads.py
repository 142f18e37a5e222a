"""Job payloads: the contract between whoever enqueues (CLI, bot) and the worker."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    ENTRYPOINT: ClassVar[str]


class RunTaskPayload(Payload):
    """Take a queued task through prepare → agent attempts → verify → deliver."""

    ENTRYPOINT = "run_task"
    task_id: int


class PlanReminderPayload(Payload):
    """Remind the chat that plan round `round` of a task still waits for a decision."""

    ENTRYPOINT = "plan_reminder"
    task_id: int
    round: int


class PlanExpiryPayload(Payload):
    """Block the task if plan round `round` is still undecided."""

    ENTRYPOINT = "plan_expiry"
    task_id: int
    round: int


class NightTickPayload(Payload):
    """Feed the queue from the backlog while night `night_id` is on; `tick` numbers the one
    live tick of that night (a duplicate finds another number and does nothing)."""

    ENTRYPOINT = "night_tick"
    night_id: int
    tick: int
