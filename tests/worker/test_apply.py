"""`apply` tasks (worker/apply.py) through jobs.run_task on real git repositories: a patch
series made with `git format-patch` is applied with `git am --3way`, checked and delivered;
its authors are kept, a conflict or a failed check fails it, the preflight still guards."""

from __future__ import annotations

import random
import string
import subprocess
from pathlib import Path
from typing import TypeAlias

import asyncpg
import pytest

from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import TaskEventRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from tests.gitrepos import commit_file, git, git_env, make_repo
from tests.worker.running import worker_deps
from worker import jobs
from worker.deps import WorkerDeps
from worker.preflight import preflight
from worker.queue import queue_task, submit_task

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
ALICE = "Alice Example <alice@example.invalid>"
BOB = "Bob Builder <bob@example.invalid>"
BOT = "Shop Bot <bot@shop.invalid>"
BASE = {"README.md": "# Shop\n\nSells things.\n", "src/app.py": "def main():\n    return 1\n"}


@pytest.fixture
def deps(pool: Pool, tmp_path: Path) -> WorkerDeps:
    return worker_deps(pool, tmp_path)


def author_commit(repo: Path, name: str, content: str, message: str, author: str) -> None:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(content)
    git(repo, "add", "--", name)
    git(repo, "commit", "--quiet", f"--author={author}", "-m", message)


def commit_as_the_repo(repo: Path) -> None:
    """Amend the last commit: its author stays, the committer becomes the repo's identity."""
    committer = {"GIT_COMMITTER_NAME": "Shop Bot", "GIT_COMMITTER_EMAIL": "bot@shop.invalid"}
    subprocess.run(["git", "-C", str(repo), "commit", "--amend", "--quiet", "--no-edit"],
                   env=git_env() | committer, check=True)  # fmt: skip


def format_patch(repo: Path, since: str) -> bytes:
    """`git format-patch --stdout since..HEAD`, byte for byte."""
    return subprocess.run(["git", "-C", str(repo), "format-patch", "--stdout", f"{since}..HEAD"],
                          env=git_env(), capture_output=True, check=True).stdout  # fmt: skip


def series(tmp_path: Path, *, from_repo: Path | None = None) -> bytes:
    """Two commits by two people: Alice edits README.md, Bob adds src/greet.py."""
    if from_repo is None:
        source = make_repo(tmp_path / "elsewhere", BASE)
    else:
        source = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(from_repo), str(source))
    base = git(source, "rev-parse", "HEAD")
    author_commit(source, "README.md", "# Shop\n\nSells things, and greets.\n", "Say it greets",
                  ALICE)  # fmt: skip
    author_commit(source, "src/greet.py", "def greet():\n    return 'hi'\n", "Add greet()", BOB)
    return format_patch(source, base)


async def add_repo(pool: Pool, upstream: Path, **checks: str) -> Repo:
    new = NewRepo(name="shop", source=str(upstream), default_branch="main",
                  git_author_name="Shop Bot", git_author_email="bot@shop.invalid",
                  **checks)  # type: ignore[arg-type]  # fmt: skip
    return await RepoRepo(pool).add(new)


async def submit_apply(pool: Pool, repo: Repo, mbox: bytes) -> Task:
    """What the bot does on Apply: the task and its source series in one transaction."""
    new = NewTask(repo_id=repo.id, title="Apply: Say it greets (+1 more)", kind="apply")
    async with pool.acquire() as conn, conn.transaction():
        task = await submit_task(conn, new)
        await ArtifactRepo(conn).put(task.id, ArtifactKind.SOURCE, "source.mbox", mbox)
    return task


def branch_log(deps: WorkerDeps, repo: Repo, task: Task) -> list[str]:
    """author | committer | subject of the task branch's commits, oldest first."""
    mirror = deps.workspace.mirror_path(repo.name)
    out = git(mirror, "log", "--reverse", "--format=%an <%ae>|%cn <%ce>|%s",
              f"refs/remotes/origin/main..agent/{task.key}")  # fmt: skip
    return out.splitlines() if out else []


async def kinds(pool: Pool, task: Task) -> list[str]:
    return [e.kind.value for e in await TaskEventRepo(pool).for_task(task.id)]


