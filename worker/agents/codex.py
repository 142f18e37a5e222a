"""OpenAI Codex CLI, non-interactive (`codex exec --json`), per tests/fixtures/codex/FACTS.md.

Codex prints one JSON event per line: `thread.started` (the session, resumable with
`codex exec resume <id>`), items (`agent_message` is the answer), then `turn.completed`
with token usage, or `turn.failed` with an error message. Top-level `error` events are not
fatal by themselves ("Reconnecting... 2/5"); only the turn's end decides. Errors carry a
message and no status code, so they are classified by the CLI's own wording.

Codex reports tokens, never dollars: cost stays unknown and the usage is kept for the
record. It has no turn cap and no budget flag; the task's budget is checked between runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.agents.base import AgentRequest, AgentResult, ErrorKind
from worker.agents.claude import prompt_on_stdin
from worker.agents.environment import agent_environment
from worker.agents.launch import launch, log_finished
from worker.agents.reported import int_value, string_value, try_again_at
from worker.processes import join_output, tail

OUTPUT_TAIL_CHARS = 4000
TEXT_CHARS = 20_000
MESSAGE_CHARS = 2000
SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")

# The CLI's words for each kind (codex-rs/protocol/src/error.rs), first match wins.
_KINDS = (
    # A plan's usage limit resets ("You've hit your usage limit. ... try again at 3:04 PM").
    (ErrorKind.RATE_LIMIT, re.compile(r"hit your usage limit", re.IGNORECASE)),
    (ErrorKind.QUOTA, re.compile(
        r"quota exceeded|insufficient_quota|exceeded your current quota|out of credits"
        r"|spend cap|upgrade to plus", re.IGNORECASE)),
    (ErrorKind.RATE_LIMIT, re.compile(
        r"\b429\b|rate limit|too many requests", re.IGNORECASE)),
    (ErrorKind.PROMPT_TOO_LONG, re.compile(
        r"context window|context_length_exceeded", re.IGNORECASE)),
    (ErrorKind.OVERLOADED, re.compile(
        r"at capacity|high demand|overloaded|status:? 5\d\d\b", re.IGNORECASE)),
    (ErrorKind.AUTH, re.compile(
        r"status:? 40[13]\b|unauthorized|forbidden|api key|refresh token|log ?in\b",
        re.IGNORECASE)),
    (ErrorKind.NETWORK, re.compile(
        r"connection failed|connection refused|error sending request|failed to lookup address"
        r"|stream disconnected", re.IGNORECASE)),
)  # fmt: skip


class CodexBackend:
    """Runs `codex exec --json` in the task's worktree, sandboxed to it."""

    name = "codex"

    def __init__(
        self,
        executable: str = "codex",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        sandbox: str = "workspace-write",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        if sandbox not in SANDBOX_MODES:
            raise ValueError(f"sandbox must be one of {', '.join(SANDBOX_MODES)}")
        self._executable = executable
        self._api_key = api_key
        self._base_url = base_url
        self._sandbox = sandbox
        self._extra_env = dict(extra_env or {})

    def build_argv(self, request: AgentRequest) -> list[str]:
        """`codex exec [resume] --json ... [SESSION] PROMPT`; `-` reads the prompt from stdin.
        Settings go through `-c key=value` (TOML values), which `exec resume` takes too."""
        resume = request.resume_session_id
        argv = [self._executable, "exec", *(["resume"] if resume else [])]
        sandbox = "read-only" if request.read_only else self._sandbox
        argv += ["--json", "--skip-git-repo-check", "-c", f"sandbox_mode={_toml(sandbox)}",
                 "-c", 'approval_policy="never"']  # fmt: skip
        if self._base_url:
            argv += ["-c", f"openai_base_url={_toml(self._base_url)}"]
        if request.model:
            argv += ["--model", request.model]
        if resume:
            argv.append(resume)
        argv.append("-" if prompt_on_stdin(request.prompt) else request.prompt)
        return argv

    def build_env(self, request: AgentRequest) -> dict[str, str]:
        extra: dict[str, str] = {}
        if self._api_key:
            extra["CODEX_API_KEY"] = self._api_key  # what `codex exec` reads (codex-rs/login)
        extra.update(self._extra_env)
        return agent_environment(request.home, extra)

    async def run(self, request: AgentRequest) -> AgentResult:
        stdin_data = request.prompt.encode() if prompt_on_stdin(request.prompt) else None
        outcome = await launch(self.name, self.build_argv(request), request,
                               self.build_env(request), stdin_data)  # fmt: skip
        if isinstance(outcome, AgentResult):
            return outcome
        result = parse_output(outcome.stdout, outcome.stderr, outcome.exit_code,
                              outcome.timed_out, outcome.duration_seconds)  # fmt: skip
        return log_finished(self.name, result)


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


@dataclass
class _Stream:
    """What the JSONL events said, read defensively: unknown events and fields are skipped."""

    thread_id: str | None = None
    message: str | None = None  # the last agent_message
    usage: dict[str, int] | None = None
    completed: bool = False
    failure: str | None = None  # turn.failed's error message
    last_error: str | None = None  # the last top-level error event (often not fatal)
    saw_events: bool = False


def _read(stdout: str) -> _Stream:
    stream = _Stream()
    for line in stdout.splitlines():
        event = _json_object(line)
        kind = string_value(event.get("type")) if event is not None else None
        if event is None or kind is None:
            continue
        stream.saw_events = True
        if kind == "thread.started":
            stream.thread_id = string_value(event.get("thread_id")) or stream.thread_id
        elif kind == "item.completed":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "agent_message":
                stream.message = string_value(item.get("text")) or stream.message
        elif kind == "turn.completed":
            stream.completed = True
            stream.usage = _usage(event.get("usage"))
        elif kind == "turn.failed":
            error = event.get("error")
            message = string_value(error.get("message")) if isinstance(error, dict) else None
            stream.failure = message or "the turn failed"
        elif kind == "error":
            stream.last_error = string_value(event.get("message")) or stream.last_error
    return stream


def parse_output(
    stdout: str, stderr: str, exit_code: int | None, timed_out: bool, duration_seconds: float
) -> AgentResult:
    """Turn `codex exec --json` output into an AgentResult: ok only when the process exited 0
    and the turn completed."""
    stream = _read(stdout)
    ok = exit_code == 0 and not timed_out and stream.completed and stream.failure is None
    error_kind: ErrorKind | None = None
    error_message = ""
    retry_at = None
    if timed_out:
        error_kind = ErrorKind.TIMEOUT
        error_message = f"killed at the deadline after {duration_seconds:.1f} s"
    elif not ok:
        detail = (stream.failure or stream.last_error or stderr.strip()
                  or ("" if stream.saw_events else stdout.strip()))  # fmt: skip
        error_message = tail(detail, MESSAGE_CHARS) or (
            f"codex exited with code {exit_code} without a result"
        )
        error_kind = classify(error_message)
        if error_kind is ErrorKind.RATE_LIMIT:
            retry_at = try_again_at(error_message, datetime.now(UTC))
    return AgentResult(
        ok=ok,
        text=tail(stream.message or "", TEXT_CHARS),
        exit_code=exit_code,
        duration_seconds=duration_seconds,
        session_id=stream.thread_id,
        cost_usd=None,
        error_kind=error_kind,
        error_message=error_message,
        output_tail=tail(join_output(stdout, stderr), OUTPUT_TAIL_CHARS),
        retry_at=retry_at,
        usage=stream.usage,
    )


def classify(message: str) -> ErrorKind:
    """The kind of a failed run, by the CLI's error message; CRASH when nothing matches."""
    return next((kind for kind, words in _KINDS if words.search(message)), ErrorKind.CRASH)


def _usage(value: object) -> dict[str, int] | None:
    if not isinstance(value, dict):
        return None
    counts = {str(key): int_value(count) for key, count in value.items()}
    return {key: count for key, count in counts.items() if count is not None}


def _json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
