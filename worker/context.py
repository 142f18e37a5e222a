"""Evidence before the first edit: the repo map, what happened before, the reality signal;
and after the task, what it taught (a memory for the tasks to come).

Runs once per job, after the workspace is ready and before any agent run. Each part is an
event on the task's timeline (`repo_map_built`, `memory_recall`, `reality_signal`) and a
block of the agent's prompt. None of them can fail the task: a part that fails is recorded
as such and left out. Only the repo's reality threshold, when set, stops a task here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from storage.memory import Memory
from storage.repos import Repo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from worker import reality
from worker.aside import drop
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.forges.access import MissingToken, target_of
from worker.forges.base import ForgeError, make_forge
from worker.memory_recall import Recall, outcome_signal, recall, remember
from worker.reality import Signal
from worker.repo_map import Hits, RepoMap, hits, mentions, render
from worker.scope import changed_files
from worker.workspace import Worktree

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Context:
    prompt: str  # the blocks for the agent's prompt
    blocked: str | None = None  # why the task must not run (below the reality threshold)


def task_text(task: Task) -> str:
    return "\n".join(part for part in (task.title, task.description, task.acceptance) if part)


async def gather(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps,
    recalling: Awaitable[Recall | None],
) -> Context:  # fmt: skip
    """`recalling`: recall_memories(), started before the worktree was ready (it needs none)."""
    task = journal.task
    text = task_text(task)
    # Other branches and PRs need neither the map nor the recall: looked up beside them.
    open_work = asyncio.ensure_future(_open_work(repo, worktree, deps))
    try:
        (repo_map, shown), recalled = await asyncio.gather(
            _repo_map(journal, worktree, deps, text), recalling
        )
        named = hits(repo_map, mentions(text)) if repo_map is not None else None
        sources = _sources(task, worktree, open_work, repo_map=repo_map, named=named,
                           recalled=recalled)  # fmt: skip
        signal = await reality.assess(sources)
    finally:
        await drop(open_work)  # done by now, unless the reality signal gave up waiting for it
    await journal.event(EventKind.REALITY_SIGNAL, **signal.payload(),
                        threshold=repo.reality_threshold)  # fmt: skip
    blocks = []
    if shown:
        blocks.append(f"## Repository map (the files most relevant to the task first)\n{shown}")
    if recalled is not None and recalled.memories:
        blocks.append(recalled.render())
    blocks.append(signal.render())
    blocked = None
    if repo.reality_threshold is not None and signal.score < repo.reality_threshold:
        evidence = "; ".join(signal.evidence())
        blocked = (f"reality score {signal.score}/100 is below this repo's threshold "
                   f"{repo.reality_threshold}: {evidence}")  # fmt: skip
    return Context("\n\n".join(blocks), blocked)


async def _open_work(repo: Repo, worktree: Worktree, deps: WorkerDeps) -> list[reality.OpenWork]:
    """Unmerged branches and open PRs: what the task might collide with."""
    work = await reality.branches(worktree.mirror, repo.default_branch, worktree.branch)
    return work + await _open_pull_requests(repo, worktree, deps)


def _sources(
    task: Task, worktree: Worktree, open_work: asyncio.Future[list[reality.OpenWork]], *,
    repo_map: RepoMap | None, named: Hits | None, recalled: Recall | None,
) -> dict[str, reality.Source]:  # fmt: skip
    async def from_map() -> Signal:
        if named is None:
            raise RuntimeError("no repo map")
        return reality.map_signal(named)

    async def recent() -> Signal:
        if repo_map is None or named is None:
            raise RuntimeError("no repo map")
        return await reality.recent_signal(worktree.path, reality.task_files(repo_map, named))

    async def collision() -> Signal:
        return reality.collision_signal(task.title, task.key, await open_work)

    async def memory() -> Signal:
        if recalled is None:
            raise RuntimeError("memory recall failed")
        found = outcome_signal(recalled.memories)
        if found is None:
            return Signal(reality.NEUTRAL, "no similar past tasks", informative=False)
        return Signal(*found)

    return {"repo_map": from_map, "recent_commits": recent, "collision": collision,
            "memory": memory}  # fmt: skip


async def _open_pull_requests(
    repo: Repo, worktree: Worktree, deps: WorkerDeps
) -> list[reality.OpenWork]:
    """The forge's open PRs (none for a local repo, or without a token)."""
    try:
        target = target_of(repo, deps.forge_env)
    except MissingToken:
        return []
    if target is None:
        return []
    forge = make_forge(target, retry=dataclasses.replace(deps.forge_retry, tries=1))
    try:
        pulls = await forge.open_pull_requests()
    except ForgeError as exc:  # the branches still count
        log.warning("open PRs not read", extra={"repo_name": repo.name, "error": str(exc)})
        return []
    finally:
        await forge.aclose()
    return [reality.OpenWork(f"PR #{pr.number}", pr.title) for pr in pulls
            if pr.head != worktree.branch]  # fmt: skip


