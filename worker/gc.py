"""Disk clean-up of the worker's home: leftover worktrees, old task branches, mirrors, caches.

worker/workspace.py keeps `mirrors/<repo>.git` and `worktrees/<KEY>`; worker/repo_map.py
keeps `repo-maps/<tree_id>.json`. A job removes its own worktree when it ends, so what is
left is what a crash left. One round (hourly, worker/schedules.py):

1. Worktrees of tasks that ended (done, failed, blocked, cancelled) or no longer exist, and
   that no job will run, are removed. An active task's worktree is never touched.
2. Per mirror: a repo no longer in `repos` loses its mirror (unless a worktree still uses
   it); otherwise task branches `agent/<KEY>` of tasks done, failed or cancelled more than
   the retention ago whose work is delivered (done, or its patches stored, or no commits of
   its own) are deleted (a blocked task's branch stays: it may resume), then `git gc --auto`.
3. Over the disk budget, the least recently used repo-map caches and mirrors of inactive
   repos with no open task go first, until under it; each deletion is logged.

Every change to a mirror, or to a worktree linked to it, happens under the workspace's mirror
lock, with the task's state read again inside it: a task started meanwhile is never hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from storage.housekeeping import HousekeepingRepo, RepoState, TaskState
from storage.task_status import TERMINAL, TaskStatus
from worker import spares
from worker.deps import Pool
from worker.git import run_git
from worker.workspace import BRANCH_PREFIX, TASK_KEY_PATTERN, Workspace

log = logging.getLogger(__name__)

PRUNABLE = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED})
GIT_GC_SECONDS = 1800.0
TEMPORARY_AGE_SECONDS = 3600.0  # a repo map's .tmp file this old was left by a crash


@dataclass(slots=True)
class Collected:
    """What one round removed, and how far over the budget the home still is."""

    worktrees: list[str] = field(default_factory=list)  # task keys
    branches: list[str] = field(default_factory=list)  # "<repo>:agent/<KEY>"
    mirrors: list[str] = field(default_factory=list)  # repo names
    repo_maps: list[str] = field(default_factory=list)  # cache file names
    freed_bytes: int = 0
    over_budget_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    budget_bytes: int  # 0: no budget
    branch_retention: timedelta  # task branches are kept this long after the task ended
    grace: timedelta  # a worktree of a task that ended less long ago is left to its job


async def collect(
    pool: Pool, workspace: Workspace, repo_maps: Path, *, now: datetime, limits: Limits
) -> Collected:
    """One clean-up round (see the module doc)."""
    result = Collected()
    tasks = HousekeepingRepo(pool)
    await _worktrees(tasks, workspace, now - limits.grace, result)
    repos = {r.name: r for r in await tasks.repo_states()}
    for mirror in await asyncio.to_thread(_mirrors, workspace):
        repo = repos.get(mirror.name.removesuffix(".git"))
        if repo is None:
            await _delete_mirror(tasks, workspace, mirror, result, why="repo removed")
            continue
        kept_since = now - limits.branch_retention
        await _prune_branches(tasks, workspace, mirror, repo, ended_before=kept_since,
                              result=result)  # fmt: skip
        await _git_gc(workspace, mirror)
    await _drop_partial_mirrors(workspace, result)
    await asyncio.to_thread(_drop_temporary, repo_maps)
    if limits.budget_bytes > 0:
        await _enforce_budget(tasks, workspace, repo_maps, limits.budget_bytes, result)
    return result


# -- worktrees -------------------------------------------------------------------------------


def _is_leftover(state: TaskState | None, ended_before: datetime) -> bool:
    if state is None:  # no such task (deleted): nobody will use its worktree
        return True
    return state.status in TERMINAL and not state.has_job and state.updated_at < ended_before


async def _worktrees(
    tasks: HousekeepingRepo, workspace: Workspace, ended_before: datetime, result: Collected
) -> None:
    paths = await asyncio.to_thread(_worktree_dirs, workspace)
    states = await tasks.task_states([p.name for p in paths])
    for path in paths:
        if not _is_leftover(states.get(path.name), ended_before):
            continue
        mirror = await asyncio.to_thread(_linked_mirror, workspace, path)
        if mirror is None:  # no mirror of ours knows it: plain files
            if await _still_leftover(tasks, path.name, ended_before):
                size = await _remove_tree(path)
                _removed(result, size, "leftover worktree removed", path)
                result.worktrees.append(path.name)
            continue
        async with workspace.mirror_lock(mirror):  # a job creating it waits on this lock
            if not await _still_leftover(tasks, path.name, ended_before):
                continue
            size = await asyncio.to_thread(disk_usage, [path])
            await workspace.remove_stale(mirror, path, f"{BRANCH_PREFIX}{path.name}")
        _removed(result, size, "leftover worktree removed", path)
        result.worktrees.append(path.name)


async def _still_leftover(tasks: HousekeepingRepo, key: str, ended_before: datetime) -> bool:
    """Read again right before the removal: the task may have been queued meanwhile."""
    return _is_leftover((await tasks.task_states([key])).get(key), ended_before)


def _worktree_dirs(workspace: Workspace) -> list[Path]:
    if not workspace.worktrees_dir.is_dir():
        return []
    return sorted(p for p in workspace.worktrees_dir.iterdir()
                  if p.is_dir() and TASK_KEY_PATTERN.fullmatch(p.name))  # fmt: skip


def _linked_mirror(workspace: Workspace, worktree: Path) -> Path | None:
    """The mirror a worktree's `.git` file points into ("gitdir: <mirror>/worktrees/<KEY>")."""
    try:
        text = (worktree / ".git").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    mirror = Path(text.removeprefix("gitdir: ").strip()).parent.parent
    return mirror if mirror.parent == workspace.mirrors_dir and mirror.is_dir() else None


