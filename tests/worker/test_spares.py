"""Spare worktrees (worker/spares.py): a reused checkout is what a fresh one would be."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.gitrepos import commit_file, git, make_repo
from worker import spares
from worker.workspace import Workspace, Worktree

FILES = {"README.md": "hello\n", "src/app.py": "x = 1\n", "src/util.py": "y = 2\n"}


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "upstream", FILES)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


async def _create(workspace: Workspace, upstream: Path, key: str) -> Worktree:
    mirror = await workspace.sync_mirror("app", str(upstream))
    return await workspace.create_worktree(mirror, key, "main")


def tree(path: Path) -> dict[str, str]:
    """Every file under `path` but `.git`, with its content."""
    found = {}
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            if not (folder == str(path) and name == ".git"):
                full = Path(folder, name)
                found[str(full.relative_to(path))] = full.read_text()
    return found


def mess_up(path: Path) -> None:
    """What a task may leave behind: edits, new files, ignored files, staged changes."""
    (path / "src" / "app.py").write_text("x = 'changed'\n")
    (path / "src" / "util.py").unlink()
    (path / "notes.txt").write_text("untracked\n")
    (path / ".gitignore").write_text("build/\n")
    (path / "build").mkdir()
    (path / "build" / "out.bin").write_text("ignored\n")
    (path / "staged.py").write_text("z = 3\n")
    git(path, "add", "staged.py")


async def test_a_finished_worktree_becomes_the_next_tasks_fresh_checkout(
    workspace: Workspace, upstream: Path
) -> None:
    first = await _create(workspace, upstream, "APP-1")
    mess_up(first.path)
    git(first.path, "commit", "--quiet", "-m", "task work")  # the staged file, on agent/APP-1
    (first.path / "later.py").write_text("staged, not committed\n")
    git(first.path, "add", "later.py")
    await workspace.remove_worktree(first)
    assert not first.path.exists()
    assert len(spares.listed(first.mirror)) == 1
    # The branch stays, held by no worktree.
    assert git(first.mirror, "rev-parse", "--verify", "refs/heads/agent/APP-1")
    assert "agent/APP-1" not in git(first.mirror, "worktree", "list", "--porcelain")

    moved_on = commit_file(upstream, "NEW.md", "fresh\n", "upstream moves on")
    second = await _create(workspace, upstream, "APP-2")
    assert spares.listed(first.mirror) == []  # the spare was taken
    assert not second.resumed
    assert second.base_commit == moved_on
    assert tree(second.path) == {**FILES, "NEW.md": "fresh\n"}
    assert git(second.path, "status", "--porcelain", "--ignored") == ""
    assert git(second.path, "symbolic-ref", "HEAD") == "refs/heads/agent/APP-2"
    assert git(second.path, "rev-parse", "HEAD") == moved_on
    # The first task's branch is untouched by the reuse.
    assert git(first.mirror, "show", "agent/APP-1:staged.py") == "z = 3"


async def test_a_resumed_task_gets_its_branch_through_a_spare(
    workspace: Workspace, upstream: Path
) -> None:
    first = await _create(workspace, upstream, "APP-1")
    commit_file(first.path, "work.py", "w = 1\n", "work in progress")
    other = await _create(workspace, upstream, "APP-2")
    await workspace.remove_worktree(first)
    await workspace.remove_worktree(other)
    assert len(spares.listed(first.mirror)) == 2

    resumed = await _create(workspace, upstream, "APP-1")
    assert resumed.resumed
    assert resumed.base_commit == git(upstream, "rev-parse", "HEAD")
    assert tree(resumed.path) == {**FILES, "work.py": "w = 1\n"}
    assert git(resumed.path, "symbolic-ref", "HEAD") == "refs/heads/agent/APP-1"


async def test_a_worktree_with_a_merge_in_progress_is_deleted_not_kept(
    workspace: Workspace, upstream: Path
) -> None:
    first = await _create(workspace, upstream, "APP-1")
    admin = Path((first.path / ".git").read_text().removeprefix("gitdir: ").strip())
    (admin / "MERGE_HEAD").write_text(git(upstream, "rev-parse", "HEAD") + "\n")
    await workspace.remove_worktree(first)
    assert not first.path.exists()
    assert spares.listed(first.mirror) == []


async def test_a_mirror_keeps_a_few_spares_and_deletes_the_rest(
    workspace: Workspace, upstream: Path
) -> None:
    count = spares.SPARES_PER_MIRROR + 2
    made = [await _create(workspace, upstream, f"APP-{n}") for n in range(1, count + 1)]
    for worktree in made:
        await workspace.remove_worktree(worktree)
        assert not worktree.path.exists()
    assert len(spares.listed(made[0].mirror)) == spares.SPARES_PER_MIRROR
    assert not list(workspace.worktrees_dir.iterdir())


async def test_a_spare_that_cannot_switch_falls_back_to_a_fresh_worktree(
    workspace: Workspace, upstream: Path
) -> None:
    first = await _create(workspace, upstream, "APP-1")
    await workspace.remove_worktree(first)
    (spare,) = spares.listed(first.mirror)
    admin = Path((spare / ".git").read_text().removeprefix("gitdir: ").strip())
    (admin / "index.lock").write_text("")  # a killed git's lock: checkout fails
    second = await _create(workspace, upstream, "APP-2")
    assert tree(second.path) == FILES
    assert git(second.path, "symbolic-ref", "HEAD") == "refs/heads/agent/APP-2"
    assert git(second.path, "status", "--porcelain") == ""
    assert spares.listed(first.mirror) == []
    listing = git(first.mirror, "worktree", "list", "--porcelain")
    assert listing.count("worktree ") == 2  # the bare mirror and APP-2: the broken one is gone
