"""Helpers of the delivery tests: a bare upstream acting as the forge's git remote, and
agents written as small Python scripts."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

from storage.repos import NewRepo, Repo, RepoRepo
from storage.tasks import NewTask, Task
from tests.gitrepos import git, make_repo
from worker.queue import submit_task

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
PY = shlex.quote(sys.executable)
AUTHOR = ("Agent", "agent@example.invalid")


def bare_upstream(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    """A bare repository on `main` (what a forge serves), seeded from a working copy."""
    seed = make_repo(tmp_path / "seed", files or {"README.md": "# Demo\n", "calc.py": "X = 1\n"})
    bare = tmp_path / "forge.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


def agent(tmp_path: Path, code: str, name: str = "agent.py") -> str:
    """A command agent running `code` (Python) in the worktree; `prompt` is its argument."""
    script = tmp_path / name
    script.write_text("import os, pathlib, subprocess, sys\nprompt = sys.argv[1]\n" + code)
    return f"{PY} {shlex.quote(str(script))} {{prompt}}"


async def add_repo(pool: Pool, source: Path, command: str, **options: Any) -> Repo:
    new = NewRepo(name=options.pop("name", "shop"), source=str(source), default_branch="main",
                  agent_backend="command", agent_command=command, git_author_name=AUTHOR[0],
                  git_author_email=AUTHOR[1], **options)  # fmt: skip
    return await RepoRepo(pool).add(new)


async def submit(pool: Pool, repo: Repo, flow: str, title: str = "Add a greeting") -> Task:
    async with pool.acquire() as conn:
        return await submit_task(conn, NewTask(repo_id=repo.id, title=title, git_flow=flow,
                                               description="Say hello."))  # fmt: skip


def upstream_commit(tmp_path: Path, bare: Path, name: str, content: str, message: str) -> str:
    """Someone else pushes to the remote's main meanwhile; returns the new main."""
    clone = tmp_path / f"other-{name.replace('/', '-')}"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    (clone / name).parent.mkdir(parents=True, exist_ok=True)
    (clone / name).write_text(content)
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", message)
    git(clone, "push", "-q", "origin", "main")
    return git(bare, "rev-parse", "main")
