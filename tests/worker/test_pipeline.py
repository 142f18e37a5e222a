"""The whole task pipeline (jobs.run_task) on real git repos with scripted agents."""

from __future__ import annotations

import asyncio
import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TypeAlias

import asyncpg
import pytest

from storage.artifacts import ArtifactRepo
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from tests.gitrepos import commit_file, git, make_repo
from tests.procs import wait_gone
from tests.worker.running import worker_deps
from worker import jobs
from worker.deps import WorkerDeps
from worker.queue import submit_task
from worker.settings import WorkerSettings

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
AGENTS = Path(__file__).resolve().parents[1] / "fakes" / "agents"
PIPELINE_AGENT = AGENTS / "pipeline_agent.py"
PY = shlex.quote(sys.executable)
CHECK_CALC = f'{PY} -c "import calc; assert calc.add(2, 3) == 5"'


@pytest.fixture
def deps(pool: Pool, tmp_path: Path) -> WorkerDeps:
    return worker_deps(
        pool, tmp_path, settings=WorkerSettings(concurrency=2, agent_timeout_seconds=20)
    )


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "upstream", {"README.md": "# Demo\n", "docs/a.md": "a\n"})


async def _repo(
    pool: Pool, upstream: Path, mode: str, max_attempts: int = 3, **checks: str
) -> Repo:
    command = f"{PY} {shlex.quote(str(PIPELINE_AGENT))} {{prompt}} {mode}"
    new = NewRepo(name=f"demo-{mode}", source=str(upstream), default_branch="main",
                  agent_backend="command", agent_command=command,
                  git_author_name="Agent", git_author_email="agent@example.invalid",
                  max_attempts=max_attempts, **checks)  # type: ignore[arg-type]  # fmt: skip
    return await RepoRepo(pool).add(new)


async def _submit(pool: Pool, repo: Repo, title: str = "Say hello") -> Task:
    async with pool.acquire() as conn:
        return await submit_task(conn, NewTask(repo_id=repo.id, title=title))


async def _kinds(pool: Pool, task: Task) -> list[str]:
    return [e.kind.value for e in await TaskEventRepo(pool).for_task(task.id)]


def _apply_mbox(upstream: Path, mbox: bytes, into: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(upstream), str(into)], check=True)
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid", "am", "-q"],
                   input=mbox, cwd=into, check=True)  # fmt: skip
    return into


