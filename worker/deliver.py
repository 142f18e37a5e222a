"""Delivery: the preflight, then the change goes where the task's flow says.

- `patch`: nothing is pushed; the format-patch series and combined.mbox are the deliverable.
- `pr`: push `agent/<KEY>` to the repo's source, then open (or update) its pull request on
  the forge (worker/forges). A `local` repo has no forge API: the pushed branch is the PR.
- `direct`: rebase onto the fresh default branch (checks again if it moved), push it there,
  fast-forward only. A conflict fails the task naming the files; a push that lost a race
  goes round again, at most PUSH_ROUNDS times. Never a force-push.

Every flow runs the preflight (worker/preflight.py) first and stores the patches: nothing
leaves the machine unchecked, the mbox included. A failed preflight blocks the task with
its findings, and nothing is pushed or sent. Work kept when a task stops early (budget,
cancel, block) becomes patches only if it passes the preflight too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.repos import Repo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from worker.agents.environment import agent_environment
from worker.aside import drop
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.forges.access import MissingToken, git_credentials, target_of
from worker.forges.base import Forge, ForgeError, make_forge
from worker.git import GitError, mask_credentials, run_git
from worker.patches import PatchFile, format_patches
from worker.pr_body import pr_body
from worker.preflight import Report, preflight
from worker.processes import tail
from worker.prompts import verify_commands
from worker.push import PushRejected, RebaseConflict, push, rebase
from worker.verify import VerifyStep, run_verify
from worker.workspace import Worktree

log = logging.getLogger(__name__)

PUSH_ROUNDS = 3  # direct: fetch, rebase, check and push again when upstream moved meanwhile


class DeliveryFailed(Exception):
    """The change could not be delivered; the message says why, for a person."""


async def finish(journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps) -> None:
    """The change passed its checks and the task is `delivering`: deliver it, then end the
    task done, blocked (preflight) or failed (delivery)."""
    flow = journal.task.git_flow
    try:
        if flow == "direct":
            done = await _direct(journal, repo, worktree, deps)
        else:
            done = await _branch(journal, repo, worktree, deps, flow=flow)
    except DeliveryFailed as exc:
        await journal.move(TaskStatus.FAILED, reason=str(exc))
        return
    if done is None:
        return  # blocked by the preflight
    reason, commits = done
    await journal.move(TaskStatus.DONE, reason=reason, commits=commits)


async def keep_partial(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps
) -> int:
    """Work kept when a task stops early: patches, if the preflight lets them go. Returns
    the number of commits in them (0 when withheld)."""
    report, patches = await check(journal, repo, worktree)
    if patches is None:
        return 0
    return await store_patches(journal, worktree, deps, patches, head=report.head)


async def check(
    journal: TaskJournal, repo: Repo, worktree: Worktree
) -> tuple[Report, list[PatchFile] | None]:
    """Run the preflight and record its verdict as an event; with it, the patches, None when
    the preflight failed. They are made while the preflight reads (both only read the
    branch), and dropped unless it passed. A forwarded series applied as it was (kind
    `apply`) keeps its authors: only its committer is checked."""
    patching = asyncio.ensure_future(format_patches(worktree.path, worktree.base_commit))
    try:
        check_author = journal.task.kind != "apply"
        report = await preflight(worktree.path, worktree.base_commit, repo,
                                 check_author=check_author)  # fmt: skip
        kind = EventKind.PREFLIGHT_PASSED if report.passed else EventKind.PREFLIGHT_FAILED
        await journal.event(kind, **report.payload())
    except BaseException:
        await drop(patching)
        raise
    if not report.passed:
        await drop(patching)
        return report, None
    return report, await patching


async def store_patches(
    journal: TaskJournal, worktree: Worktree, deps: WorkerDeps, files: list[PatchFile], *,
    head: str | None,
) -> int:  # fmt: skip
    """The format-patch series and combined.mbox, stored as artifacts; returns the commits.
    `head`: the branch's head commit, if the caller knows it already."""

    async def store() -> None:
        series = [(ArtifactKind.MBOX if f.filename.endswith(".mbox") else ArtifactKind.PATCH,
                   f.filename, f.content) for f in files]  # fmt: skip
        await ArtifactRepo(deps.pool).replace_patches(journal.task.id, series)

    async def set_head() -> None:
        await TaskRepo(deps.pool).set_head(journal.task.id,
                                           head or await deps.workspace.head(worktree))  # fmt: skip

    await asyncio.gather(store(), set_head())  # both before the event that announces them
    commits = sum(1 for f in files if f.filename.endswith(".patch"))
    mbox_bytes = sum(len(f.content) for f in files if f.filename.endswith(".mbox"))
    await journal.event(EventKind.PATCHES_GENERATED, commits=commits,
                        files=[f.filename for f in files], mbox_bytes=mbox_bytes)  # fmt: skip
    return commits