async def _repo_map(
    journal: TaskJournal, worktree: Worktree, deps: WorkerDeps, text: str
) -> tuple[RepoMap | None, str]:
    """The map, and its rendering for the task within the prompt's budget."""
    try:
        repo_map, stats = await deps.repo_maps.build(worktree.path, tree_id=worktree.tree)
    except Exception as exc:  # the task can go on without a map
        log.warning("repo map failed", extra={"task_key": journal.task.key, "error": repr(exc)})
        await journal.event(EventKind.REPO_MAP_BUILT, ok=False, error=str(exc)[:500])
        return None, ""
    shown = render(repo_map, text, deps.settings.repo_map_chars)
    await journal.event(
        EventKind.REPO_MAP_BUILT, ok=True, tree_id=stats.tree_id, cached=stats.cached,
        seconds=round(stats.seconds, 3), files=stats.files, parsed=stats.parsed,
        symbols=stats.symbols, languages=stats.languages, shown_files=shown.files_shown,
        chars=len(shown.text),
    )  # fmt: skip
    return repo_map, shown.text


async def recall_memories(journal: TaskJournal, deps: WorkerDeps) -> Recall | None:
    """The past tasks like this one, recorded as the memory_recall event; None if the recall
    failed (the task goes on without)."""
    task = journal.task
    try:
        recalled = await recall(deps.pool, deps.embedder, task, k=deps.memory.recall_k,
                                min_similarity=deps.memory.recall_min_similarity)  # fmt: skip
    except Exception as exc:  # e.g. the embeddings endpoint is down
        log.warning("memory recall failed", extra={"task_key": task.key, "error": repr(exc)})
        await journal.event(EventKind.MEMORY_RECALL, ok=False, error=str(exc)[:500])
        return None
    await journal.event(EventKind.MEMORY_RECALL, ok=True, embedder=deps.embedder.name,
                        memories=[_brief(m) for m in recalled.memories])  # fmt: skip
    return recalled


def _brief(memory: Memory) -> dict[str, object]:
    return {"key": memory.task_key, "outcome": memory.outcome, "title": memory.title[:120],
            "similarity": None if memory.similarity is None else round(memory.similarity, 3),
            "error_class": memory.error_class}  # fmt: skip


_OUTCOMES = {TaskStatus.DONE: "success", TaskStatus.FAILED: "failure",
             TaskStatus.BLOCKED: "failure"}  # fmt: skip


async def remember_outcome(journal: TaskJournal, worktree: Worktree, deps: WorkerDeps) -> None:
    """A task that ended after an agent ran leaves a memory: what it was, how it ended,
    the files it changed, its last error class, attempts and cost."""
    task = await TaskRepo(deps.pool).by_id(journal.task.id)
    outcome = _OUTCOMES.get(task.status)
    runs = await TaskRunRepo(deps.pool).for_task(task.id)
    if outcome is None or not runs:  # still going (a plan waits), or no agent ran
        return
    events = await TaskEventRepo(deps.pool).for_task(task.id)
    classified = [e for e in events if e.kind is EventKind.ERROR_CLASSIFIED]
    error_class = str(classified[-1].payload.get("key")) if classified else None
    if outcome == "failure" and task.status is TaskStatus.BLOCKED and error_class is None:
        error_class = "blocked"
    try:
        files = await changed_files(worktree.path, worktree.base_commit)
        attempts = await TaskRunRepo(deps.pool).attempts_made(task.id)
        summary = f"{task.status.value}: {task.status_reason}"[:1000]
        memory = await remember(
            deps.pool, deps.embedder, task, outcome=outcome, summary=summary, files=files,
            error_class=error_class if outcome == "failure" else None, attempts=attempts,
            cost_usd=task.spent_cost_usd,
        )  # fmt: skip
    except Exception as exc:  # the task has ended; a lost memory must not change that
        log.warning("memory not written", extra={"task_key": task.key, "error": repr(exc)})
        return
    await journal.event(EventKind.MEMORY_WRITTEN, memory_id=memory.id, outcome=outcome,
                        files=files[:50], error_class=memory.error_class)  # fmt: skip