async def test_a_series_applies_keeping_its_authors_and_is_delivered(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "shop", BASE)
    repo = await add_repo(pool, upstream, test_command="test -f src/greet.py")
    task = await submit_apply(pool, repo, series(tmp_path))
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert branch_log(deps, repo, task) == [
        f"{ALICE}|{BOT}|Say it greets",
        f"{BOB}|{BOT}|Add greet()",
    ]
    events = await kinds(pool, task)
    assert "agent_started" not in events
    assert "repo_map_built" not in events  # no context is gathered for an agent that never runs
    for kind in ("verify_started", "verify_passed", "preflight_passed", "patches_generated"):
        assert kind in events
    statuses = [e.payload["to"] for e in await TaskEventRepo(pool).for_task(task.id)
                if e.kind.value == "status_changed"]  # fmt: skip
    assert statuses == ["queued", "preparing", "running", "verifying", "delivering", "done"]
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"From: Alice Example <alice@example.invalid>" in mbox
    assert b"From: Bob Builder <bob@example.invalid>" in mbox
    assert not deps.workspace.worktree_path(task.key).exists()


async def test_a_conflict_fails_naming_the_files_and_applies_nothing(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "shop", BASE)
    mbox = series(tmp_path, from_repo=upstream)  # made on the same base: 3-way is possible
    commit_file(upstream, "README.md", "# Shop\n\nSells other things.\n", "Upstream moved")
    repo = await add_repo(pool, upstream)
    task = await submit_apply(pool, repo, mbox)
    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert 'patch 1 "Say it greets" does not apply: conflicts in README.md' in failed.status_reason
    assert "nothing was applied" in failed.status_reason
    assert branch_log(deps, repo, task) == []  # git am --abort: the branch is as it was


async def test_a_patch_without_a_common_base_names_its_file(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    """No 3-way merge is possible (the blobs are not in this repo): git's errors name it."""
    upstream = make_repo(tmp_path / "shop", {**BASE, "README.md": "# A different shop\n"})
    repo = await add_repo(pool, upstream)
    task = await submit_apply(pool, repo, series(tmp_path))
    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "does not apply: conflicts in README.md" in failed.status_reason


async def test_a_failed_check_fails_with_its_tail_and_a_retry_starts_afresh(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "shop", BASE)
    flag = tmp_path / "broken"
    flag.write_text("")
    check = f"if [ -f {flag} ]; then echo 'greet is broken: boom'; exit 3; fi"
    repo = await add_repo(pool, upstream, test_command=check)
    task = await submit_apply(pool, repo, series(tmp_path))
    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "check test" in failed.status_reason
    assert "exited with 3" in failed.status_reason
    assert "greet is broken: boom" in failed.status_reason  # the tail: no agent to hand it to
    assert "verify_failed" in await kinds(pool, task)

    flag.unlink()
    async with pool.acquire() as conn, conn.transaction():
        await queue_task(conn, failed)
    await jobs.run_task(task.id, deps)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert len(branch_log(deps, repo, task)) == 2  # applied once more, not on top of the first


async def test_the_preflight_still_blocks_a_secret_a_patch_adds(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    rng = random.Random(3)
    token = "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    source = make_repo(tmp_path / "elsewhere", BASE)
    base = git(source, "rev-parse", "HEAD")
    author_commit(source, "src/config.py", f'TOKEN = "{token}"\n', "Add config", ALICE)
    upstream = make_repo(tmp_path / "shop", BASE)
    repo = await add_repo(pool, upstream)
    task = await submit_apply(pool, repo, format_patch(source, base))
    await jobs.run_task(task.id, deps)

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert "src/config.py:1" in blocked.status_reason
    assert token not in blocked.status_reason
    assert "identity" not in blocked.status_reason  # Alice's authorship is no finding
    assert [a.kind for a in await ArtifactRepo(pool).for_task(task.id)] == [ArtifactKind.SOURCE]


async def test_without_check_author_only_the_committer_must_be_the_repo(
    pool: Pool, tmp_path: Path
) -> None:
    work = make_repo(tmp_path / "w", BASE)
    base = git(work, "rev-parse", "HEAD")
    author_commit(work, "a.txt", "a\n", "By Alice, committed by the tests", ALICE)
    repo = await add_repo(pool, tmp_path / "w")
    # The tests commit as "Test Author": not the repo's identity.
    strict = await preflight(work, base, repo)
    kept = await preflight(work, base, repo, check_author=False)
    assert [v.check for v in strict.violations] == ["identity"]
    assert [v.check for v in kept.violations] == ["identity"]  # the committer is wrong too
    commit_as_the_repo(work)
    assert git(work, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == f"{ALICE}|{BOT}"
    assert not (await preflight(work, base, repo, check_author=False)).violations
    assert [v.check for v in (await preflight(work, base, repo)).violations] == ["identity"]
