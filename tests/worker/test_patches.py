from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitrepos import git, make_repo
from worker.git import run_git
from worker.patches import PatchFile, format_patches
from worker.workspace import Workspace, Worktree

AGENT_NAME = "DevServer Agent"
AGENT_EMAIL = "agent@devserver.invalid"


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "upstream", {"README.md": "hello\n", "src/app.py": "x = 1\n", "old.txt": "o\n"}
    )


@pytest.fixture
async def worktree(tmp_path: Path, upstream: Path) -> Worktree:
    workspace = Workspace(tmp_path / "ws")
    mirror = await workspace.sync_mirror("app", str(upstream))
    return await workspace.create_worktree(mirror, "APP-1", "main")


async def _two_commits(worktree: Worktree) -> None:
    workspace = Workspace(worktree.path.parent.parent)
    (worktree.path / "src" / "app.py").write_text("x = 2\n")
    (worktree.path / "data.bin").write_bytes(bytes(range(256)))
    await workspace.commit_all(worktree, "Change app and add data", AGENT_NAME, AGENT_EMAIL)
    (worktree.path / "old.txt").unlink()
    (worktree.path / "docs").mkdir()
    (worktree.path / "docs" / "ünïcode.md").write_text("naïve\n", encoding="utf-8")
    await workspace.commit_all(worktree, "Remove old, add docs", AGENT_NAME, AGENT_EMAIL)


def _apply(tmp_path: Path, upstream: Path, base: str, name: str, patches: list[PatchFile]) -> str:
    """Clone upstream at `base`, `git am` the patches and return the resulting tree id."""
    clone = tmp_path / name
    git(tmp_path, "clone", "--quiet", str(upstream), str(clone))
    git(clone, "checkout", "--quiet", "-B", "apply", base)
    files = []
    for patch in patches:
        path = tmp_path / f"{name}-{patch.filename}"
        path.write_bytes(patch.content)
        files.append(str(path))
    git(clone, "am", "--quiet", *files)
    return git(clone, "rev-parse", "HEAD^{tree}")


async def test_two_commits_make_patches_that_apply(
    tmp_path: Path, upstream: Path, worktree: Worktree
) -> None:
    await _two_commits(worktree)
    patches = await format_patches(worktree.path, worktree.base_commit)

    names = [patch.filename for patch in patches]
    assert names == [
        "0001-Change-app-and-add-data.patch",
        "0002-Remove-old-add-docs.patch",
        "combined.mbox",
    ]
    combined = patches[-1].content
    assert combined.count(b"\nSubject: [PATCH ") == 2
    assert combined.startswith(patches[0].content)
    expected_tree = git(worktree.path, "rev-parse", "HEAD^{tree}")
    assert _apply(tmp_path, upstream, worktree.base_commit, "mbox", patches[-1:]) == expected_tree
    assert _apply(tmp_path, upstream, worktree.base_commit, "each", patches[:-1]) == expected_tree


async def test_the_mbox_is_what_format_patch_stdout_writes(worktree: Worktree) -> None:
    """The mbox is joined from the files, not formatted again: byte for byte what the
    installed git's `format-patch --stdout` writes for the same commits."""
    await _two_commits(worktree)
    (worktree.path / "third.txt").write_text("three\n")
    await Workspace(worktree.path.parent.parent).commit_all(
        worktree, "Third", AGENT_NAME, AGENT_EMAIL
    )
    patches = await format_patches(worktree.path, worktree.base_commit)
    stdout = (await run_git(
        "format-patch", "--src-prefix=a/", "--dst-prefix=b/", "--no-cover-letter", "--stdout",
        f"{worktree.base_commit}..HEAD", cwd=worktree.path,
    )).stdout  # fmt: skip
    assert len(patches) == 4
    assert patches[-1].content == stdout


async def test_user_diff_config_does_not_break_patches(
    tmp_path: Path, upstream: Path, worktree: Worktree
) -> None:
    git(worktree.mirror, "config", "diff.noprefix", "true")
    git(worktree.mirror, "config", "format.suffix", ".txt")
    await _two_commits(worktree)
    patches = await format_patches(worktree.path, worktree.base_commit)
    assert patches[0].filename.endswith(".patch")
    expected_tree = git(worktree.path, "rev-parse", "HEAD^{tree}")
    assert _apply(tmp_path, upstream, worktree.base_commit, "mbox", patches[-1:]) == expected_tree


async def test_no_commits_no_patches(worktree: Worktree) -> None:
    assert await format_patches(worktree.path, worktree.base_commit) == []


async def test_base_must_be_a_commit_id(worktree: Worktree) -> None:
    with pytest.raises(ValueError, match="base_commit"):
        await format_patches(worktree.path, "--output=/tmp/x")
