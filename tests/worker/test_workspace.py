from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
from pathlib import Path

import pytest

from tests.gitrepos import commit_file, git, make_repo
from worker import spares
from worker.git import GitError
from worker.workspace import Workspace, WorkspaceError, Worktree

AGENT_NAME = "DevServer Agent"
AGENT_EMAIL = "agent@devserver.invalid"


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "upstream", {"README.md": "hello\n", "src/app.py": "x = 1\n"})


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


async def _worktree(workspace: Workspace, upstream: Path, key: str) -> Worktree:
    mirror = await workspace.sync_mirror("app", str(upstream))
    return await workspace.create_worktree(mirror, key, "main")


async def test_mirror_from_local_path_sees_fresh_upstream(
    workspace: Workspace, upstream: Path
) -> None:
    mirror = await workspace.sync_mirror("app", str(upstream))
    assert mirror == workspace.root / "mirrors" / "app.git"
    first = await workspace.create_worktree(mirror, "APP-1", "main")
    assert first.path == workspace.root / "worktrees" / "APP-1"
    assert first.branch == "agent/APP-1"
    assert not first.resumed
    assert first.base_commit == git(upstream, "rev-parse", "HEAD")
    assert (first.path / "src" / "app.py").read_text() == "x = 1\n"
    # Upstream branches live only in refs/remotes; our branches only in refs/heads.
    heads = git(mirror, "for-each-ref", "--format=%(refname)", "refs/heads").split()
    assert heads == ["refs/heads/agent/APP-1"]

    new_commit = commit_file(upstream, "NEW.md", "fresh\n", "upstream moves on")
    await workspace.sync_mirror("app", str(upstream))
    second = await workspace.create_worktree(mirror, "APP-2", "main")
    assert second.base_commit == new_commit
    assert (second.path / "NEW.md").exists()
    assert not (first.path / "NEW.md").exists()


async def test_concurrent_worktrees_are_isolated(workspace: Workspace, upstream: Path) -> None:
    mirror = await workspace.sync_mirror("app", str(upstream))
    one, two = await asyncio.gather(
        workspace.create_worktree(mirror, "APP-1", "main"),
        workspace.create_worktree(mirror, "APP-2", "main"),
    )
    (one.path / "one.txt").write_text("1\n")
    (two.path / "two.txt").write_text("2\n")
    committed = await asyncio.gather(
        workspace.commit_all(one, "one", AGENT_NAME, AGENT_EMAIL),
        workspace.commit_all(two, "two", AGENT_NAME, AGENT_EMAIL),
    )
    assert all(committed)
    sha_one, sha_two = await workspace.head(one), await workspace.head(two)
    assert sha_one != sha_two
    assert not (one.path / "two.txt").exists()
    assert not (two.path / "one.txt").exists()
    assert git(mirror, "rev-parse", "refs/heads/agent/APP-1") == sha_one
    assert git(mirror, "rev-parse", "refs/heads/agent/APP-2") == sha_two

    # Fetching again (the next task starting) leaves checked-out agent branches alone.
    commit_file(upstream, "later.txt", "later\n", "later")
    await workspace.sync_mirror("app", str(upstream))
    assert git(mirror, "rev-parse", "refs/heads/agent/APP-1") == sha_one
    assert git(mirror, "rev-parse", "refs/heads/agent/APP-2") == sha_two
    assert git(mirror, "rev-parse", "refs/remotes/origin/main") == git(
        upstream, "rev-parse", "HEAD"
    )
    assert await workspace.commits_since_base(one) == [sha_one]
    assert await workspace.head(two) == sha_two


async def test_concurrent_sync_mirror_calls(tmp_path: Path, upstream: Path) -> None:
    # Two Workspace objects share no asyncio locks, like two processes: the flock decides.
    first, second = Workspace(tmp_path / "ws"), Workspace(tmp_path / "ws")
    mirrors = await asyncio.gather(
        *(ws.sync_mirror("app", str(upstream)) for ws in (first, second, first, second))
    )
    assert len(set(mirrors)) == 1
    head = git(mirrors[0], "rev-parse", "refs/remotes/origin/main")
    assert head == git(upstream, "rev-parse", "HEAD")


