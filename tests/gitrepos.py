"""Real temporary git repositories for tests. Synchronous: call them before the code under test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

TEST_AUTHOR_NAME = "Test Author"
TEST_AUTHOR_EMAIL = "test.author@example.invalid"

_REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")


def git_env() -> dict[str, str]:
    """Inherited environment with a fixed identity, so no global git config is needed."""
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
        GIT_AUTHOR_NAME=TEST_AUTHOR_NAME,
        GIT_AUTHOR_EMAIL=TEST_AUTHOR_EMAIL,
        GIT_COMMITTER_NAME=TEST_AUTHOR_NAME,
        GIT_COMMITTER_EMAIL=TEST_AUTHOR_EMAIL,
    )
    return env


def git(repo: Path, *args: str) -> str:
    """Run `git -C repo <args>` and return its stripped stdout; raise on failure."""
    result = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-C", str(repo), *args],
        env=git_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result.stdout.strip()


def make_repo(path: Path, files: dict[str, str], branch: str = "main") -> Path:
    """A non-bare repository on `branch` with one commit holding `files`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "-b", branch)
    for name, content in files.items():
        _write(path / name, content)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "--allow-empty", "-m", "initial")
    return path


def commit_file(repo: Path, name: str, content: str, message: str) -> str:
    """Write one file, commit it on the current branch and return the new commit's sha."""
    _write(repo / name, content)
    git(repo, "add", "--", name)
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def apply_mbox(upstream: Path, mbox: bytes, clone: Path) -> Path:
    """Clone `upstream` to `clone` and `git am --3way` the mbox there, as a user would."""
    git(clone.parent, "clone", "-q", str(upstream), str(clone))
    path = clone.parent / f"{clone.name}.mbox"
    path.write_bytes(mbox)
    git(clone, "am", "--3way", str(path))
    return clone


def _write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")


def isolate_git_config(home: Path) -> dict[str, str]:
    """Environment changes that hide the machine's global and system git config.

    Apply them with monkeypatch.setenv; code under test then runs as on a machine with no
    user.name/user.email configured.
    """
    home.mkdir(parents=True, exist_ok=True)
    global_config = home / "gitconfig"
    global_config.touch()
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_GLOBAL": str(global_config),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
