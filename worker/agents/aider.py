"""Aider, non-interactive (`aider --message ... --yes-always`), per tests/fixtures/aider/FACTS.md.

Aider exits 0 even when the model API failed, so the verdict is read from its output: after
retrying for about a minute it prints the litellm error (`litellm.RateLimitError: ...`) and
stops; a model answer prints its usage report (`Tokens: ... Cost: $X message, $Y session.`).
A run fails when an API error comes after the last usage report.

Aider commits nothing here (`--no-auto-commits`): the worker commits the worktree after each
run, with the repo's identity and the task's message, as for every backend. A session is
aider's chat history file in the agent's HOME; resuming restores it (`--restore-chat-history`).
Aider's own files stay out of the worktree (history in HOME) or out of git (`.aider*` in the
repository's info/exclude, not in its tracked .gitignore).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from worker.agents.base import AgentRequest, AgentResult, ErrorKind
from worker.agents.claude import prompt_on_stdin
from worker.agents.environment import agent_environment
from worker.agents.launch import launch, log_finished
from worker.agents.reported import try_again_at
from worker.git import run_git
from worker.processes import join_output, tail

log = logging.getLogger(__name__)

OUTPUT_TAIL_CHARS = 4000
TEXT_CHARS = 20_000
MESSAGE_CHARS = 2000
# Non-interactive, quiet, and hands off git (aider/args.py of aider-chat 0.86).
FIXED_FLAGS = (
    "--yes-always", "--no-stream", "--no-pretty", "--no-fancy-input", "--no-check-update",
    "--no-show-release-notes", "--no-show-model-warnings", "--no-gitignore",
    "--no-auto-commits", "--no-dirty-commits", "--no-analytics", "--no-detect-urls",
    "--no-suggest-shell-commands", "--disable-playwright", "--encoding", "utf-8",
)  # fmt: skip
EXCLUDE_PATTERN = ".aider*"  # the repo map's tag cache lands in the repository root
_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")

_USAGE = re.compile(r"^Tokens: .+ sent, .+ received\.", re.MULTILINE)
_COST = re.compile(r"Cost: \$(\d+(?:\.\d+)?) message, \$(\d+(?:\.\d+)?) session\.")
# aider/coders/base_coder.py prints str(err): "litellm.RateLimitError: RateLimitError: ..."
_API_ERROR = re.compile(r"^litellm\.(\w+): ", re.MULTILINE)
_TOKEN_LIMIT = re.compile(r"^Model .+ has hit a token limit!$", re.MULTILINE)
_QUOTA = re.compile(
    r"insufficient_quota|exceeded your current quota|credit balance is too low"
    r"|insufficient credits|quota exceeded", re.IGNORECASE)  # fmt: skip
_KINDS = {
    "RateLimitError": ErrorKind.RATE_LIMIT, "RouterRateLimitError": ErrorKind.RATE_LIMIT,
    "InternalServerError": ErrorKind.OVERLOADED, "ServiceUnavailableError": ErrorKind.OVERLOADED,
    "BadGatewayError": ErrorKind.OVERLOADED, "AuthenticationError": ErrorKind.AUTH,
    "PermissionDeniedError": ErrorKind.AUTH, "ContextWindowExceededError":
    ErrorKind.PROMPT_TOO_LONG, "APIConnectionError": ErrorKind.NETWORK,
    "Timeout": ErrorKind.NETWORK,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AiderSession:
    """One chat: its id, and whether its history exists to be restored."""

    id: str
    folder: Path  # in the agent's HOME

    @property
    def history(self) -> Path:
        return self.folder / f"{self.id}.md"

    @classmethod
    def for_request(cls, request: AgentRequest) -> AiderSession:
        """The session to resume when its history is there; else a new one."""
        folder = request.home / "aider-sessions"
        wanted = request.resume_session_id or ""
        if _SESSION_ID.match(wanted) and (folder / f"{wanted}.md").is_file():
            return cls(wanted, folder)
        return cls(uuid.uuid4().hex, folder)


class AiderBackend:
    """Runs `aider --message-file ... --yes-always` in the task's worktree."""

    name = "aider"

    def __init__(
        self,
        executable: str = "aider",
        *,
        api_keys: Mapping[str, str] | None = None,
        openai_api_base: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self._executable = executable
        self._api_keys = dict(api_keys or {})  # provider -> key, e.g. {"openai": "sk-..."}
        self._openai_api_base = openai_api_base
        self._extra_env = dict(extra_env or {})

    def build_argv(self, request: AgentRequest, session: AiderSession) -> list[str]:
        home = request.home
        argv = [self._executable, *FIXED_FLAGS,
                "--env-file", str(home / "aider.env"),  # not the repository's .env
                "--input-history-file", str(home / "aider.input.history"),
                "--chat-history-file", str(session.history)]  # fmt: skip
        if session.history.is_file():
            argv.append("--restore-chat-history")
        if request.model:
            argv += ["--model", request.model]
        if self._openai_api_base:
            argv += ["--openai-api-base", self._openai_api_base]
        if request.read_only:
            argv += ["--chat-mode", "ask"]  # answers, never edits
        if prompt_on_stdin(request.prompt):  # too long for argv, or it looks like a flag
            argv += ["--message-file", str(home / "aider-message.md")]
        else:
            argv += ["--message", request.prompt]
        return argv

    def build_env(self, request: AgentRequest) -> dict[str, str]:
        extra = {f"{provider.upper()}_API_KEY": key for provider, key in self._api_keys.items()}
        # A wide console: rich wraps at 80 columns without a terminal, splitting the lines
        # read here. Opening a URL (aider offers one with each API error) does nothing.
        extra |= {"COLUMNS": "1000", "BROWSER": "true"}
        extra.update(self._extra_env)
        return agent_environment(request.home, extra)

    async def run(self, request: AgentRequest) -> AgentResult:
        session = AiderSession.for_request(request)
        session.folder.mkdir(parents=True, exist_ok=True)
        if prompt_on_stdin(request.prompt):
            (request.home / "aider-message.md").write_text(request.prompt, encoding="utf-8")
        await exclude_aider_files(request.workdir)
        outcome = await launch(self.name, self.build_argv(request, session), request,
                               self.build_env(request))  # fmt: skip
        if isinstance(outcome, AgentResult):
            return outcome
        kept = session.id if session.history.is_file() else None  # none if aider never began
        result = parse_output(outcome.stdout, outcome.stderr, outcome.exit_code,
                              outcome.timed_out, outcome.duration_seconds,
                              session_id=kept)  # fmt: skip
        return log_finished(self.name, result)


async def exclude_aider_files(workdir: Path) -> None:
    """Add `.aider*` to the repository's info/exclude (shared by its worktrees), so the
    worker's commit of the worktree leaves aider's caches out. No repository: nothing."""
    try:
        found = await run_git("rev-parse", "--git-path", "info/exclude", cwd=workdir,
                              check=False)  # fmt: skip
    except OSError:  # no such directory: the launch reports it
        return
    if found.returncode != 0 or not found.text:
        return
    exclude = workdir / found.text
    text = exclude.read_text(encoding="utf-8") if exclude.is_file() else ""
    if EXCLUDE_PATTERN in text.splitlines():
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    separator = "" if not text or text.endswith("\n") else "\n"
    exclude.write_text(f"{text}{separator}{EXCLUDE_PATTERN}\n", encoding="utf-8")
    log.info("aider files excluded from git", extra={"exclude": str(exclude)})


def parse_output(
    stdout: str, stderr: str, exit_code: int | None, timed_out: bool, duration_seconds: float,
    *, session_id: str | None = None,
) -> AgentResult:  # fmt: skip
    """Turn aider's plain-text output into an AgentResult."""
    failure = _failure(stdout)
    ok = exit_code == 0 and not timed_out and failure is None
    error_kind: ErrorKind | None = None
    error_message = ""
    retry_at = None
    if timed_out:
        error_kind = ErrorKind.TIMEOUT
        error_message = f"killed at the deadline after {duration_seconds:.1f} s"
    elif not ok:
        error_kind, detail = failure or (ErrorKind.CRASH, stderr.strip() or stdout.strip())
        error_message = tail(detail, MESSAGE_CHARS) or f"aider exited with code {exit_code}"
        if error_kind is ErrorKind.RATE_LIMIT:
            retry_at = try_again_at(error_message, datetime.now(UTC))
    costs = _COST.findall(stdout)
    reports = len(_USAGE.findall(stdout))
    return AgentResult(
        ok=ok,
        text=tail(stdout.strip(), TEXT_CHARS) if ok else "",
        exit_code=exit_code,
        duration_seconds=duration_seconds,
        session_id=session_id,
        turns=reports or None,  # one usage report per model response
        cost_usd=float(costs[-1][1]) if costs else None,  # this process's session total
        error_kind=error_kind,
        error_message=error_message,
        output_tail=tail(join_output(stdout, stderr), OUTPUT_TAIL_CHARS),
        retry_at=retry_at,
    )


def _failure(stdout: str) -> tuple[ErrorKind, str] | None:
    """The API error that ended the run (one after the last usage report), with its text."""
    last_report = max((m.end() for m in _USAGE.finditer(stdout)), default=-1)
    errors = [m for m in (*_API_ERROR.finditer(stdout), *_TOKEN_LIMIT.finditer(stdout))
              if m.start() > last_report]  # fmt: skip
    if not errors:
        return None
    last = max(errors, key=lambda m: m.start())
    detail = stdout[last.start() :].strip()
    if last.re is _TOKEN_LIMIT:
        return ErrorKind.PROMPT_TOO_LONG, detail
    if _QUOTA.search(detail):
        return ErrorKind.QUOTA, detail
    return _KINDS.get(last.group(1), ErrorKind.CRASH), detail