async def test_mirror_lock_excludes_other_processes(workspace: Workspace, upstream: Path) -> None:
    workspace.mirrors_dir.mkdir(parents=True)
    lock_file = workspace.mirrors_dir / "app.lock"
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process holding the mirror
        sync = asyncio.create_task(workspace.sync_mirror("app", str(upstream)))
        await asyncio.sleep(0.3)  # the event loop keeps running meanwhile
        assert not sync.done()
        assert not workspace.mirror_path("app").exists()
    finally:
        os.close(fd)
    assert await sync == workspace.mirror_path("app")


async def test_cancelled_lock_waiter_leaves_lock_free(workspace: Workspace, upstream: Path) -> None:
    workspace.mirrors_dir.mkdir(parents=True)
    fd = os.open(workspace.mirrors_dir / "app.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    waiter = asyncio.create_task(workspace.sync_mirror("app", str(upstream)))
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    os.close(fd)
    async with asyncio.timeout(5):
        await workspace.sync_mirror("app", str(upstream))


async def test_retry_resumes_branch(workspace: Workspace, upstream: Path) -> None:
    first = await _worktree(workspace, upstream, "APP-7")
    assert first.tree == git(first.path, "rev-parse", "HEAD^{tree}")  # the repo map's key
    (first.path / "work.txt").write_text("partial\n")
    assert await workspace.commit_all(first, "wip", AGENT_NAME, AGENT_EMAIL)
    sha = await workspace.head(first)
    await workspace.remove_worktree(first)
    assert not first.path.exists()
    assert git(first.mirror, "rev-parse", "refs/heads/agent/APP-7") == sha
    await workspace.remove_worktree(first)  # idempotent

    commit_file(upstream, "other.txt", "meanwhile\n", "upstream moves on")
    again = await _worktree(workspace, upstream, "APP-7")
    assert again.resumed
    assert again.base_commit == first.base_commit
    assert again.path == first.path
    assert (again.path / "work.txt").read_text() == "partial\n"
    assert again.tree == git(again.path, "rev-parse", "HEAD^{tree}") != first.tree
    assert await workspace.commits_since_base(again) == [sha]


async def test_stale_worktree_after_crash(tmp_path: Path, upstream: Path) -> None:
    crashed = await _worktree(Workspace(tmp_path / "ws"), upstream, "APP-3")
    (crashed.path / "half-done.txt").write_text("uncommitted\n")

    restarted = Workspace(tmp_path / "ws")  # a new process after the crash
    fresh = await _worktree(restarted, upstream, "APP-3")
    assert not (fresh.path / "half-done.txt").exists()
    assert fresh.resumed  # the branch survived the crash
    assert fresh.base_commit == crashed.base_commit

    shutil.rmtree(fresh.path)  # directory gone, registration left behind
    again = await restarted.create_worktree(fresh.mirror, "APP-3", "main")
    assert (again.path / "README.md").exists()
    listed = git(again.mirror, "worktree", "list", "--porcelain")
    assert listed.count("branch refs/heads/agent/APP-3") == 1


@pytest.mark.parametrize("spare", [False, True])
async def test_a_registration_left_for_a_new_tasks_path_is_cleared(
    workspace: Workspace, upstream: Path, spare: bool
) -> None:
    """A new task's branch does not exist yet, so its worktree is made without listing the
    mirror's worktrees first; a registration a crash left for its path is still cleared."""
    if spare:  # a finished task's worktree, parked as a spare
        await workspace.remove_worktree(await _worktree(workspace, upstream, "APP-1"))
    mirror = await workspace.sync_mirror("app", str(upstream))
    path = workspace.worktree_path("APP-5")
    git(mirror, "worktree", "add", "--quiet", "--detach", str(path), "refs/remotes/origin/main")
    shutil.rmtree(path)  # directory gone, registration left behind, no branch

    made = await workspace.create_worktree(mirror, "APP-5", "main")
    assert not made.resumed
    assert (made.path / "README.md").exists()
    assert git(made.path, "rev-parse", "--abbrev-ref", "HEAD") == "agent/APP-5"
    assert git(mirror, "worktree", "list", "--porcelain").count(f"worktree {path}\n") == 1
    if spare:  # it was used (its admin directory is APP-1's), not dropped for the path's fault
        assert spares.listed(mirror) == []
        assert (made.path / ".git").read_text().rstrip().endswith("/worktrees/APP-1")


@pytest.mark.parametrize(
    "task_key", ["../x", "a/b", "abc-1", "ABC", "ABC-1/../x", "-ABC-1", "ABC-1\n", "ABC-", ""]
)
async def test_invalid_task_keys_rejected(
    workspace: Workspace, upstream: Path, task_key: str
) -> None:
    mirror = await workspace.sync_mirror("app", str(upstream))
    with pytest.raises(WorkspaceError):
        await workspace.create_worktree(mirror, task_key, "main")


@pytest.mark.parametrize("repo_name", ["../x", "a/b", "..", ".hidden", ""])
async def test_invalid_repo_names_rejected(
    workspace: Workspace, upstream: Path, repo_name: str
) -> None:
    with pytest.raises(WorkspaceError):
        await workspace.sync_mirror(repo_name, str(upstream))


async def test_option_like_source_rejected(workspace: Workspace) -> None:
    with pytest.raises(WorkspaceError):
        await workspace.sync_mirror("app", "--upload-pack=touch /tmp/x")
    with pytest.raises(WorkspaceError):
        await workspace.default_branch("--upload-pack=touch /tmp/x")


async def test_default_branch_of_non_repository(workspace: Workspace, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError) as caught:
        await workspace.default_branch(str(plain))
    assert caught.value.returncode != 0
    assert caught.value.argv[:2] == ("git", "ls-remote")


async def test_default_branch_trunk(workspace: Workspace, tmp_path: Path) -> None:
    source = make_repo(tmp_path / "trunky", {"a.txt": "a\n"}, branch="trunk")
    assert await workspace.default_branch(str(source)) == "trunk"
    mirror = await workspace.sync_mirror("trunky", str(source))
    worktree = await workspace.create_worktree(mirror, "TR-1", "trunk")
    assert worktree.base_commit == git(source, "rev-parse", "HEAD")
    with pytest.raises(GitError):
        await workspace.create_worktree(mirror, "TR-2", "main")


async def test_default_branch_falls_back_to_master(workspace: Workspace, tmp_path: Path) -> None:
    work = make_repo(tmp_path / "work", {"a.txt": "a\n"}, branch="master")
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "--quiet", "--bare", str(bare))
    git(work, "push", "--quiet", str(bare), "HEAD:refs/heads/master")
    git(bare, "symbolic-ref", "HEAD", "refs/heads/gone")  # HEAD names no branch
    assert await workspace.default_branch(str(bare)) == "master"