async def _branch(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps, *, flow: str
) -> tuple[str, int] | None:
    """`patch` and `pr`: preflight, patches, then (pr) the branch and its pull request."""
    report, patches = await check(journal, repo, worktree)
    if patches is None:
        await _blocked(journal, report)
        return None
    commits = await store_patches(journal, worktree, deps, patches, head=report.head)
    if flow == "patch":
        return f"{commits} commit(s) ready as patches", commits
    credentials = git_credentials(repo, deps.forge_env)
    await _push(journal, worktree, deps, branch=worktree.branch, credentials=credentials)
    try:
        target = target_of(repo, deps.forge_env)
    except MissingToken as exc:
        raise DeliveryFailed(f"{worktree.branch} is pushed, but no pull request: {exc}") from exc
    if target is None:  # a plain repository: the pushed branch is the deliverable
        return (f"{commits} commit(s) on branch {worktree.branch} of "
                f"{mask_credentials(repo.source)}", commits)  # fmt: skip
    runs = await TaskRunRepo(deps.pool).for_task(journal.task.id)
    task = await TaskRepo(deps.pool).by_id(journal.task.id)
    title = f"{task.key}: {task.title}"
    forge = make_forge(target, retry=deps.forge_retry)
    try:
        body = pr_body(task, runs, report, checked=await _checked(journal, deps))
        published = await forge.publish(head=worktree.branch, base=repo.default_branch,
                                         title=title, body=body)  # fmt: skip
        if not published.created:  # the reviewers of the open PR hear that it changed
            await _comment(forge, published.pr.number, task.key, commits, report)
    except ForgeError as exc:
        raise DeliveryFailed(f"{worktree.branch} is pushed and the patches are kept, but the "
                             f"pull request failed: {exc}") from exc  # fmt: skip
    finally:
        await forge.aclose()
    pr = published.pr
    await TaskRepo(deps.pool).set_pr_url(task.id, pr.url)
    await journal.event(EventKind.PR_OPENED, number=pr.number, url=pr.url, forge=target.kind,
                        created=published.created, head=pr.head, base=pr.base)  # fmt: skip
    verb = "opened" if published.created else "updated"
    return f"PR #{pr.number} {verb}: {pr.url}", commits


async def _checked(journal: TaskJournal, deps: WorkerDeps) -> list[str]:
    await journal.flush()
    passed = await TaskEventRepo(deps.pool).last_of(journal.task.id, [EventKind.VERIFY_PASSED])
    return [str(step) for step in (passed.payload.get("steps") or [])] if passed else []


async def _comment(forge: Forge, number: int, key: str, commits: int, report: Report) -> None:
    """Best effort: the PR itself is updated already."""
    try:
        text = (f"DevServer ran {key} again: the branch now has {commits} commit(s), "
                f"{report.reason()}; the description is up to date.")  # fmt: skip
        await forge.comment(number, text)
    except ForgeError as exc:
        log.warning("PR comment failed", extra={"task_key": key, "error": str(exc)})


