"""What every agent backend takes and returns: one request type, one result type."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from worker.processes import TimeLeft


class ErrorKind(StrEnum):
    """Why an agent run did not succeed; drives retry and escalation decisions."""

    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"  # 529 and transient 5xx from the model API
    # Out of credits or quota (OpenAI insufficient_quota, an empty workspace): waiting for a
    # reset does not help, another backend or model (the repo's fallback) may.
    QUOTA = "quota"
    AUTH = "auth"
    PROMPT_TOO_LONG = "prompt_too_long"
    MAX_TURNS = "max_turns"
    BUDGET = "budget"
    TIMEOUT = "timeout"  # killed by our watchdog at the deadline
    NETWORK = "network"  # model API unreachable
    CRASH = "crash"  # non-zero exit with no usable result


@dataclass(frozen=True, slots=True)
class AgentRequest:
    prompt: str
    workdir: Path  # the task's worktree; the agent runs with this as cwd
    home: Path  # a per-run HOME directory (created by the caller)
    deadline_seconds: float  # wall-clock limit; the whole process group is killed after it
    max_turns: int | None = None  # for this run: the per-run cap, cut to the task's turns left
    model: str | None = None
    resume_session_id: str | None = None  # continue an earlier session (retry with feedback)
    max_budget_usd: float | None = None  # the dollars left of the task's cost limit
    # The task's wall time left, asked again when it runs out (an Extend may have raised it):
    # the process group is killed once it is gone, even before `deadline_seconds`.
    wall_left: TimeLeft | None = None
    # The plan phase: look, don't touch. Backends restrict the agent's tools where they can.
    read_only: bool = False

    @property
    def phase(self) -> str:
        return "plan" if self.read_only else "implement"


@dataclass(frozen=True, slots=True)
class AgentResult:
    ok: bool
    text: str  # the agent's final message (or the tail of its output)
    exit_code: int | None  # None when killed by the watchdog
    duration_seconds: float
    session_id: str | None = None
    turns: int | None = None
    cost_usd: float | None = None  # None when the backend does not report cost
    error_kind: ErrorKind | None = None
    error_message: str = ""
    output_tail: str = ""  # last part of stdout+stderr, for logs and failure feedback
    permission_denials: list[str] = field(default_factory=list)  # "Tool: input summary"
    retry_at: datetime | None = None  # for RATE_LIMIT when the reset time is known
    # Token counts when the CLI reports tokens but no dollars (codex): shown, never priced.
    usage: dict[str, int] | None = None


class AgentBackend(Protocol):
    """One coding-agent CLI. `name` is what repos and tasks store as their backend."""

    name: str

    async def run(self, request: AgentRequest) -> AgentResult: ...
