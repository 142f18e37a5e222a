"""The disk clean-up, on real git mirrors and worktrees made by the workspace, and real rows."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import record_move
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from tests.gitrepos import git
from tests.worker.running import Pool
from worker import gc, spares
from worker.queue import submit_task
from worker.workspace import Workspace, Worktree

S = TaskStatus
PATHS = {
    S.RUNNING: [S.QUEUED, S.PREPARING, S.RUNNING],
    S.DONE: [S.QUEUED, S.PREPARING, S.RUNNING, S.DELIVERING, S.DONE],
    S.FAILED: [S.QUEUED, S.PREPARING, S.RUNNING, S.FAILED],
    S.BLOCKED: [S.QUEUED, S.PREPARING, S.RUNNING, S.BLOCKED],
    S.CANCELLED: [S.QUEUED, S.PREPARING, S.RUNNING, S.CANCELLED],
}
LIMITS = gc.Limits(budget_bytes=0, branch_retention=timedelta(days=14),
                   grace=timedelta(minutes=10))  # fmt: skip


def _later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def _repo(pool: Pool, upstream: Path, name: str = "demo") -> Repo:
    return await RepoRepo(pool).add(NewRepo(name=name, source=str(upstream), default_branch="main"))


async def _ended(pool: Pool, repo: Repo, status: TaskStatus) -> Task:
    """A task that went through a job to `status`; the job is over (no row left)."""
    key = await RepoRepo(pool).next_task_key(repo.id)
    task = await TaskRepo(pool).create(key, NewTask(repo_id=repo.id, title="t"))
    async with pool.acquire() as conn, conn.transaction():
        for step in PATHS[status]:
            task = await record_move(conn, task, step)
    return task


async def _running(pool: Pool, repo: Repo) -> Task:
    """A task a worker runs now: its job is queued or picked."""
    async with pool.acquire() as conn:
        task = await submit_task(conn, NewTask(repo_id=repo.id, title="busy"))
    async with pool.acquire() as conn, conn.transaction():
        for step in PATHS[S.RUNNING][1:]:
            task = await record_move(conn, task, step)
    return task


async def _work(workspace: Workspace, repo: Repo, key: str, *, commits: int = 1) -> Worktree:
    """Task `key`'s worktree, with `commits` commits of its own on agent/<KEY>."""
    mirror = await workspace.sync_mirror(repo.name, repo.source)
    worktree = await workspace.create_worktree(mirror, key, "main")
    for number in range(commits):
        (worktree.path / f"{key}-{number}.txt").write_text("change\n")
        await workspace.commit_all(worktree, f"{key} {number}", "Agent", "a@example.invalid")
    return worktree


def _branches(mirror: Path) -> list[str]:
    refs = git(mirror, "for-each-ref", "--format=%(refname)", "refs/heads/agent/")
    return [ref.removeprefix("refs/heads/") for ref in refs.split()]


def _registered(mirror: Path) -> list[str]:
    listing = git(mirror, "worktree", "list", "--porcelain")
    return sorted(Path(line.removeprefix("worktree ")).name for line in listing.splitlines()
                  if line.startswith("worktree ") and "/worktrees/" in line)  # fmt: skip