async def _direct(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps
) -> tuple[str, int] | None:
    """Rebase onto the fresh default branch, check again if it moved, preflight, push."""
    credentials = git_credentials(repo, deps.forge_env)
    upstream = f"refs/remotes/origin/{repo.default_branch}"
    for _ in range(PUSH_ROUNDS):
        try:
            await deps.workspace.sync_mirror(repo.name, repo.source, credentials=credentials)
            await rebase(worktree.path, upstream, name=repo.git_author_name,
                         email=repo.git_author_email)  # fmt: skip
        except RebaseConflict as exc:
            raise DeliveryFailed(f"{exc}; nothing was pushed, the work is on branch "
                                 f"{worktree.branch}") from exc  # fmt: skip
        except GitError as exc:
            raise DeliveryFailed(f"could not rebase onto {repo.default_branch}: {exc}") from exc
        moved = await _base_of(worktree, upstream)
        if moved != worktree.base_commit:
            worktree = dataclasses.replace(worktree, base_commit=moved)
            await TaskRepo(deps.pool).set_branch(journal.task.id, worktree.branch, moved)
            await _check_again(journal, repo, worktree, deps)
        report, patches = await check(journal, repo, worktree)
        if patches is None:
            await _blocked(journal, report)
            return None
        try:
            await _push(journal, worktree, deps, branch=repo.default_branch,
                        credentials=credentials)  # fmt: skip
        except PushRejected:
            log.info("direct push lost a race; going round again",
                     extra={"task_key": journal.task.key})  # fmt: skip
            continue
        commits = await store_patches(journal, worktree, deps, patches, head=report.head)
        head = report.head or await deps.workspace.head(worktree)
        return f"{commits} commit(s) pushed to {repo.default_branch} at {head[:12]}", commits
    raise DeliveryFailed(f"{repo.default_branch} kept moving: the push was rejected "
                         f"{PUSH_ROUNDS} times; nothing was overwritten")  # fmt: skip


async def _push(
    journal: TaskJournal, worktree: Worktree, deps: WorkerDeps, *, branch: str,
    credentials: dict[str, str],
) -> None:  # fmt: skip
    """Push HEAD to `branch` (PushRejected passes through: the caller may go round again)."""
    try:
        await push(worktree.path, f"refs/heads/{branch}", credentials=credentials)
    except GitError as exc:
        raise DeliveryFailed(f"could not push {branch}: {_push_hint(exc, branch)}") from exc
    head = await deps.workspace.head(worktree)
    await journal.event(EventKind.BRANCH_PUSHED, branch=branch, commit=head)


def _push_hint(exc: GitError, branch: str) -> str:
    if "checked out" in exc.stderr or "denyCurrentBranch" in exc.stderr:
        return (f"the repository has {branch} checked out, and git refuses pushes to a "
                "checked-out branch; push to a bare repository, or use the patch flow")  # fmt: skip
    return exc.stderr or str(exc)


async def _base_of(worktree: Worktree, upstream: str) -> str:
    result = await run_git("rev-parse", "--verify", f"{upstream}^{{commit}}", cwd=worktree.path)
    return result.text


async def _check_again(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps
) -> None:
    """Upstream moved under the change: its checks run once more on the rebased result."""
    steps = [VerifyStep(name, command) for name, command in verify_commands(repo)]
    if journal.task.skip_verify or not steps:
        return
    await journal.event(EventKind.VERIFY_STARTED, attempt=0, rebased=True,
                        steps=[s.name for s in steps])  # fmt: skip
    home = deps.agent_homes / journal.task.key
    home.mkdir(parents=True, exist_ok=True)
    result = await run_verify(steps, cwd=worktree.path, env=agent_environment(home),
                              timeout_per_step=repo.verify_timeout_seconds)  # fmt: skip
    failed = result.failed_step
    if failed is None:
        await journal.event(EventKind.VERIFY_PASSED, attempt=0, rebased=True,
                            steps=[s.name for s in result.steps])  # fmt: skip
        return
    await journal.event(EventKind.VERIFY_FAILED, attempt=0, rebased=True, step=failed.name,
                        exit_code=failed.exit_code, timed_out=failed.timed_out,
                        tail=tail(failed.output_tail, 1500))  # fmt: skip
    await deps.workspace.discard_changes(worktree)
    raise DeliveryFailed(f"after rebasing onto the new {repo.default_branch}, step "
                         f"{failed.name} fails; nothing was pushed")  # fmt: skip


async def _blocked(journal: TaskJournal, report: Report) -> None:
    """Blocked by the preflight: the findings go with the move, for the chat's alert."""
    payload = report.payload()
    await journal.move(TaskStatus.BLOCKED, reason=f"{report.reason()}; nothing was pushed or "
                       "sent", violations=payload["violations"],
                       count=payload["count"])  # fmt: skip
