"""Rows and SQL of the `repos` table."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import asyncpg

from storage.db import Executor
from storage.errors import NotFound, translate_errors

_INSERT = """
    INSERT INTO repos (name, key_prefix, source, default_branch, pre_command, build_command,
                       test_command, lint_command, verify_timeout_seconds, agent_backend,
                       agent_command, agent_model, max_attempts, git_author_name,
                       git_author_email, max_cost_usd, max_wall_seconds, max_turns,
                       reality_threshold, forge_kind, forge_base_url, forge_owner, forge_name,
                       forge_token_env, allow_binary, fallback_backend, fallback_model)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, $22, $23, $24, $25, $26, $27)
    RETURNING *
"""
_BY_NAME = "SELECT * FROM repos WHERE name = $1"
_BY_ID = "SELECT * FROM repos WHERE id = $1"
_ALL = "SELECT * FROM repos ORDER BY name"
_NEXT_SEQ = """
    UPDATE repos
       SET task_seq = task_seq + 1
     WHERE id = $1
    RETURNING key_prefix, task_seq
"""


@dataclass(frozen=True, slots=True)
class Repo:
    id: int
    name: str
    key_prefix: str
    source: str
    forge_kind: str  # gitea | forgejo | github | local (no forge API: the branch is the PR)
    forge_base_url: str | None  # the forge's web address, e.g. https://git.example.com
    forge_owner: str | None
    forge_name: str | None
    forge_token_env: str | None  # the worker's variable holding the token (default: per kind)
    allow_binary: bool  # may a change add binary files (the preflight blocks them otherwise)
    default_branch: str
    pre_command: str
    build_command: str
    test_command: str
    lint_command: str
    verify_timeout_seconds: int
    agent_backend: str
    agent_command: str
    agent_model: str | None
    # Run again with this backend and/or model when the API refuses a run (worker/implement.py).
    fallback_backend: str | None
    fallback_model: str | None
    allowed_tools: list[str]
    max_attempts: int
    max_parallel_tasks: int
    git_author_name: str
    git_author_email: str
    active: bool
    max_cost_usd: Decimal | None  # budget defaults for the repo's tasks
    max_wall_seconds: int | None
    max_turns: int | None
    reality_threshold: int | None  # a task scoring below it is blocked before any agent run
    created_at: datetime

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(**{f.name: r[f.name] for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class NewRepo:
    name: str
    source: str
    default_branch: str
    key_prefix: str = ""  # derived from the name when empty
    pre_command: str = ""
    build_command: str = ""
    test_command: str = ""
    lint_command: str = ""
    verify_timeout_seconds: int = 600
    agent_backend: str = "claude"
    agent_command: str = ""
    agent_model: str | None = None
    fallback_backend: str | None = None
    fallback_model: str | None = None
    max_attempts: int = 3
    git_author_name: str = "DevServer Agent"
    git_author_email: str = "agent@devserver.invalid"
    max_cost_usd: Decimal | None = None
    max_wall_seconds: int | None = None
    max_turns: int | None = None
    reality_threshold: int | None = None
    forge_kind: str = "local"
    forge_base_url: str | None = None
    forge_owner: str | None = None
    forge_name: str | None = None
    forge_token_env: str | None = None
    allow_binary: bool = False


def key_prefix_for(name: str) -> str:
    """WEB for "web", MYAPP for "my-app", R2D2 for "r2d2"; at most 10 characters."""
    prefix = re.sub(r"[^A-Z0-9]", "", name.upper()).lstrip("0123456789")[:10]
    return prefix or "TASK"


class RepoRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(self, new: NewRepo) -> Repo:
        prefix = new.key_prefix or key_prefix_for(new.name)
        args: list[Any] = [
            new.name, prefix, new.source, new.default_branch, new.pre_command,
            new.build_command, new.test_command, new.lint_command, new.verify_timeout_seconds,
            new.agent_backend, new.agent_command, new.agent_model, new.max_attempts,
            new.git_author_name, new.git_author_email, new.max_cost_usd, new.max_wall_seconds,
            new.max_turns, new.reality_threshold, new.forge_kind, new.forge_base_url,
            new.forge_owner, new.forge_name, new.forge_token_env, new.allow_binary,
            new.fallback_backend, new.fallback_model,
        ]  # fmt: skip
        with translate_errors():
            row = await self._db.fetchrow(_INSERT, *args)
        assert row is not None  # noqa: S101  # INSERT ... RETURNING always returns the row
        return Repo.from_record(row)

    async def by_name(self, name: str) -> Repo:
        row = await self._db.fetchrow(_BY_NAME, name)
        if row is None:
            raise NotFound("repo", name)
        return Repo.from_record(row)

    async def by_id(self, repo_id: int) -> Repo:
        row = await self._db.fetchrow(_BY_ID, repo_id)
        if row is None:
            raise NotFound("repo", repo_id)
        return Repo.from_record(row)

    async def all(self) -> list[Repo]:
        return [Repo.from_record(r) for r in await self._db.fetch(_ALL)]

    async def next_task_key(self, repo_id: int) -> str:
        """Reserve the next key of this repo (WEB-1, WEB-2, ...); row-locked, so unique."""
        row = await self._db.fetchrow(_NEXT_SEQ, repo_id)
        if row is None:
            raise NotFound("repo", repo_id)
        return f"{row['key_prefix']}-{row['task_seq']}"
