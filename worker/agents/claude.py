"""Claude Code CLI in headless mode (`claude -p`), per specs/claude-cli/FACTS.md.

Success is decided by the exit code and `is_error`, never by `subtype`: API errors arrive
with `subtype: "success"`. The CLI changes fast, so every field is read defensively.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from worker.agents.base import AgentRequest, AgentResult, ErrorKind
from worker.agents.environment import agent_environment
from worker.agents.launch import launch, log_finished
from worker.agents.reported import float_value, int_value, string_value
from worker.classify import reset_time
from worker.processes import join_output, tail

log = logging.getLogger(__name__)

DEFAULT_ALLOWED_TOOLS = ("Read", "Edit", "Write", "Glob", "Grep", "Bash(git:*)")
# The plan phase (`--permission-mode plan`): reading tools only. ExitPlanMode is refused too:
# headless, it can only be denied, and the plan must come back as the final text instead.
READ_ONLY_TOOLS = ("Read", "Glob", "Grep", "LS")
READ_ONLY_DENIED_TOOLS = ("Edit", "Write", "NotebookEdit", "ExitPlanMode")
OUTPUT_TAIL_CHARS = 4000
TEXT_CHARS = 20_000
MESSAGE_CHARS = 2000
DENIAL_SUMMARY_CHARS = 120
# Linux refuses a single argv string over 128 KiB (E2BIG); longer prompts go through stdin.
MAX_ARGV_PROMPT_BYTES = 100_000

_OVERLOADED_STATUSES = frozenset({500, 502, 503, 504, 529})
_AUTH_STATUSES = frozenset({401, 403})
_NETWORK_ERROR = re.compile(
    r"connection refused|econnrefused|econnreset|enotfound|eai_again|etimedout|"
    r"unable to connect|connection error|network error|getaddrinfo|socket hang up|fetch failed",
    re.IGNORECASE,
)
_DENIAL_INPUT_KEYS = ("command", "file_path", "notebook_path", "path", "pattern", "url", "query")


class ClaudeBackend:
    """Runs the `claude` CLI with `--output-format json` in the task's worktree."""

    name = "claude"

    def __init__(
        self,
        executable: str = "claude",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        permission_mode: str = "acceptEdits",
        allowed_tools: Sequence[str] = DEFAULT_ALLOWED_TOOLS,
        max_retries: int = 2,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self._executable = executable
        self._api_key = api_key
        self._base_url = base_url
        self._permission_mode = permission_mode
        self._allowed_tools = tuple(allowed_tools)
        self._max_retries = max_retries
        self._extra_env = dict(extra_env or {})

    def build_argv(self, request: AgentRequest) -> list[str]:
        argv = [self._executable, "-p"]
        if not prompt_on_stdin(request.prompt):
            argv.append(request.prompt)
        argv += ["--output-format", "json"]
        if request.max_turns is not None:
            argv += ["--max-turns", str(request.max_turns)]
        if request.model:
            argv += ["--model", request.model]
        if request.resume_session_id:
            argv += ["--resume", request.resume_session_id]
        if request.max_budget_usd is not None:
            argv += ["--max-budget-usd", _format_usd(request.max_budget_usd)]
        if request.read_only:
            argv += ["--permission-mode", "plan", "--allowedTools", ",".join(READ_ONLY_TOOLS),
                     "--disallowedTools", ",".join(READ_ONLY_DENIED_TOOLS)]  # fmt: skip
            return argv
        argv += ["--permission-mode", self._permission_mode]
        if self._allowed_tools:
            argv += ["--allowedTools", ",".join(self._allowed_tools)]
        return argv

    def build_env(self, request: AgentRequest) -> dict[str, str]:
        extra = {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": str(self._max_retries),
        }
        if self._api_key:
            extra["ANTHROPIC_API_KEY"] = self._api_key
        if self._base_url:
            extra["ANTHROPIC_BASE_URL"] = self._base_url
        extra.update(self._extra_env)
        return agent_environment(request.home, extra)

    async def run(self, request: AgentRequest) -> AgentResult:
        stdin_data = request.prompt.encode() if prompt_on_stdin(request.prompt) else None
        outcome = await launch(self.name, self.build_argv(request), request,
                               self.build_env(request), stdin_data)  # fmt: skip
        if isinstance(outcome, AgentResult):
            return outcome
        result = parse_output(
            outcome.stdout,
            outcome.stderr,
            outcome.exit_code,
            outcome.timed_out,
            outcome.duration_seconds,
        )
        return log_finished(self.name, result)


def prompt_on_stdin(prompt: str) -> bool:
    """Whether the prompt must go through stdin: too long for argv, or it looks like a flag."""
    return prompt.startswith("-") or len(prompt.encode()) > MAX_ARGV_PROMPT_BYTES


def _format_usd(amount: float) -> str:
    text = f"{amount:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_output(
    stdout: str,
    stderr: str,
    exit_code: int | None,
    timed_out: bool,
    duration_seconds: float,
) -> AgentResult:
    """Turn the CLI's output (json, stream-json or text mode) into an AgentResult."""
    event, first_session_id, saw_events = _find_result(stdout)
    if event is None:
        # Text mode, a crash before any output, or a stream cut off before its result.
        reported: Mapping[str, Any] = {}
        text = "" if saw_events else tail(stdout.strip(), TEXT_CHARS)
        ok = exit_code == 0 and not timed_out and not saw_events
    else:
        reported = event
        text = string_value(event.get("result")) or ""
        ok = exit_code == 0 and not timed_out and event.get("is_error") is False
    error_kind: ErrorKind | None = None
    error_message = ""
    if timed_out:
        error_kind = ErrorKind.TIMEOUT
        error_message = f"killed at the deadline after {duration_seconds:.1f} s"
    elif not ok:
        error_kind = ErrorKind.CRASH if event is None else _classify(event, text)
        error_message = _error_message(event, stderr, "" if saw_events else stdout, exit_code)
    denials = reported.get("permission_denials")
    retry_at = None
    if error_kind is ErrorKind.RATE_LIMIT:  # when the limit resets, if the CLI said
        retry_at = reset_time(f"{error_message}\n{stdout}\n{stderr}", datetime.now(UTC))
    return AgentResult(
        ok=ok,
        text=text,
        exit_code=exit_code,
        duration_seconds=duration_seconds,
        session_id=string_value(reported.get("session_id")) or first_session_id,
        turns=int_value(reported.get("num_turns")),
        cost_usd=float_value(reported.get("total_cost_usd")),
        error_kind=error_kind,
        error_message=error_message,
        output_tail=tail(join_output(stdout, stderr), OUTPUT_TAIL_CHARS),
        permission_denials=[_render_denial(d) for d in denials]
        if isinstance(denials, list)
        else [],
        retry_at=retry_at,
    )


