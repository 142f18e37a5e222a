"""Bare mirrors per repo and one linked worktree per task, on local disk.

Layout under `root`:

    mirrors/<repo_name>.git    bare mirror; upstream branches live in refs/remotes/origin/*,
                               our task branches (agent/<KEY>) in refs/heads/*
    mirrors/<repo_name>.lock   flock(2) file serialising every change to that mirror
    mirrors/<repo_name>.git/spares/<id>
                               finished tasks' worktrees kept for the next (worker/spares.py)
    worktrees/<TASK_KEY>       the task's worktree, on branch agent/<TASK_KEY>

Fetches only write refs/remotes/origin/* (and tags), so they never touch a task branch,
not even one checked out in a worktree.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from worker import spares
from worker.git import GitError, run_git

log = logging.getLogger(__name__)

TASK_KEY_PATTERN = re.compile(r"^[A-Z][A-Z0-9]*-[0-9]+$")
REPO_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
BRANCH_PREFIX = "agent/"
UPSTREAM_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"
FALLBACK_DEFAULT_BRANCHES = ("main", "master")
LOCK_POLL_SECONDS = 0.05

# Commits made by DevServer itself: no hooks (an agent could have installed some) and no
# signing (no key or agent is available to the worker).
_COMMIT_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false")


class WorkspaceError(Exception):
    """Invalid input to the workspace: a bad task key, repo name or source."""


@dataclass(frozen=True, slots=True)
class Worktree:
    path: Path
    branch: str  # "agent/<KEY>"
    base_commit: str  # where the task's patches start from
    resumed: bool  # the branch existed already (a retried task)
    mirror: Path  # the bare mirror this worktree is linked to
    tree: str | None = None  # the tree checked out when it was made (the repo map's key)


def validate_task_key(task_key: str) -> str:
    if not TASK_KEY_PATTERN.fullmatch(task_key):
        raise WorkspaceError(f"invalid task key: {task_key!r}")
    return task_key


def validate_repo_name(repo_name: str) -> str:
    if not REPO_NAME_PATTERN.fullmatch(repo_name) or ".." in repo_name:
        raise WorkspaceError(f"invalid repo name: {repo_name!r}")
    return repo_name


def _normalise_source(source: str) -> str:
    """Reject option-like sources; make local paths absolute (git runs in other cwds)."""
    if not source or source.startswith("-"):
        raise WorkspaceError("invalid repository source")
    if "://" not in source and Path(source).exists():
        return str(Path(source).resolve())
    return source


def _validate_branch_name(branch: str) -> str:
    if not branch or branch.startswith("-") or ".." in branch or branch.endswith("/"):
        raise WorkspaceError(f"invalid branch name: {branch!r}")
    return branch


class Workspace:
    def __init__(self, root: Path, *, network_timeout: float = 600.0) -> None:
        self.root = root.resolve()  # git records absolute worktree paths; compare alike
        self.mirrors_dir = self.root / "mirrors"
        self.worktrees_dir = self.root / "worktrees"
        self._network_timeout = network_timeout
        self._locks: dict[Path, asyncio.Lock] = {}

    def mirror_path(self, repo_name: str) -> Path:
        return self.mirrors_dir / f"{validate_repo_name(repo_name)}.git"

    def worktree_path(self, task_key: str) -> Path:
        return self.worktrees_dir / validate_task_key(task_key)

    async def sync_mirror(
        self, repo_name: str, source: str, *, credentials: Mapping[str, str] | None = None
    ) -> Path:
        """Create the mirror if missing, then fetch upstream branches into origin/* (and tags).

        `credentials`: environment for git's http auth (worker/forges), never in argv."""
        mirror = self.mirror_path(repo_name)
        source = _normalise_source(source)
        async with self.mirror_lock(mirror):
            if mirror.exists():
                await self._fetch(mirror, source, credentials)
            else:
                await self._create_mirror(mirror, source, credentials)
        log.info("mirror synced", extra={"repo_name": repo_name, "mirror": str(mirror)})
        return mirror

    async def default_branch(
        self, source: str, *, credentials: Mapping[str, str] | None = None
    ) -> str:
        """The branch the source's HEAD points to, else "main" or "master" if present."""
        source = _normalise_source(source)
        result = await run_git(
            "ls-remote", "--symref", "--", source, "HEAD", env=credentials,
            time_limit=self._network_timeout,
        )  # fmt: skip
        for line in result.text.splitlines():
            target, _, name = line.partition("\t")
            if name == "HEAD" and target.startswith("ref: refs/heads/"):
                return target.removeprefix("ref: refs/heads/")
        heads = await run_git(
            "ls-remote",
            "--heads",
            "--",
            source,
            *FALLBACK_DEFAULT_BRANCHES,
            env=credentials,
            time_limit=self._network_timeout,
        )
        present = {line.partition("\t")[2] for line in heads.text.splitlines()}
        for name in FALLBACK_DEFAULT_BRANCHES:
            if f"refs/heads/{name}" in present:
                return name
        raise GitError(("git", "ls-remote", "--symref", source, "HEAD"), 0, "no default branch")

    async def create_worktree(self, mirror: Path, task_key: str, default_branch: str) -> Worktree:
        """Check out agent/<KEY> in a fresh worktree, creating the branch from origin/<default>.

        An existing branch (a retried task) is resumed as it is; a leftover worktree for the
        key (after a crash) is removed first.
        """
        path = self.worktree_path(task_key)
        if not mirror.is_absolute():
            raise WorkspaceError(f"mirror path must be absolute: {mirror}")
        _validate_branch_name(default_branch)
        branch = f"{BRANCH_PREFIX}{task_key}"
        upstream = f"refs/remotes/origin/{default_branch}"
        async with self.mirror_lock(mirror):
            commits = await _commits(mirror, upstream, f"refs/heads/{branch}")
            if upstream not in commits:
                raise GitError(("git", "rev-parse", upstream), 1, f"{upstream} not found")
            upstream_commit = commits[upstream].commit
            resumed = f"refs/heads/{branch}" in commits
            tree = commits[f"refs/heads/{branch}" if resumed else upstream].tree
            if resumed or path.exists():  # a new branch has no worktree, unless one crashed
                await self.remove_stale(mirror, path, branch)
            self.worktrees_dir.mkdir(parents=True, exist_ok=True)
            start = None if resumed else upstream_commit
            if not await spares.take(mirror, path, branch, start):
                # A spare that failed half-way, or a registration left for the path by a
                # crash: either would stop `worktree add`.
                await self.remove_stale(mirror, path, branch)
                if resumed:
                    await run_git("worktree", "add", "--quiet", str(path), branch, cwd=mirror)
                else:
                    await run_git(
                        "worktree", "add", "--quiet", "-b", branch, str(path), upstream_commit,
                        cwd=mirror,
                    )  # fmt: skip
            base_commit = upstream_commit
            if resumed:
                merge_base = await run_git(
                    "merge-base", f"refs/heads/{branch}", upstream_commit, cwd=mirror
                )
                base_commit = merge_base.text
        log.info(
            "worktree created",
            extra={"task_key": task_key, "branch": branch, "resumed": resumed},
        )
        return Worktree(path, branch, base_commit, resumed, mirror, tree)

    async def commit_all(
        self, worktree: Worktree, message: str, author_name: str, author_email: str
    ) -> bool:
        """Stage everything and commit it as the given identity; False if nothing changed.
        (The new commit is `head()`: not read here, since the one caller on every task's
        path needs only to know whether there was work.)"""
        await run_git("add", "-A", cwd=worktree.path)
        identity = {
            "GIT_AUTHOR_NAME": author_name,
            "GIT_AUTHOR_EMAIL": author_email,
            "GIT_COMMITTER_NAME": author_name,
            "GIT_COMMITTER_EMAIL": author_email,
        }
        argv = ("-c", f"user.name={author_name}", "-c", f"user.email={author_email}",
                *_COMMIT_CONFIG, "commit", "--quiet", "--no-verify", "-m", message)  # fmt: skip
        committed = await run_git(*argv, cwd=worktree.path, env=identity, check=False)
        if committed.returncode != 0:
            # Asked only now (one git command less when there is work): was there nothing?
            staged = await run_git("diff", "--cached", "--quiet", cwd=worktree.path, check=False)
            if staged.returncode == 0:
                return False
            raise GitError(("git", *argv), committed.returncode, committed.stderr)
        log.info("worktree committed", extra={"branch": worktree.branch})
        return True

    async def commits_since_base(self, worktree: Worktree) -> list[str]:
        """Commits on the task branch after its base, oldest first."""
        result = await run_git(
            "rev-list", "--reverse", f"{worktree.base_commit}..HEAD", cwd=worktree.path
        )
        return result.text.split()

    async def discard_changes(self, worktree: Worktree, to: str = "HEAD") -> None:
        """Drop uncommitted edits and untracked files (what a verifier run left behind);
        ignored files such as build caches stay. With `to`, commits made after it go too."""
        await run_git("reset", "--hard", "--quiet", to, cwd=worktree.path)
        await run_git("clean", "-fd", "--quiet", cwd=worktree.path)

    async def head(self, worktree: Worktree) -> str:
        result = await run_git("rev-parse", "--verify", "HEAD", cwd=worktree.path)
        return result.text

    async def remove_worktree(self, worktree: Worktree) -> None:
        """Take the worktree away: kept as a spare for the next task where it can be, else
        deleted with its registration. The branch stays."""
        async with self.mirror_lock(worktree.mirror):
            if not await spares.park(worktree.mirror, worktree.path):
                await self.remove_stale(worktree.mirror, worktree.path, worktree.branch)
        log.info("worktree removed", extra={"branch": worktree.branch})

    async def _create_mirror(
        self, mirror: Path, source: str, credentials: Mapping[str, str] | None
    ) -> None:
        # `init --bare` + fetch rather than `clone --bare`: a clone would also copy upstream
        # branches into refs/heads/*, where they would go stale and mislead (`git diff main`).
        # Built next to the mirror and renamed, so a crash never leaves a half-made mirror.
        partial = mirror.with_name(f"{mirror.name}.partial")
        await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)
        await run_git("init", "--bare", "--quiet", str(partial))
        await run_git("remote", "add", "origin", source, cwd=partial)
        await self._fetch(partial, source, credentials)
        partial.rename(mirror)
        log.info("mirror created", extra={"mirror": str(mirror)})

    async def _fetch(
        self, mirror: Path, source: str, credentials: Mapping[str, str] | None
    ) -> None:
        # The remote (which pushes use too) follows the repo's source; set only when that
        # changed, as the file next to the config records: two git calls less per task.
        configured = mirror / "devserver-source"
        if not configured.is_file() or configured.read_text(encoding="utf-8") != source:
            await run_git("config", "remote.origin.url", source, cwd=mirror)
            await run_git(
                "config", "--replace-all", "remote.origin.fetch", UPSTREAM_REFSPEC, cwd=mirror
            )
            configured.write_text(source, encoding="utf-8")
        # --tags --force: tags follow upstream even where a tag was moved there.
        await run_git(
            "fetch", "--prune", "--tags", "--force", "--quiet", "origin",
            cwd=mirror, env=credentials, time_limit=self._network_timeout,
        )  # fmt: skip

    async def remove_stale(self, mirror: Path, path: Path, branch: str) -> None:
        """Remove any worktree at `path` or holding `branch`. Idempotent."""
        listing = await run_git("worktree", "list", "--porcelain", cwd=mirror)
        stale = {path}
        entry_path: Path | None = None
        prunable = False  # a registration whose directory is gone (git marks it so)
        for line in listing.text.splitlines():
            if line.startswith("worktree "):
                entry_path = Path(line.removeprefix("worktree "))
            elif line == f"branch refs/heads/{branch}" and entry_path is not None:
                stale.add(entry_path)
            prunable = prunable or line.startswith("prunable")
        for stale_path in stale:
            if stale_path.exists():
                await run_git(
                    "worktree", "remove", "--force", "--force", str(stale_path),
                    cwd=mirror, check=False,
                )  # fmt: skip
                if stale_path.exists():
                    await asyncio.to_thread(shutil.rmtree, stale_path, ignore_errors=True)
                    prunable = True
                log.info("worktree directory removed", extra={"path": str(stale_path)})
        if prunable:
            await run_git("worktree", "prune", cwd=mirror)

    def clear_dead_locks(self, path: Path, mirror: Path, branch: str) -> list[Path]:
        """Remove the lock files a killed git left for this task's worktree: its index lock
        and its branch's ref lock. Only for a task whose worker died (its git died with it,
        worker/orphans.py) and which no one else runs (the task row is ours); never the
        mirror's shared locks, which a live worker's git may hold."""
        candidates = [mirror / "refs" / "heads" / f"{branch}.lock"]
        dotgit = path / ".git"
        if dotgit.is_file():
            gitdir = Path(dotgit.read_text().removeprefix("gitdir:").strip())
            candidates.append(gitdir / "index.lock")
        removed = [lock for lock in candidates if lock.is_file()]
        for lock in removed:
            lock.unlink(missing_ok=True)
            log.warning("stale git lock removed", extra={"path": str(lock)})
        return removed

    @contextlib.asynccontextmanager
    async def mirror_lock(self, mirror: Path) -> AsyncIterator[None]:
        """Serialise work on one mirror: within this process, then across processes."""
        lock = self._locks.setdefault(mirror, asyncio.Lock())
        async with lock:
            mirror.parent.mkdir(parents=True, exist_ok=True)
            lock_file = mirror.with_name(f"{mirror.name.removesuffix('.git')}.lock")
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                await _flock(fd)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock


async def _flock(fd: int) -> None:
    """Take an exclusive flock without blocking the event loop (poll with LOCK_NB).

    Polling rather than a blocking flock in a thread: a cancelled waiter then leaves no
    thread behind that could take the lock later, or keep the loop from shutting down.
    """
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            await asyncio.sleep(LOCK_POLL_SECONDS)
        else:
            return


@dataclass(frozen=True, slots=True)
class _Commit:
    commit: str
    tree: str


async def _commits(repository: Path, *refs: str) -> dict[str, _Commit]:
    """The commit each of `refs` (full names) points to, and its tree; a ref missing, or
    pointing to something other than a commit, is left out. One git command for all."""
    result = await run_git(
        "for-each-ref", "--format=%(objecttype) %(objectname) %(tree) %(refname)", *refs,
        cwd=repository,
    )  # fmt: skip
    found = {}
    for line in result.text.splitlines():
        kind, sha, tree, name = line.split(" ", 3)  # a tag has no tree: ""
        if kind == "commit" and name in refs:  # a pattern also matches refs below it
            found[name] = _Commit(sha, tree)
    return found
