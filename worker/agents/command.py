"""Any program as an agent: an argv template filled with the prompt, run without a shell.

Placeholders: {prompt}, {workdir}, {session} (the session to resume, or empty) and {phase}
("plan" or "implement"; also in the environment as DEVSERVER_PHASE). In the plan phase the
program should only read: whatever it changes in the worktree is thrown away. The run's turn
cap and the dollars left of the task's budget, when there are any, are in the environment as
DEVSERVER_MAX_TURNS and DEVSERVER_MAX_BUDGET_USD.

Used for scripted agents in tests and for CLIs without a dedicated backend. The program may
report its session, cost and turns by printing, as the last line of its stdout, a JSON
object with any of `session_id`, `cost_usd` / `total_cost_usd` and `num_turns`.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from worker.agents.base import AgentRequest, AgentResult, ErrorKind
from worker.agents.environment import agent_environment
from worker.agents.launch import launch, log_finished
from worker.agents.reported import float_value, int_value, string_value
from worker.processes import join_output, tail

log = logging.getLogger(__name__)

OUTPUT_TAIL_CHARS = 4000
TEXT_CHARS = 20_000
MESSAGE_CHARS = 2000
# One pass over each element, so a prompt containing "{workdir}" is not substituted again.
_PLACEHOLDER = re.compile(r"\{(prompt|workdir|session|phase)\}")


class CommandBackend:
    """Runs `argv_template` with {prompt}, {workdir}, {session} and {phase} filled in."""

    name = "command"

    def __init__(
        self, argv_template: Sequence[str], extra_env: Mapping[str, str] | None = None
    ) -> None:
        if not argv_template:
            raise ValueError("argv_template must name a program")
        self._argv_template = tuple(argv_template)
        self._extra_env = dict(extra_env or {})

    @classmethod
    def from_string(
        cls, template: str, extra_env: Mapping[str, str] | None = None
    ) -> CommandBackend:
        """Split a shell-like template ('python3 agent.py {prompt}') into argv; no shell runs."""
        return cls(shlex.split(template), extra_env)

    def build_argv(self, request: AgentRequest) -> list[str]:
        values = {
            "prompt": request.prompt,
            "workdir": str(request.workdir),
            "session": request.resume_session_id or "",
            "phase": request.phase,
        }
        return [
            _PLACEHOLDER.sub(lambda match: values[match.group(1)], element)
            for element in self._argv_template
        ]

    def build_env(self, request: AgentRequest) -> dict[str, str]:
        extra = dict(self._extra_env)
        extra["DEVSERVER_PHASE"] = request.phase
        if request.max_turns is not None:
            extra["DEVSERVER_MAX_TURNS"] = str(request.max_turns)
        if request.max_budget_usd is not None:
            extra["DEVSERVER_MAX_BUDGET_USD"] = f"{request.max_budget_usd:.4f}"
        return agent_environment(request.home, extra)

    async def run(self, request: AgentRequest) -> AgentResult:
        outcome = await launch(self.name, self.build_argv(request), request,
                               self.build_env(request))  # fmt: skip
        if isinstance(outcome, AgentResult):
            return outcome
        report = _last_line_report(outcome.stdout)
        output_tail = tail(join_output(outcome.stdout, outcome.stderr), OUTPUT_TAIL_CHARS)
        ok = outcome.exit_code == 0 and not outcome.timed_out
        error_kind: ErrorKind | None = None
        error_message = ""
        if outcome.timed_out:
            error_kind = ErrorKind.TIMEOUT
            error_message = f"killed at the deadline after {outcome.duration_seconds:.1f} s"
        elif not ok:
            error_kind = ErrorKind.CRASH
            error_message = tail(output_tail.strip(), MESSAGE_CHARS) or (
                f"exited with code {outcome.exit_code} without output"
            )
        result = AgentResult(
            ok=ok,
            text=tail(outcome.stdout, TEXT_CHARS),
            exit_code=outcome.exit_code,
            duration_seconds=outcome.duration_seconds,
            session_id=string_value(report.get("session_id")),
            turns=int_value(report.get("num_turns")),
            cost_usd=float_value(report.get("total_cost_usd", report.get("cost_usd"))),
            error_kind=error_kind,
            error_message=error_message,
            output_tail=output_tail,
        )
        return log_finished(self.name, result)


_REPORT_KEYS = frozenset({"session_id", "cost_usd", "total_cost_usd", "num_turns"})


def _last_line_report(stdout: str) -> dict[str, Any]:
    """The JSON object on the last non-empty line of stdout, if it reports anything we read."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return {}
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return {}
    if isinstance(value, dict) and _REPORT_KEYS & value.keys():
        return value
    return {}
