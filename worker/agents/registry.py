"""Pick the agent backend a task runs with: the task's choice, else its repo's."""

from __future__ import annotations

from collections.abc import Callable

from storage.repos import Repo
from worker.agents.aider import AiderBackend
from worker.agents.base import AgentBackend
from worker.agents.claude import ClaudeBackend
from worker.agents.codex import CodexBackend
from worker.agents.command import CommandBackend
from worker.settings import AiderSettings, ClaudeSettings, CodexSettings

BACKENDS = ("claude", "codex", "aider", "command")


class UnknownBackend(Exception):
    pass


def backend_factory(
    claude: ClaudeSettings,
    *,
    codex: CodexSettings | None = None,
    aider: AiderSettings | None = None,
) -> Callable[[Repo, str], AgentBackend]:
    """`codex` / `aider` unset: those CLIs with their defaults (no key, the executable on
    PATH); the worker's entry point passes the settings it read."""

    def build(repo: Repo, name: str) -> AgentBackend:
        if name == "claude":
            return ClaudeBackend(
                executable=claude.executable,
                api_key=claude.api_key.get_secret_value() if claude.api_key else None,
                base_url=claude.base_url,
                permission_mode=claude.permission_mode,
                allowed_tools=repo.allowed_tools or claude.allowed_tools,
                max_retries=claude.max_retries,
            )
        if name == "codex":
            if codex is None:
                return CodexBackend()
            return CodexBackend(
                executable=codex.executable,
                api_key=codex.api_key.get_secret_value() if codex.api_key else None,
                base_url=codex.base_url,
                sandbox=codex.sandbox,
            )
        if name == "aider":
            if aider is None:
                return AiderBackend()
            return AiderBackend(executable=aider.executable, api_keys=aider.api_key_map(),
                                openai_api_base=aider.openai_api_base)  # fmt: skip
        if name == "command":
            if not repo.agent_command.strip():
                raise UnknownBackend(f"repo {repo.name} has no agent command configured")
            return CommandBackend.from_string(repo.agent_command)
        raise UnknownBackend(f"unknown agent backend {name!r}; known: {', '.join(BACKENDS)}")

    return build