async def test_leftover_worktrees_go_and_an_active_tasks_stays(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    workspace = Workspace(tmp_path / "workspaces")
    repo = await _repo(pool, upstream)
    done = await _ended(pool, repo, S.DONE)
    blocked = await _ended(pool, repo, S.BLOCKED)
    active = await _running(pool, repo)
    for task in (done, blocked, active):
        await _work(workspace, repo, task.key)  # the worker crashed before removing them
    await _work(workspace, repo, "DEMO-99", commits=0)  # its task was deleted since
    mirror = workspace.mirror_path("demo")

    soon = await gc.collect(pool, workspace, tmp_path / "repo-maps", now=_later(), limits=LIMITS)
    assert soon.worktrees == ["DEMO-99"]  # the ended tasks may still be cleaning up: grace

    result = await gc.collect(pool, workspace, tmp_path / "repo-maps", now=_later(hours=1),
                              limits=LIMITS)  # fmt: skip
    assert sorted(result.worktrees) == sorted([done.key, blocked.key])
    assert sorted(p.name for p in workspace.worktrees_dir.iterdir()) == [active.key]
    assert _registered(mirror) == [active.key]
    assert (workspace.worktree_path(active.key) / f"{active.key}-0.txt").exists()
    assert result.freed_bytes > 0
    # branches stay: these tasks ended less than the retention ago, DEMO-99 is nobody's we know
    keys = [done.key, blocked.key, active.key, "DEMO-99"]
    assert sorted(_branches(mirror)) == sorted(f"agent/{key}" for key in keys)


async def test_old_branches_go_once_their_work_is_delivered_and_blocked_ones_stay(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    workspace = Workspace(tmp_path / "workspaces")
    repo = await _repo(pool, upstream)
    done = await _ended(pool, repo, S.DONE)
    blocked = await _ended(pool, repo, S.BLOCKED)
    failed_with_work = await _ended(pool, repo, S.FAILED)
    failed_empty = await _ended(pool, repo, S.FAILED)
    cancelled_sent = await _ended(pool, repo, S.CANCELLED)
    await ArtifactRepo(pool).put(cancelled_sent.id, ArtifactKind.MBOX, "combined.mbox", b"x")
    for task in (done, blocked, failed_with_work, failed_empty, cancelled_sent):
        worktree = await _work(workspace, repo, task.key, commits=int(task is not failed_empty))
        await workspace.remove_worktree(worktree)  # as the job does; the branch stays
    mirror = workspace.mirror_path("demo")

    kept = await gc.collect(pool, workspace, tmp_path / "maps", now=_later(days=13),
                            limits=LIMITS)  # fmt: skip
    assert kept.branches == []
    result = await gc.collect(pool, workspace, tmp_path / "maps", now=_later(days=15),
                              limits=LIMITS)  # fmt: skip
    assert sorted(result.branches) == sorted(
        f"demo:agent/{t.key}" for t in (done, failed_empty, cancelled_sent)
    )
    assert sorted(_branches(mirror)) == sorted(
        f"agent/{t.key}" for t in (blocked, failed_with_work)
    )
    assert git(mirror, "rev-parse", "--verify", "refs/remotes/origin/main")  # mirror intact


async def test_a_removed_repos_mirror_goes_an_inactive_ones_stays_under_budget(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    workspace = Workspace(tmp_path / "workspaces")
    await _repo(pool, upstream)
    await _repo(pool, upstream, "old")
    await pool.execute("UPDATE repos SET active = false WHERE name = 'old'")
    for name in ("demo", "old", "gone"):
        mirror = await workspace.sync_mirror(name, str(upstream))
        finished = await workspace.create_worktree(mirror, "DEMO-1", "main")
        await workspace.remove_worktree(finished)  # kept as a spare, inside the mirror
        assert spares.listed(mirror)
    (workspace.mirrors_dir / "new.git.partial" / "objects").mkdir(parents=True)  # a crash's
    result = await gc.collect(pool, workspace, tmp_path / "maps", now=_later(), limits=LIMITS)
    assert result.mirrors == ["gone"]
    assert sorted(p.name for p in workspace.mirrors_dir.glob("*.git*")) == ["demo.git", "old.git"]


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


async def test_over_budget_the_least_recently_used_caches_and_idle_mirrors_go_first(
    pool: Pool, upstream: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker.gc")
    workspace, maps = Workspace(tmp_path / "workspaces"), tmp_path / "repo-maps"
    demo = await _repo(pool, upstream)
    old = await _repo(pool, upstream, "old")
    await pool.execute("UPDATE repos SET active = false WHERE name = 'old'")
    active = await _running(pool, demo)
    await _work(workspace, demo, active.key)
    await workspace.sync_mirror(old.name, old.source)
    old_mirror = workspace.mirror_path("old")
    for part in ("", "FETCH_HEAD", "HEAD", "packed-refs", "refs/heads", "worktrees"):
        if (old_mirror / part).exists():
            _age(old_mirror / part, 2 * 86400)  # last fetched two days ago
    maps.mkdir()
    ages = {"a": 4 * 86400, "b": 3 * 86400, "c": 86400, "d": 3600}
    for name, age in ages.items():
        (maps / f"{name}.json").write_bytes(os.urandom(64 * 1024))
        _age(maps / f"{name}.json", age)

    usage = gc.disk_usage([workspace.root, maps])
    first_two = gc.disk_usage([maps / "a.json"]) + gc.disk_usage([maps / "b.json"])
    limits = gc.Limits(budget_bytes=usage - first_two - 1, branch_retention=timedelta(days=14),
                       grace=timedelta(minutes=10))  # fmt: skip
    result = await gc.collect(pool, workspace, maps, now=_later(), limits=limits)

    # a (4 days), b (3 days), then the idle mirror (2 days); c and d were not needed
    assert result.repo_maps == ["a.json", "b.json"]
    assert result.mirrors == ["old"]
    assert result.over_budget_bytes == 0
    assert sorted(p.name for p in maps.iterdir()) == ["c.json", "d.json"]
    assert not old_mirror.exists()
    assert workspace.mirror_path("demo").is_dir()  # an active repo's mirror: never
    assert (workspace.worktree_path(active.key) / f"{active.key}-0.txt").exists()
    assert gc.disk_usage([workspace.root, maps]) <= limits.budget_bytes
    logged = [(r.getMessage(), Path(r.__dict__["path"]).name) for r in caplog.records
              if r.__dict__.get("why") == "over budget"]  # fmt: skip
    assert logged == [("repo map cache deleted", "a.json"), ("repo map cache deleted", "b.json"),
                      ("mirror deleted", "old.git")]  # fmt: skip


async def test_a_budget_that_only_active_data_could_meet_is_reported_not_forced(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    workspace = Workspace(tmp_path / "workspaces")
    demo = await _repo(pool, upstream)
    active = await _running(pool, demo)
    await _work(workspace, demo, active.key)
    limits = gc.Limits(budget_bytes=1, branch_retention=timedelta(days=14),
                       grace=timedelta(minutes=10))  # fmt: skip
    result = await gc.collect(pool, workspace, tmp_path / "maps", now=_later(), limits=limits)
    assert result.mirrors == result.worktrees == result.repo_maps == []
    assert result.over_budget_bytes > 0
    assert workspace.worktree_path(active.key).is_dir()
