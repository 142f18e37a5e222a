"""bench/overhead.py's repositories and its floors: the same change made by hand with git,
in a new worktree each time (the issue's floor) or in one worktree kept (the reused one)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

AGENT = ("sh", "-c", 'echo "changed by the bench" > bench_change.txt')
IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}  # fmt: skip
FILES_PER_DIR = 100


def make_upstream(path: Path, files: int) -> None:
    """A repository of `files` small Python files, 100 to a directory, in one commit."""
    path.mkdir(parents=True)
    for number in range(files):
        folder = path / f"pkg{number // FILES_PER_DIR:04d}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{number % FILES_PER_DIR:03d}.py").write_text(
            f'"""Module {number}."""\n\n\n'
            f"def function_{number}(value):\n    return value + {number}\n"
        )
    env = {**os.environ, **IDENTITY}
    for argv in (("init", "--quiet", "-b", "main"), ("add", "-A"),
                 ("commit", "--quiet", "-m", f"{files} files")):  # fmt: skip
        subprocess.run(("git", *argv), cwd=path, env=env, check=True)


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(("git", *args), cwd=cwd, env=env, check=True, capture_output=True,
                          text=True)  # fmt: skip
    return done.stdout


class Floor:
    """The same result by hand: a bare mirror of its own (made once, untimed, as the worker's
    first task makes its mirror), then fetch, worktree, agent, add, commit, format-patch."""

    def __init__(self, upstream: Path, scratch: Path) -> None:
        self.mirror = scratch / "floor-mirror.git"
        self.trees = scratch / "floor-trees"
        self.trees.mkdir(parents=True)
        git("init", "--bare", "--quiet", str(self.mirror), cwd=scratch)
        git("remote", "add", "origin", str(upstream), cwd=self.mirror)
        git("config", "--replace-all", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*",
            cwd=self.mirror)  # fmt: skip
        git("fetch", "--quiet", "origin", cwd=self.mirror)
        self.count = 0

    def run(self, env: dict[str, str] | None = None) -> float:
        self.count += 1
        tree = self.trees / f"floor-{self.count}"
        started = time.perf_counter()
        git("fetch", "--prune", "--tags", "--force", "--quiet", "origin", cwd=self.mirror, env=env)
        git("worktree", "add", "--quiet", "-b", f"floor/{self.count}", str(tree),
            "refs/remotes/origin/main", cwd=self.mirror, env=env)  # fmt: skip
        self.change_and_export(tree, env, f"Floor task {self.count}")
        return time.perf_counter() - started

    def change_and_export(self, tree: Path, env: dict[str, str] | None, message: str) -> None:
        """The agent's change, committed, and the patch series of it: as the pipeline does."""
        subprocess.run(AGENT, cwd=tree, check=True)
        git("add", "-A", cwd=tree, env=env)
        git("commit", "--quiet", "-m", message, cwd=tree,
            env={**(env or os.environ), **IDENTITY})  # fmt: skip
        mbox = git("format-patch", "--stdout", "refs/remotes/origin/main..HEAD", cwd=tree, env=env)
        assert "bench_change.txt" in mbox  # the floor made the same change


class ReusedFloor(Floor):
    """The same by hand in one worktree kept from task to task (what the pipeline does with
    its spare worktrees): checkout --force of the new branch and clean instead of a worktree
    of its own. Not the issue's floor; a stricter yardstick for the pipeline's own cost."""

    def run(self, env: dict[str, str] | None = None) -> float:
        self.count += 1
        tree = self.trees / "reused"
        if not tree.exists():  # made once, untimed, as a first task would
            git("worktree", "add", "--quiet", "--detach", str(tree), "refs/remotes/origin/main",
                cwd=self.mirror)  # fmt: skip
        started = time.perf_counter()
        git("fetch", "--prune", "--tags", "--force", "--quiet", "origin", cwd=self.mirror, env=env)
        git("checkout", "--force", "--quiet", "-B", f"reused/{self.count}",
            "refs/remotes/origin/main", cwd=tree, env=env)  # fmt: skip
        git("clean", "-ffdxq", cwd=tree, env=env)
        self.change_and_export(tree, env, f"Reused floor task {self.count}")
        return time.perf_counter() - started
