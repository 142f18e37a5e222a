"""The approved plan's allow-list, enforced (the plan part of the pre-PR preflight; no LLM).

A change may touch exactly the files the plan listed. What the task branch changed since its
base is read from git; a rename counts as both of its paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from worker.git import run_git


async def changed_files(worktree: Path, base_commit: str) -> list[str]:
    """Every path the commits after `base_commit` added, changed or deleted, sorted."""
    result = await run_git("diff", "--name-only", "--no-renames", "-z", base_commit, "HEAD",
                           cwd=worktree)  # fmt: skip
    names = result.stdout.decode("utf-8", errors="replace").split("\0")
    return sorted({name for name in names if name})


def outside_plan(changed: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The changed paths the plan did not list (exact comparison)."""
    allow = set(allowed)
    return [path for path in changed if path not in allow]


async def existed_at(worktree: Path, commit: str, path: str) -> bool:
    result = await run_git("cat-file", "-e", f"{commit}:{path}", cwd=worktree, check=False)
    return result.returncode == 0


async def scope_feedback(
    worktree: Path, base_commit: str, outside: list[str], allowed: Iterable[str]
) -> str:
    """What the agent is told: which files to put back (or delete), and the allow-list."""
    lines = ["Your change touches files outside the approved plan. Undo your changes to them",
             "and leave them alone from now on:"]  # fmt: skip
    for path in outside:
        if await existed_at(worktree, base_commit, path):
            lines.append(f"- {path}: restore it (git checkout {base_commit[:12]} -- '{path}')")
        else:
            lines.append(f"- {path}: it is new; delete it")
    lines += ["", "The plan allows changes to these files only:"]
    lines += [f"- {path}" for path in allowed]
    return "\n".join(lines)
