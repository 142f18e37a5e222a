"""Worker settings: how many tasks at once, time limits, and the agent CLIs (Claude Code,
Codex, Aider)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def split_list(value: object) -> object:
    """ "a, b,c" from the environment → ["a", "b", "c"]; lists pass through."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKER_", env_file=".env", extra="ignore")

    concurrency: int = Field(default=2, ge=1, le=64)  # tasks run at once, across all workers
    agent_timeout_seconds: float = Field(default=1800, gt=0)  # one agent run, wall clock
    # --max-turns of one implement attempt; a task's turn budget can cut it shorter.
    default_max_turns: int = Field(default=40, ge=1)
    # Budgets of tasks that set none and whose repo sets none; unset: no limit. They add up
    # everything a task spends: its plan phase, all its attempts, and (wall time) its checks.
    default_max_cost_usd: Decimal | None = Field(default=None, gt=0)
    default_max_wall_seconds: int | None = Field(default=None, gt=0)
    default_max_total_turns: int | None = Field(default=None, gt=0)
    heartbeat_seconds: float = Field(default=30, gt=0)  # a dead worker's job is re-run after it
    shutdown_grace_seconds: float = Field(default=10, ge=0)
    # Cancel requests and the paused switch arrive by NOTIFY; they are also read this often,
    # in case a NOTIFY was missed.
    recheck_seconds: float = Field(default=3, gt=0)
    # The plan gate (interactive tasks): the planning run's --max-turns, then how long a plan
    # waits for a decision before a reminder, and before the task is blocked. 0: never.
    plan_max_turns: int = Field(default=15, ge=1)
    plan_remind_after_seconds: float = Field(default=3600, ge=0)
    plan_expire_after_seconds: float = Field(default=86400, ge=0)
    # A run refused by the model API (rate limit, overload) waits and runs again without
    # using an attempt; after this many refusals in a row the task fails.
    backoff_max_waits: int = Field(default=8, ge=0)
    # The repo map in the agent's prompt: at most this many characters (worker/repo_map.py).
    repo_map_chars: int = Field(default=6000, ge=0)
    # Forge API calls (worker/forges): tries per call (5xx, 429, timeouts are retried, with
    # delays doubling from 1 s), and how long one request may take.
    forge_tries: int = Field(default=4, ge=1, le=10)
    forge_timeout_seconds: float = Field(default=30, gt=0)
    # Housekeeping (worker/schedules.py). Mirrors, worktrees and repo-map caches may use this
    # much disk; over it, the least recently used repo-map caches and mirrors of inactive
    # repos are deleted first (0: no budget). Task branches of finished tasks whose work is
    # delivered are pruned from the mirrors after this many days.
    disk_budget_mb: int = Field(default=5000, ge=0)
    branch_retention_days: int = Field(default=14, ge=1)
    # The daily report of the last 24 h (done, failed, blocked, cost, top failures) goes out
    # at this UTC hour (-1: none), to each chat that had tasks then, or only to this chat.
    daily_report_hour: int = Field(default=8, ge=-1, le=23)
    report_chat_id: int | None = None
    # Delivered (or given up) notifications are deleted after this many days.
    notification_retention_days: int = Field(default=14, ge=1)


class ClaudeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLAUDE_", env_file=".env", extra="ignore")

    executable: str = "claude"
    model: str | None = None
    permission_mode: str = "acceptEdits"  # works as root and as a normal user
    allowed_tools: Annotated[list[str], NoDecode] = [
        "Read", "Edit", "Write", "Glob", "Grep", "Bash(git:*)",
    ]  # fmt: skip
    max_retries: int = 2
    api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")

    _split = field_validator("allowed_tools", mode="before")(split_list)


class CodexSettings(BaseSettings):
    """The OpenAI Codex CLI (`codex exec`). CODEX_API_KEY is also the variable codex reads."""

    model_config = SettingsConfigDict(env_prefix="CODEX_", env_file=".env", extra="ignore")

    executable: str = "codex"
    api_key: SecretStr | None = None  # unset: codex's own login in the agent's HOME, if any
    base_url: str | None = None  # an OpenAI-compatible endpoint (`-c openai_base_url=...`)
    # Where the agent's commands may write: the worktree (codex's bubblewrap sandbox), or
    # anywhere, for a worker whose container is the sandbox. The plan phase is read-only.
    sandbox: Literal["workspace-write", "danger-full-access"] = "workspace-write"


class AiderSettings(BaseSettings):
    """Aider. Not AIDER_: aider reads every AIDER_<OPTION> variable as its own option (its
    configargparse auto_env_var_prefix), so ours would collide with an operator's aider
    configuration in the same environment."""

    model_config = SettingsConfigDict(
        env_prefix="DEVSERVER_AIDER_", env_file=".env", extra="ignore"
    )

    executable: str = "aider"
    # "openai=sk-...,anthropic=sk-ant-..." -> OPENAI_API_KEY, ANTHROPIC_API_KEY for aider only.
    api_keys: SecretStr | None = None
    openai_api_base: str | None = None

    def api_key_map(self) -> dict[str, str]:
        """provider -> key, from `api_keys`; pairs without a provider or key are skipped."""
        if self.api_keys is None:
            return {}
        pairs = (item.partition("=") for item in self.api_keys.get_secret_value().split(","))
        return {name.strip(): key.strip() for name, _, key in pairs if name.strip() and key.strip()}