def _in_use(mirror: Path) -> bool:
    """Gone already, or a worktree of it still exists."""
    return not mirror.is_dir() or bool(_linked_worktrees(mirror))


def _linked_worktrees(mirror: Path) -> list[Path]:
    """Worktrees registered in the mirror whose directory still exists (not its spares,
    which live inside it and go with it)."""
    found = []
    for entry in sorted((mirror / "worktrees").glob("*/gitdir")):
        try:
            git_file = Path(entry.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            continue
        if git_file.parent.is_dir() and not spares.is_spare(mirror, git_file.parent):
            found.append(git_file.parent)
    return found


# -- mirrors ---------------------------------------------------------------------------------


def _mirrors(workspace: Workspace, pattern: str = "*.git") -> list[Path]:
    if not workspace.mirrors_dir.is_dir():
        return []
    return sorted(p for p in workspace.mirrors_dir.glob(pattern) if p.is_dir())


async def _drop_partial_mirrors(workspace: Workspace, result: Collected) -> None:
    """`<repo>.git.partial`: a mirror whose creation crashed (made under the mirror's lock,
    so holding it, nothing is making one now)."""
    for partial in await asyncio.to_thread(_mirrors, workspace, "*.git.partial"):
        async with workspace.mirror_lock(partial.with_suffix("")):  # <repo>.git's lock
            size = await _remove_tree(partial)
        _removed(result, size, "half-made mirror removed", partial)


async def _delete_mirror(
    tasks: HousekeepingRepo, workspace: Workspace, mirror: Path, result: Collected, *, why: str
) -> bool:
    """Delete a mirror of a repo that is gone, or inactive with no open task; not while a
    worktree uses it. Rechecked under its lock. True when deleted."""
    name = mirror.name.removesuffix(".git")
    async with workspace.mirror_lock(mirror):
        repo = next((r for r in await tasks.repo_states() if r.name == name), None)
        if repo is not None and (repo.active or repo.busy):
            return False
        if await asyncio.to_thread(_in_use, mirror):
            return False
        size = await _remove_tree(mirror)
        await _remove_tree(mirror.with_name(f"{mirror.name}.partial"))  # a crashed creation's
    _removed(result, size, "mirror deleted", mirror, why=why)
    result.mirrors.append(name)
    return True


async def _prune_branches(
    tasks: HousekeepingRepo, workspace: Workspace, mirror: Path, repo: RepoState, *,
    ended_before: datetime, result: Collected,
) -> None:  # fmt: skip
    listing = await run_git("for-each-ref", "--format=%(refname)", f"refs/heads/{BRANCH_PREFIX}",
                            cwd=mirror, check=False)  # fmt: skip
    keys = [ref.removeprefix(f"refs/heads/{BRANCH_PREFIX}") for ref in listing.text.split()]
    keys = [key for key in keys if TASK_KEY_PATTERN.fullmatch(key)]
    states = await tasks.task_states(keys)
    for key in keys:
        if not _may_prune(states.get(key), ended_before):
            continue
        branch = f"{BRANCH_PREFIX}{key}"
        async with workspace.mirror_lock(mirror):
            state = (await tasks.task_states([key])).get(key)
            if not _may_prune(state, ended_before) or not await _delivered(state, mirror, repo):
                continue
            deleted = await run_git("branch", "-D", "--quiet", branch, cwd=mirror, check=False)
        if deleted.returncode == 0:  # git refuses a branch checked out in a worktree
            log.info("task branch pruned", extra={"repo_name": repo.name, "branch": branch})
            result.branches.append(f"{repo.name}:{branch}")


def _may_prune(state: TaskState | None, ended_before: datetime) -> bool:
    """Unknown tasks' branches are left alone; blocked tasks may resume from theirs."""
    return (state is not None and state.status in PRUNABLE and not state.has_job
            and state.finished_at is not None and state.finished_at < ended_before)  # fmt: skip


async def _delivered(state: TaskState | None, mirror: Path, repo: RepoState) -> bool:
    """Nothing is lost with the branch: the task is done, its patches are stored, or it has
    no commits of its own."""
    if state is None:
        return False
    if state.status is TaskStatus.DONE or state.has_mbox:
        return True
    own = await run_git(
        "rev-list", "--count", f"refs/remotes/origin/{repo.default_branch}..refs/heads/"
        f"{BRANCH_PREFIX}{state.key}", cwd=mirror, check=False,
    )  # fmt: skip
    return own.returncode == 0 and own.text == "0"


async def _git_gc(workspace: Workspace, mirror: Path) -> None:
    """`git gc --auto` (usually nothing to do), in the foreground so the lock covers it."""
    async with workspace.mirror_lock(mirror):
        done = await run_git("-c", "gc.autoDetach=false", "gc", "--auto", "--quiet", cwd=mirror,
                             check=False, time_limit=GIT_GC_SECONDS)  # fmt: skip
    if done.returncode != 0:
        log.warning("git gc failed", extra={"mirror": str(mirror), "error": done.stderr[-500:]})


# -- the disk budget -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    last_used: float  # seconds since the epoch
    size: int
    path: Path
    mirror: bool  # else a repo-map cache file


async def _enforce_budget(
    tasks: HousekeepingRepo, workspace: Workspace, repo_maps: Path, budget: int, result: Collected
) -> None:
    usage = await asyncio.to_thread(disk_usage, [workspace.root, repo_maps])
    if usage <= budget:
        return
    idle = {r.name for r in await tasks.repo_states() if not r.active and not r.busy}
    candidates = await asyncio.to_thread(_candidates, workspace, repo_maps, idle)
    for candidate in sorted(candidates, key=lambda c: (c.last_used, str(c.path))):
        if usage <= budget:
            break
        if candidate.mirror:
            before = result.freed_bytes
            if await _delete_mirror(tasks, workspace, candidate.path, result, why="over budget"):
                usage -= result.freed_bytes - before
            continue
        try:
            await asyncio.to_thread(candidate.path.unlink)
        except FileNotFoundError:
            continue
        usage -= candidate.size
        _removed(result, candidate.size, "repo map cache deleted", candidate.path,
                 why="over budget")  # fmt: skip
        result.repo_maps.append(candidate.path.name)
    result.over_budget_bytes = max(0, usage - budget)
    if usage > budget:
        log.warning("disk budget still exceeded: only active repos' data is left",
                    extra={"usage_bytes": usage, "budget_bytes": budget})  # fmt: skip


def _candidates(workspace: Workspace, repo_maps: Path, idle: set[str]) -> list[_Candidate]:
    found = []
    for path in sorted(repo_maps.glob("*.json")):
        with contextlib.suppress(FileNotFoundError):
            stat = path.stat()
            found.append(_Candidate(max(stat.st_atime, stat.st_mtime), _blocks(stat), path,
                                    mirror=False))  # fmt: skip
    for mirror in _mirrors(workspace):
        if mirror.name.removesuffix(".git") in idle and not _linked_worktrees(mirror):
            found.append(_Candidate(_mirror_last_used(mirror), disk_usage([mirror]), mirror,
                                    mirror=True))  # fmt: skip
    return found


def _mirror_last_used(mirror: Path) -> float:
    """When a task last fetched it or made a worktree in it."""
    newest = 0.0
    for part in ("", "FETCH_HEAD", "HEAD", "packed-refs", "refs/heads", "worktrees"):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, (mirror / part).stat().st_mtime)
    return newest