def _find_result(stdout: str) -> tuple[dict[str, Any] | None, str | None, bool]:
    """The last `result` object, the first session id seen, and whether any JSON event was."""
    result: dict[str, Any] | None = None
    session_id: str | None = None
    saw_events = False
    for line in stdout.splitlines():
        event = _json_object(line)
        if event is None or "type" not in event:  # not a CLI event: text or noise
            continue
        saw_events = True
        if session_id is None:
            session_id = string_value(event.get("session_id"))
        if event.get("type") == "result":
            result = event
    if result is None and not saw_events:  # one pretty-printed object
        event = _json_object(stdout)
        if event is not None and "type" in event:
            saw_events = True
            session_id = string_value(event.get("session_id"))
            if event.get("type") == "result":
                result = event
    return result, session_id, saw_events


def _json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _classify(event: Mapping[str, Any], text: str) -> ErrorKind:
    """Map a failed result event to an ErrorKind; the first matching rule wins."""
    status = int_value(event.get("api_error_status"))
    error_type = string_value(event.get("api_error_type")) or ""
    reason = string_value(event.get("terminal_reason")) or ""
    subtype = string_value(event.get("subtype")) or ""
    api_error = string_value(event.get("api_error")) or ""
    rules = (
        (
            ErrorKind.PROMPT_TOO_LONG,
            reason == "prompt_too_long" or (status == 400 and "prompt is too long" in text.lower()),
        ),
        (ErrorKind.MAX_TURNS, subtype == "error_max_turns" or reason == "max_turns"),
        (ErrorKind.BUDGET, subtype == "error_max_budget_usd" or reason == "budget_exhausted"),
        (ErrorKind.RATE_LIMIT, status == 429 or error_type == "rate_limit_error"),
        # Anthropic answers 400 "Your credit balance is too low to access the Anthropic API."
        (ErrorKind.QUOTA, status == 402 or "credit balance is too low" in text.lower()),
        (
            ErrorKind.OVERLOADED,
            status in _OVERLOADED_STATUSES or error_type in ("overloaded_error", "api_error"),
        ),
        (
            ErrorKind.AUTH,
            status in _AUTH_STATUSES or error_type in ("authentication_error", "permission_error"),
        ),
        (
            ErrorKind.NETWORK,
            "connection_failed" in (api_error, error_type)
            or (status is None and _NETWORK_ERROR.search(text) is not None),
        ),
    )
    return next((kind for kind, matched in rules if matched), ErrorKind.CRASH)


def _error_message(
    event: Mapping[str, Any] | None, stderr: str, stdout: str, exit_code: int | None
) -> str:
    """The human text: the result text and errors[], else stderr, else plain stdout."""
    parts: list[str] = []
    if event is not None:
        text = string_value(event.get("result"))
        if text and text.strip():
            parts.append(text.strip())
        errors = event.get("errors")
        if isinstance(errors, list):
            parts += [str(error).strip() for error in errors if str(error).strip()]
    detail = "; ".join(parts) or stderr.strip() or stdout.strip()
    if detail:
        return tail(detail, MESSAGE_CHARS)
    return f"claude exited with code {exit_code} without a result"


def _render_denial(denial: object) -> str:
    """'Tool: short input summary', e.g. 'Bash: git commit -qm msg'."""
    if not isinstance(denial, dict):
        return _shorten(str(denial))
    tool = string_value(denial.get("tool_name")) or "unknown tool"
    tool_input = denial.get("tool_input")
    summary = ""
    if isinstance(tool_input, dict):
        for key in _DENIAL_INPUT_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                summary = value
                break
        else:
            summary = json.dumps(tool_input, ensure_ascii=False, sort_keys=True)
    elif tool_input is not None:
        summary = str(tool_input)
    return _shorten(f"{tool}: {summary}" if summary else tool)


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= DENIAL_SUMMARY_CHARS:
        return text
    return text[: DENIAL_SUMMARY_CHARS - 1] + "…"
