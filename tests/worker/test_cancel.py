"""Cancelling a task: the agent (or check) is stopped, its partial work kept as patches."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.artifacts import ArtifactRepo
from storage.task_events import TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.gitrepos import git
from tests.procs import wait_gone
from tests.worker.running import (
    Pool,
    add_repo,
    hang_agent,
    pipeline_agent,
    running_worker,
    submit,
    wait_pids,
    wait_status,
    worker_deps,
)
from worker import jobs
from worker.queue import queue_task
from worker.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """Where run_worker(home=tmp_path / "home") keeps its mirrors and worktrees."""
    return Workspace(tmp_path / "home" / "workspaces")


async def test_cancel_stops_the_agent_and_keeps_its_partial_work(
    pool: Pool, db_dsn: str, upstream: Path, workspace: Workspace, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    repo = await add_repo(pool, upstream, hang_agent(pids, "--write", "partial.txt"))
    task = await submit(pool, repo)
    async with running_worker(db_dsn, tmp_path / "home"):
        await wait_status(pool, task.id, TaskStatus.RUNNING)
        agent_pids = await wait_pids(pids)
        await TaskRepo(pool).request_cancel(task.id, "alice")
        cancelled = await wait_status(pool, task.id, TaskStatus.CANCELLED, within=10)

    assert cancelled.status_reason == "cancelled by alice"
    for pid in agent_pids:  # the agent and its child
        assert await wait_gone(pid)
    assert not workspace.worktree_path(task.key).exists()
    mirror = workspace.mirror_path(repo.name)
    branch = f"agent/{task.key}"
    assert git(mirror, "show", f"{branch}:partial.txt") == "partial work"
    assert (
        git(mirror, "log", "-1", "--format=%s", branch) == "WIP: partial work, cancelled by alice"
    )
    assert git(mirror, "log", "-1", "--format=%an", branch) == "Agent"
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+partial work" in mbox
    events = await TaskEventRepo(pool).for_task(task.id)
    kinds = [e.kind.value for e in events]
    assert kinds[-3:] == ["patches_generated", "status_changed", "task_cancelled"]
    assert events[-1].payload == {"reason": "cancelled by alice", "commits": 1, "branch": branch}


async def test_a_missed_cancel_notify_is_still_obeyed(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    repo = await add_repo(pool, upstream, hang_agent(pids))
    task = await submit(pool, repo)
    async with running_worker(db_dsn, tmp_path / "home"):  # re-checks every 0.5 s
        await wait_status(pool, task.id, TaskStatus.RUNNING)
        agent_pids = await wait_pids(pids)
        await pool.execute(
            "UPDATE tasks SET cancel_requested_at = now(), cancel_requested_by = 'sql' "
            "WHERE id = $1",
            task.id,
        )  # no NOTIFY
        cancelled = await wait_status(pool, task.id, TaskStatus.CANCELLED, within=10)
    assert cancelled.status_reason == "cancelled by sql"
    for pid in agent_pids:
        assert await wait_gone(pid)


async def test_cancel_during_verification_stops_the_check(
    pool: Pool, db_dsn: str, upstream: Path, workspace: Workspace, tmp_path: Path
) -> None:
    pids = tmp_path / "check-pids"
    repo = await add_repo(pool, upstream, pipeline_agent("write"), test_command=hang_agent(pids))
    task = await submit(pool, repo)
    async with running_worker(db_dsn, tmp_path / "home"):
        await wait_status(pool, task.id, TaskStatus.VERIFYING)
        check_pids = await wait_pids(pids)
        await TaskRepo(pool).request_cancel(task.id, "bob")
        cancelled = await wait_status(pool, task.id, TaskStatus.CANCELLED, within=10)

    assert cancelled.status_reason == "cancelled by bob"
    for pid in check_pids:
        assert await wait_gone(pid)
    # The agent's finished attempt is the partial work; nothing the check left is committed.
    mirror = workspace.mirror_path(repo.name)
    assert git(mirror, "log", "-1", "--format=%s", f"agent/{task.key}") == f"{task.key}: Say hello"
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"+hello from the agent" in mbox


async def test_cancel_requested_before_the_job_starts_runs_no_agent(
    pool: Pool, upstream: Path, workspace: Workspace, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    repo = await add_repo(pool, upstream, hang_agent(pids))
    task = await submit(pool, repo)
    await TaskRepo(pool).request_cancel(task.id, "carol")  # the job is already on its way
    deps = worker_deps(pool, tmp_path, workspace)
    await jobs.run_task(task.id, deps)

    cancelled = await TaskRepo(pool).by_id(task.id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.status_reason == "cancelled by carol"
    assert await TaskRunRepo(pool).for_task(task.id) == []
    assert not pids.exists()
    assert not workspace.mirror_path(repo.name).exists()


async def test_a_cancelled_task_queued_again_runs_to_done(
    pool: Pool, db_dsn: str, upstream: Path, tmp_path: Path
) -> None:
    pids, release = tmp_path / "pids", tmp_path / "release"
    agent = hang_agent(pids, "--write", "partial.txt", "--until", str(release))
    repo = await add_repo(pool, upstream, agent)
    task = await submit(pool, repo)
    async with running_worker(db_dsn, tmp_path / "home"):
        await wait_status(pool, task.id, TaskStatus.RUNNING)
        await wait_pids(pids)
        await TaskRepo(pool).request_cancel(task.id, "alice")
        cancelled = await wait_status(pool, task.id, TaskStatus.CANCELLED, within=10)

        release.touch()  # this time the agent finishes
        async with pool.acquire() as conn, conn.transaction():
            queued = await queue_task(conn, cancelled)
        assert queued.cancel_requested_at is None
        assert (await TaskRepo(pool).by_id(task.id)).cancel_requested_at is None
        done = await wait_status(pool, task.id, TaskStatus.DONE)

    assert done.status_reason == "1 commit(s) ready as patches"
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"WIP: partial work, cancelled by alice" in mbox


async def test_shutdown_after_a_cancel_request_cancels_instead_of_requeueing(
    pool: Pool, upstream: Path, workspace: Workspace, tmp_path: Path
) -> None:
    repo = await add_repo(pool, upstream, hang_agent(tmp_path / "pids"))
    task = await submit(pool, repo)
    await TaskRepo(pool).move(task.id, TaskStatus.PREPARING)  # the job was running …
    await TaskRepo(pool).request_cancel(task.id, "dave")  # … and had not obeyed yet
    deps = worker_deps(pool, tmp_path, workspace)
    await jobs.requeue_interrupted(task.id, deps)
    cancelled = await TaskRepo(pool).by_id(task.id)
    assert cancelled.status is TaskStatus.CANCELLED
    assert cancelled.status_reason == "cancelled by dave"
