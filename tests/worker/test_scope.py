"""The approved plan's allow-list: paths compared exactly, dot-directories included."""

from __future__ import annotations

from pathlib import Path

from tests.gitrepos import commit_file, git, make_repo
from worker.scope import changed_files, outside_plan, scope_feedback


async def test_changed_files_include_dot_directories_and_both_sides_of_a_rename(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "r", {"src/old.py": "x = 1\n", "README.md": "hi\n"})
    base = git(repo, "rev-parse", "HEAD")
    commit_file(repo, ".github/workflows/ci.yml", "on: push\n", "ci")
    git(repo, "mv", "src/old.py", "src/new.py")
    git(repo, "commit", "-qm", "rename")
    changed = await changed_files(repo, base)
    assert changed == [".github/workflows/ci.yml", "src/new.py", "src/old.py"]
    allowed = ["src/new.py", "src/old.py", "github/workflows/ci.yml"]
    assert outside_plan(changed, allowed) == [".github/workflows/ci.yml"]


def test_outside_plan_compares_paths_exactly() -> None:
    changed = ["src/app.py", "src/App.py", "src/app.py.bak", "src", "docs/a.md"]
    assert outside_plan(changed, ["src/app.py", "docs/"]) == [
        "src/App.py", "src/app.py.bak", "src", "docs/a.md"
    ]  # fmt: skip


async def test_feedback_says_which_files_to_restore_and_which_to_delete(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"keep.py": "a\n"})
    base = git(repo, "rev-parse", "HEAD")
    commit_file(repo, "keep.py", "b\n", "edit")
    commit_file(repo, ".env.local", "X=1\n", "new")
    text = await scope_feedback(repo, base, ["keep.py", ".env.local"], ["other.py"])
    assert f"- keep.py: restore it (git checkout {base[:12]} -- 'keep.py')" in text
    assert "- .env.local: it is new; delete it" in text
    assert text.endswith("The plan allows changes to these files only:\n- other.py")