def disk_usage(paths: list[Path]) -> int:
    """Bytes the files under `paths` take on disk (like du; symlinks not followed)."""
    total = 0
    for root in paths:
        with contextlib.suppress(FileNotFoundError):
            total += _blocks(root.lstat())
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    total += _blocks(os.lstat(os.path.join(folder, name)))
    return total


def _blocks(stat: os.stat_result) -> int:
    return stat.st_blocks * 512


def _drop_temporary(repo_maps: Path) -> None:
    """Half-written repo maps of a crashed writer (`.map-*.tmp`), after an hour."""
    if not repo_maps.is_dir():
        return
    cutoff = time.time() - TEMPORARY_AGE_SECONDS
    for path in repo_maps.glob(".map-*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


async def _remove_tree(path: Path) -> int:
    return await asyncio.to_thread(_rmtree, path)


def _rmtree(path: Path) -> int:
    """Delete a directory tree; the bytes it took (0 if it was not there)."""
    if not path.exists():
        return 0
    size = disk_usage([path])
    shutil.rmtree(path, ignore_errors=True)
    return size


def _removed(result: Collected, size: int, what: str, path: Path, *, why: str = "") -> None:
    result.freed_bytes += size
    log.info(what, extra={"path": str(path), "bytes": size, "why": why or "leftover"})
