"""Delivery through a whole job: the `pr` flow to a plain repository, the `direct` flow onto
a moving default branch, and the preflight stopping what must not leave."""

from __future__ import annotations

import random
import string
from pathlib import Path

from storage.artifacts import ArtifactRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.gitrepos import git
from tests.worker.delivery import Pool, add_repo, agent, bare_upstream, submit
from worker import jobs
from worker.deps import WorkerDeps

WRITE_HELLO = 'pathlib.Path("hello.txt").write_text("hello\\n")\n'


def _other_push(bare: Path, tmp_path: Path, name: str, content: str) -> str:
    """Agent code: someone else pushes `name` to the remote's main while the agent works."""
    other = tmp_path / "someone-else"
    return (
        f"subprocess.run(['git', 'clone', '-q', {str(bare)!r}, {str(other)!r}], check=True)\n"
        f"p = pathlib.Path({str(other / name)!r}); p.parent.mkdir(parents=True, exist_ok=True)\n"
        f"p.write_text({content!r})\n"
        f"subprocess.run(['git', '-C', {str(other)!r}, 'add', '-A'], check=True)\n"
        f"subprocess.run(['git', '-C', {str(other)!r}, '-c', 'user.name=Someone', '-c', "
        "'user.email=someone@example.invalid', 'commit', '-qm', 'upstream work'], check=True)\n"
        f"subprocess.run(['git', '-C', {str(other)!r}, 'push', '-q', 'origin', 'main'], "
        "check=True)\n"
    )


async def _events(pool: Pool, task_id: int) -> dict[str, dict[str, object]]:
    return {e.kind.value: e.payload for e in await TaskEventRepo(pool).for_task(task_id)}


async def test_pr_flow_to_a_plain_repository_pushes_the_branch(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    bare = bare_upstream(tmp_path)
    repo = await add_repo(
        pool, bare, agent(tmp_path, WRITE_HELLO), test_command="test -f hello.txt"
    )
    task = await submit(pool, repo, "pr")
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert done.status_reason == f"1 commit(s) on branch agent/{task.key} of {bare}"
    assert git(bare, "rev-parse", f"agent/{task.key}") == done.head_commit
    assert git(bare, "show", f"agent/{task.key}:hello.txt") == "hello"
    assert git(bare, "rev-parse", "main") == done.base_commit  # main untouched
    events = await _events(pool, task.id)
    assert events["preflight_passed"]["files"] == ["hello.txt"]
    assert events["branch_pushed"] == {"branch": f"agent/{task.key}", "commit": done.head_commit}
    assert "combined.mbox" in [a.filename for a in await ArtifactRepo(pool).for_task(task.id)]


async def test_direct_flow_rebases_onto_upstream_work_checks_again_and_pushes(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    bare = bare_upstream(tmp_path)
    code = _other_push(bare, tmp_path, "docs/other.md", "theirs\n") + WRITE_HELLO
    repo = await add_repo(pool, bare, agent(tmp_path, code),
                          test_command="test -f hello.txt")  # fmt: skip
    first_main = git(bare, "rev-parse", "main")
    task = await submit(pool, repo, "direct")
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    log = git(bare, "log", "--format=%s|%an", "main").splitlines()
    assert log == [f"{task.key}: Add a greeting|Agent", "upstream work|Someone",
                   "initial|Test Author"]  # fmt: skip
    assert git(bare, "merge-base", "--is-ancestor", first_main, "main") == ""  # no force-push
    theirs = git(bare, "rev-parse", "main~1")
    assert done.base_commit == theirs  # the patches start from the new main
    assert (
        done.status_reason == f"1 commit(s) pushed to main at {git(bare, 'rev-parse', 'main')[:12]}"
    )
    checks = [e.payload for e in await TaskEventRepo(pool).for_task(task.id)
              if e.kind is EventKind.VERIFY_PASSED]  # fmt: skip
    assert checks[-1].get("rebased") is True  # upstream moved: checked again after the rebase
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"docs/other.md" not in mbox
    assert b"hello.txt" in mbox


async def test_direct_flow_conflict_fails_naming_the_files_and_pushes_nothing(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    bare = bare_upstream(tmp_path)
    code = (_other_push(bare, tmp_path, "README.md", "# Theirs\n")
            + 'pathlib.Path("README.md").write_text("# Ours\\n")\n')  # fmt: skip
    repo = await add_repo(pool, bare, agent(tmp_path, code))
    task = await submit(pool, repo, "direct")
    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.status_reason.startswith("rebasing onto main conflicts in: README.md; "
                                           "nothing was pushed")  # fmt: skip
    assert git(bare, "log", "-1", "--format=%s", "main") == "upstream work"
    assert git(bare, "show", "main:README.md") == "# Theirs"


async def test_direct_flow_fails_when_the_rebased_change_breaks_its_checks(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    bare = bare_upstream(tmp_path)
    code = _other_push(bare, tmp_path, "BROKEN", "x\n") + WRITE_HELLO
    repo = await add_repo(pool, bare, agent(tmp_path, code), test_command="test ! -f BROKEN")
    task = await submit(pool, repo, "direct")
    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.status_reason == ("after rebasing onto the new main, step test fails; "
                                    "nothing was pushed")  # fmt: skip
    assert git(bare, "log", "-1", "--format=%s", "main") == "upstream work"


async def test_a_secret_blocks_the_task_and_nothing_leaves(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    rng = random.Random(5)
    token = "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    code = f'pathlib.Path("deploy.py").write_text("import os\\nTOKEN = \\"{token}\\"\\n")\n'
    bare = bare_upstream(tmp_path)
    repo = await add_repo(pool, bare, agent(tmp_path, code))
    task = await submit(pool, repo, "pr")
    await jobs.run_task(task.id, deps)

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert blocked.status_reason.startswith("preflight found 1 problem(s): deploy.py:2: ")
    assert blocked.status_reason.endswith("; nothing was pushed or sent")
    assert git(bare, "branch", "--list", "agent/*") == ""  # nothing pushed
    assert await ArtifactRepo(pool).for_task(task.id) == []  # no mbox for the chat either
    events = await TaskEventRepo(pool).for_task(task.id)
    [end] = [e for e in events if e.kind is EventKind.TASK_BLOCKED]
    assert end.payload["violations"][0]["path"] == "deploy.py"
    assert end.payload["violations"][0]["line"] == 2
    assert all(token not in str(e.payload) for e in events)
    assert token not in blocked.status_reason


async def test_a_forge_without_its_token_fails_before_any_agent_run(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    bare = bare_upstream(tmp_path)
    repo = await add_repo(pool, bare, agent(tmp_path, WRITE_HELLO), forge_kind="gitea",
                          forge_base_url="https://git.example.invalid", forge_owner="me",
                          forge_name="shop")  # fmt: skip
    task = await submit(pool, repo, "pr")
    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.status_reason == (
        "flow 'pr' cannot be delivered: shop's forge (gitea) needs a token: set GITEA_TOKEN in "
        "the worker's environment"
    )
    assert await TaskRunRepo(pool).for_task(task.id) == []


async def test_pushing_to_a_checked_out_branch_is_explained(
    pool: Pool, deps: WorkerDeps, tmp_path: Path, upstream: Path
) -> None:
    repo = await add_repo(pool, upstream, agent(tmp_path, WRITE_HELLO))
    task = await submit(pool, repo, "direct")
    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "git refuses pushes to a checked-out branch" in failed.status_reason
    assert git(upstream, "log", "-1", "--format=%s") == "initial"