async def test_commit_all(
    workspace: Workspace, upstream: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Someone Else")  # must not override the identity
    worktree = await _worktree(workspace, upstream, "APP-5")
    assert await workspace.commit_all(worktree, "nothing", AGENT_NAME, AGENT_EMAIL) is False

    (worktree.path / "README.md").unlink()
    (worktree.path / "new.txt").write_text("new\n")
    assert await workspace.commit_all(worktree, "APP-5: change", AGENT_NAME, AGENT_EMAIL)
    assert await workspace.head(worktree) != worktree.base_commit
    identity = git(worktree.path, "log", "-1", "--format=%an|%ae|%cn|%ce|%s")
    assert identity == f"{AGENT_NAME}|{AGENT_EMAIL}|{AGENT_NAME}|{AGENT_EMAIL}|APP-5: change"
    changed = git(worktree.path, "show", "--name-status", "--format=", "HEAD").splitlines()
    assert sorted(changed) == ["A\tnew.txt", "D\tREADME.md"]
    assert git(worktree.path, "status", "--porcelain") == ""


async def test_a_commit_git_refuses_is_an_error_not_nothing_to_commit(
    workspace: Workspace, upstream: Path
) -> None:
    worktree = await _worktree(workspace, upstream, "APP-6")
    (worktree.path / "new.txt").write_text("new\n")
    with pytest.raises(GitError, match="ident"):  # git refuses an empty name
        await workspace.commit_all(worktree, "APP-6: change", "", AGENT_EMAIL)
    assert git(worktree.path, "rev-parse", "HEAD") == worktree.base_commit


async def test_upstream_tag_moved(workspace: Workspace, upstream: Path) -> None:
    git(upstream, "tag", "v1")
    mirror = await workspace.sync_mirror("app", str(upstream))
    moved_to = commit_file(upstream, "b.txt", "b\n", "b")
    git(upstream, "tag", "--force", "v1")
    await workspace.sync_mirror("app", str(upstream))
    assert git(mirror, "rev-parse", "refs/tags/v1^{commit}") == moved_to


async def test_git_error_masks_credentials(workspace: Workspace) -> None:
    url = "https://user:s3cret@127.0.0.1:1/repo.git"
    with pytest.raises(GitError) as caught:
        await workspace.default_branch(url)
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in " ".join(caught.value.argv)
    assert "https://***@127.0.0.1:1/repo.git" in caught.value.argv


async def test_discard_changes_drops_leftovers_but_keeps_commits_and_ignored(
    tmp_path: Path,
) -> None:
    upstream = make_repo(tmp_path / "up", {"a.txt": "a\n", ".gitignore": "cache/\n"})
    workspace = Workspace(tmp_path / "ws")
    mirror = await workspace.sync_mirror("up", str(upstream))
    worktree = await workspace.create_worktree(mirror, "UP-9", "main")
    (worktree.path / "b.txt").write_text("b\n")
    assert await workspace.commit_all(worktree, "add b", "Agent", "agent@example.invalid")
    sha = await workspace.head(worktree)
    (worktree.path / "a.txt").write_text("changed by a test run\n")
    (worktree.path / "stray.log").write_text("log\n")
    (worktree.path / "cache").mkdir()
    (worktree.path / "cache" / "x").write_text("kept\n")
    await workspace.discard_changes(worktree)
    assert (worktree.path / "a.txt").read_text() == "a\n"
    assert not (worktree.path / "stray.log").exists()
    assert (worktree.path / "cache" / "x").exists()
    assert await workspace.head(worktree) == sha


async def test_locks_a_killed_git_left_are_cleared_so_the_work_can_be_committed(
    workspace: Workspace, upstream: Path
) -> None:
    worktree = await _worktree(workspace, upstream, "APP-9")
    (worktree.path / "half.txt").write_text("written before the worker died\n")
    gitdir = Path((worktree.path / ".git").read_text().removeprefix("gitdir:").strip())
    (gitdir / "index.lock").write_text("")  # a `git add` killed with its worker
    ref_lock = worktree.mirror / "refs" / "heads" / "agent" / "APP-9.lock"
    ref_lock.write_text("")
    with pytest.raises(GitError):
        await workspace.commit_all(worktree, "blocked", AGENT_NAME, AGENT_EMAIL)
    removed = workspace.clear_dead_locks(worktree.path, worktree.mirror, worktree.branch)
    assert sorted(removed) == sorted([gitdir / "index.lock", ref_lock])
    assert await workspace.commit_all(worktree, "saved", AGENT_NAME, AGENT_EMAIL)
    assert workspace.clear_dead_locks(worktree.path, worktree.mirror, worktree.branch) == []


async def test_a_changed_source_is_fetched_and_pushed_to_from_then_on(
    workspace: Workspace, upstream: Path, tmp_path: Path
) -> None:
    mirror = await workspace.sync_mirror("app", str(upstream))
    moved = make_repo(tmp_path / "moved", {"MOVED.md": "new home\n"})
    await workspace.sync_mirror("app", str(moved))
    assert git(mirror, "config", "remote.origin.url") == str(moved)
    assert git(mirror, "rev-parse", "refs/remotes/origin/main") == git(moved, "rev-parse", "HEAD")
    await workspace.sync_mirror("app", str(moved))  # unchanged: nothing to set again
    assert git(mirror, "config", "--get-all", "remote.origin.fetch") == (
        "+refs/heads/*:refs/remotes/origin/*"
    )
