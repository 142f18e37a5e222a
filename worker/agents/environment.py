"""The environment an agent or a verifier command runs with: an allow-list, never our secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from worker.git import run_git

# Only these are copied from the worker's environment. Everything else (DATABASE_URL,
# TELEGRAM_BOT_TOKEN, GITEA_TOKEN, DB_DSN, ...) stays in the worker.
INHERITED_VARIABLES = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
)


def agent_environment(
    home: Path,
    extra: Mapping[str, str] | None = None,
    *,
    parent: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A minimal child environment: allow-listed parent variables, HOME, then `extra`.

    `parent` defaults to os.environ. Git never prompts for credentials (it would hang).
    """
    source = os.environ if parent is None else parent
    env = {name: source[name] for name in INHERITED_VARIABLES if name in source}
    env.setdefault("PATH", os.defpath)
    env["HOME"] = str(home)
    env["GIT_TERMINAL_PROMPT"] = "0"
    if extra:
        env.update(extra)
    return env


async def set_identity(home: Path, name: str, email: str) -> None:
    """Write the git identity into the agent's HOME (its ~/.gitconfig), so commits the agent
    makes itself are authored as the repo's configured identity."""
    config = home / ".gitconfig"
    if not config.exists():  # a new home (the usual case): one write instead of three gits
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f"[user]\n\tname = {_quoted(name)}\n\temail = {_quoted(email)}\n"
            "[commit]\n\tgpgsign = false\n",
            encoding="utf-8",
        )
        return
    for key, value in (("user.name", name), ("user.email", email), ("commit.gpgsign", "false")):
        await run_git("config", "--file", str(config), key, value)


def _quoted(value: str) -> str:
    """A git config value in double quotes, with the escapes git reads back."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'
