"""Spare worktrees: a finished task's checkout, kept for the next task of the same repo.

A fresh `git worktree add` writes every file of the repository, and removing the worktree at
the task's end deletes them all again: on a VM disk that is 0.4 to 5 s for 10,000 files and
1.4 to 30 s for 50,000 (bench/RESULTS.md), paid twice per task. A spare is moved into place
instead and switched with `git checkout --force`, which writes only the files that differ.
A worktree is cleaned when it is parked (`checkout --force --detach`, then `git clean -ffdx`
for whatever the last task left untracked or ignored), after its task has ended, so the next
task does not wait for it: what that task gets is the same tree a fresh checkout gives, the
tracked files of its start commit and nothing else. A spare is moved into the spares folder
only once clean, so every spare there is. A worktree with an operation in progress (merge,
rebase, cherry-pick, bisect) is not kept, and anything that fails while taking a spare falls
back to a fresh worktree.

Spares live inside their mirror, `<mirror>/spares/<id>`, detached, so that they hold no
branch and go with the mirror when it is deleted. Callers hold the mirror's lock
(worker/workspace.py).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path

from worker.git import GitError, run_git

log = logging.getLogger(__name__)

SPARES_PER_MIRROR = 4
# In a worktree's admin directory: an operation the last task left half-way.
_IN_PROGRESS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "BISECT_LOG",
                "rebase-merge", "rebase-apply", "sequencer")  # fmt: skip


def spares_dir(mirror: Path) -> Path:
    return mirror / "spares"


def listed(mirror: Path) -> list[Path]:
    """The mirror's spares, oldest name first."""
    folder = spares_dir(mirror)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if (path / ".git").is_file())


def is_spare(mirror: Path, path: Path) -> bool:
    return path.parent == spares_dir(mirror)


async def park(mirror: Path, path: Path) -> bool:
    """Keep the worktree at `path` as a spare of `mirror`. False, with nothing changed, when
    it cannot be kept: the mirror has enough spares, the worktree is not a plain one of this
    mirror, an operation is in progress in it, or git fails."""
    admin = _admin_dir(path)
    if admin is None or admin.parent.parent != mirror:
        return False
    if any((admin / name).exists() for name in _IN_PROGRESS):
        return False
    if len(listed(mirror)) >= SPARES_PER_MIRROR:
        return False
    target = spares_dir(mirror) / uuid.uuid4().hex[:12]
    spares_dir(mirror).mkdir(exist_ok=True)
    try:
        # Detached, the task's branch is free for whichever worktree resumes it; what the
        # task left uncommitted goes (the task has ended: its work is on the branch).
        await run_git("checkout", "--force", "--quiet", "--detach", cwd=path)
        await run_git("clean", "-ffdxq", cwd=path)  # untracked, ignored, nested repos
        await run_git("worktree", "move", str(path), str(target), cwd=mirror)
    except GitError as exc:
        log.info("worktree not kept as a spare", extra={"path": str(path), "error": str(exc)})
        return False
    log.info("worktree kept as a spare", extra={"path": str(target)})
    return True


async def take(mirror: Path, path: Path, branch: str, start: str | None) -> bool:
    """Move a spare of `mirror` to `path` and check out `branch` there as a fresh worktree
    would: created at `start`, or as it is when `start` is None (a resumed task). False when
    no spare could be used; what was left at `path` is then the caller's to remove."""
    for spare in listed(mirror):
        try:
            await _move(mirror, spare, path)
        except GitError as exc:  # a broken spare: drop it (`worktree prune` forgets it)
            log.warning("spare worktree dropped", extra={"path": str(spare), "error": str(exc)})
            await asyncio.to_thread(shutil.rmtree, spare, ignore_errors=True)
            continue
        switch = ("-b", branch, start) if start is not None else (branch,)
        try:  # clean since it was parked: the switch writes only what differs
            await run_git("checkout", "--force", "--quiet", *switch, cwd=path)
        except GitError as exc:
            log.warning("spare worktree unusable", extra={"path": str(path), "error": str(exc)})
            return False
        return True
    return False


async def _move(mirror: Path, spare: Path, path: Path) -> None:
    """`worktree move` the spare to `path`; once more after `worktree prune` if git refuses,
    which it does when a crash left `path` registered with its directory gone."""
    try:
        await run_git("worktree", "move", str(spare), str(path), cwd=mirror)
    except GitError:
        await run_git("worktree", "prune", cwd=mirror)
        await run_git("worktree", "move", str(spare), str(path), cwd=mirror)


def _admin_dir(path: Path) -> Path | None:
    """`<mirror>/worktrees/<name>`, from the worktree's `.git` file."""
    try:
        text = (path / ".git").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    return Path(text.removeprefix("gitdir: ").strip())
