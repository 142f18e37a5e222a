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