async def test_task_ends_done_with_a_mbox_that_applies(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    repo = await _repo(pool, upstream, "write", test_command="test -f hello.txt")
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert done.branch == f"agent/{task.key}"
    kinds = await _kinds(pool, task)
    for kind in ("workspace_ready", "agent_started", "agent_finished", "verify_started",
                 "verify_passed", "patches_generated", "task_done"):  # fmt: skip
        assert kind in kinds
    assert (
        kinds.index("verify_passed") < kinds.index("patches_generated") < kinds.index("task_done")
    )
    files = [a.filename for a in await ArtifactRepo(pool).for_task(task.id)]
    assert "combined.mbox" in files
    assert any(f.startswith("0001-") and f.endswith(".patch") for f in files)

    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    clone = _apply_mbox(upstream, mbox, tmp_path / "clone")
    assert (clone / "hello.txt").read_text() == "hello from the agent\n"
    assert (clone / "README.md").read_text() == "# Demo\nEdited by the agent.\n"
    assert git(clone, "log", "-1", "--format=%an <%ae>") == "Agent <agent@example.invalid>"
    # the worktree is gone, the branch stays in the mirror
    assert not deps.workspace.worktree_path(task.key).exists()
    mirror = deps.workspace.mirror_path(repo.name)
    assert git(mirror, "rev-parse", f"agent/{task.key}") == done.head_commit


async def test_failed_check_is_fed_back_and_the_retry_passes(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    repo = await _repo(pool, upstream, "fix", test_command=CHECK_CALC)
    task = await _submit(pool, repo, "Add an adder")
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert [r.attempt for r in runs] == [1, 2]
    assert runs[0].verify is not None
    assert runs[0].verify["passed"] is False
    assert "AssertionError" in runs[0].verify["steps"][0]["tail"]
    assert runs[1].verify is not None
    assert runs[1].verify["passed"] is True
    kinds = await _kinds(pool, task)
    assert kinds.count("verify_failed") == 1
    assert "retry_scheduled" in kinds
    clone = _apply_mbox(upstream, await ArtifactRepo(pool).content(task.id, "combined.mbox"),
                        tmp_path / "clone")  # fmt: skip
    assert (clone / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"


async def test_agent_commits_and_leftovers_both_reach_the_patches(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    repo = await _repo(pool, upstream, "commit")
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.DONE
    names = [a.filename for a in await ArtifactRepo(pool).for_task(task.id)]
    assert sum(n.endswith(".patch") for n in names) == 2
    clone = _apply_mbox(upstream, await ArtifactRepo(pool).content(task.id, "combined.mbox"),
                        tmp_path / "clone")  # fmt: skip
    assert (clone / "first.txt").exists()
    assert (clone / "second.txt").exists()


async def test_exhausted_attempts_end_failed_with_the_reason(
    pool: Pool, deps: WorkerDeps, upstream: Path
) -> None:
    red = "echo 'boom: tests are red'; exit 1"
    repo = await _repo(pool, upstream, "write", max_attempts=2, test_command=red)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "verification failed at step test" in failed.status_reason
    assert "2 attempt" in failed.status_reason
    assert len(await TaskRunRepo(pool).for_task(task.id)) == 2
    # The output named no known class: two classified failures, then the end and its memory.
    kinds = await _kinds(pool, task)
    assert kinds.count("error_classified") == 2
    assert kinds[-2:] == ["task_failed", "memory_written"]


async def test_agent_without_changes_fails(pool: Pool, deps: WorkerDeps, upstream: Path) -> None:
    repo = await _repo(pool, upstream, "noop", max_attempts=1)
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "no changes" in failed.status_reason


async def test_crashing_agent_is_retried_then_fails(
    pool: Pool, deps: WorkerDeps, upstream: Path
) -> None:
    repo = await _repo(pool, upstream, "fail")
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, deps)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert [r.error_class for r in runs] == ["crash", "crash", "crash"]
    assert "agent exploded" in runs[0].output_tail


async def test_two_tasks_on_one_repo_run_in_parallel_without_touching_each_other(
    pool: Pool, deps: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    repo = await _repo(pool, upstream, "write")
    first, second = await _submit(pool, repo, "one"), await _submit(pool, repo, "two")
    await asyncio.gather(jobs.run_task(first.id, deps), jobs.run_task(second.id, deps))
    for task in (first, second):
        done = await TaskRepo(pool).by_id(task.id)
        assert done.status is TaskStatus.DONE, done.status_reason
        patches = [a for a in await ArtifactRepo(pool).for_task(task.id)
                   if a.filename.endswith(".patch")]  # fmt: skip
        assert len(patches) == 1  # only its own commit, not the other task's
    mirror = deps.workspace.mirror_path(repo.name)
    branches = git(mirror, "branch", "--format=%(refname:short)").split()
    assert sorted(branches) == sorted([f"agent/{first.key}", f"agent/{second.key}"])


async def test_a_later_task_starts_from_fresh_upstream(
    pool: Pool, deps: WorkerDeps, upstream: Path
) -> None:
    repo = await _repo(pool, upstream, "marker")
    first = await _submit(pool, repo, "first")
    await jobs.run_task(first.id, deps)
    new_head = commit_file(upstream, "docs/b.md", "b\n", "Upstream moves on")
    second = await _submit(pool, repo, "second")
    await jobs.run_task(second.id, deps)
    done = await TaskRepo(pool).by_id(second.id)
    assert done.status is TaskStatus.DONE
    assert done.base_commit == new_head
    mbox = await ArtifactRepo(pool).content(second.id, "combined.mbox")
    assert b"+b.md" in mbox  # the agent saw the upstream file


async def test_hanging_agent_is_killed_at_the_deadline(
    pool: Pool, pool_deps_timeout: WorkerDeps, upstream: Path, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    command = f"{PY} {shlex.quote(str(AGENTS / 'hang.py'))} {shlex.quote(str(pids))} --ignore-term"
    repo = await RepoRepo(pool).add(NewRepo(name="hangs", source=str(upstream),
                                            default_branch="main", agent_backend="command",
                                            agent_command=command, max_attempts=1))  # fmt: skip
    task = await _submit(pool, repo)
    await jobs.run_task(task.id, pool_deps_timeout)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert runs[0].error_class == "timeout"
    assert runs[0].duration_seconds is not None
    assert runs[0].duration_seconds < 10
    for pid in map(int, pids.read_text().split()):  # the agent and its child are both gone
        assert await wait_gone(pid)


@pytest.fixture
def pool_deps_timeout(deps: WorkerDeps) -> WorkerDeps:
    return dataclasses.replace(deps, settings=WorkerSettings(agent_timeout_seconds=1.5))


async def test_a_cancelled_task_is_not_run(pool: Pool, deps: WorkerDeps, upstream: Path) -> None:
    repo = await _repo(pool, upstream, "write")
    task = await _submit(pool, repo)
    await TaskRepo(pool).move(task.id, TaskStatus.CANCELLED)
    await jobs.run_task(task.id, deps)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.CANCELLED
    assert await TaskRunRepo(pool).for_task(task.id) == []
