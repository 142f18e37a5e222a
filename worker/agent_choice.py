"""Which agent runs a task: the task's backend and model, else its repo's; and the repo's
fallback, for when the model API refuses a run.

A refused run (rate limit, overload, out of quota) is not the agent's failure. With a
fallback, the same attempt runs again at once on the fallback's backend and/or model, and
the rest of the job stays on it; the switch is an `agent_fallback` event. Once per job: a
refused fallback goes the usual way (worker/backoff.py waits, or out of quota fails), and
the next job starts on the primary again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from storage.repos import Repo
from storage.task_events import EventKind
from storage.tasks import Task
from worker.agents.base import AgentBackend, AgentResult, ErrorKind
from worker.agents.registry import UnknownBackend
from worker.backoff import REFUSED_KINDS
from worker.deps import WorkerDeps
from worker.events import TaskJournal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Agent:
    """What runs an attempt: the backend's name (recorded on the run), its model (None: the
    CLI's default), and the backend itself."""

    name: str
    model: str | None
    backend: AgentBackend


def primary_agent(task: Task, repo: Repo, deps: WorkerDeps) -> Agent:
    """The task's backend, else the repo's. The repo's model goes with the repo's backend
    only: a task that picks another CLI gets its own model or that CLI's default.
    Raises UnknownBackend."""
    name = task.agent_backend or repo.agent_backend
    model = task.agent_model or (repo.agent_model if name == repo.agent_backend else None)
    return Agent(name, model, deps.backend_for(repo, name))


def fallback_agent(repo: Repo, primary: Agent, deps: WorkerDeps) -> Agent | None:
    """The repo's fallback: its backend (default: the primary's) with its model (default:
    that backend's own). None when there is none, when it is the primary itself, or when it
    cannot be built (logged)."""
    if repo.fallback_backend is None and repo.fallback_model is None:
        return None
    name = repo.fallback_backend or primary.name
    if (name, repo.fallback_model) == (primary.name, primary.model):
        return None
    try:
        backend = deps.backend_for(repo, name)
    except UnknownBackend as exc:
        log.warning("fallback agent unusable", extra={"repo": repo.name, "error": str(exc)})
        return None
    return Agent(name, repo.fallback_model, backend)


def refused(result: AgentResult) -> bool:
    """The model API refused the run: a fallback may do it instead."""
    return not result.ok and result.error_kind in REFUSED_KINDS


async def record_fallback(
    journal: TaskJournal, result: AgentResult, *, phase: str, attempt: int, primary: Agent,
    fallback: Agent,
) -> None:  # fmt: skip
    reason = (result.error_kind or ErrorKind.RATE_LIMIT).value
    await journal.event(EventKind.AGENT_FALLBACK, phase=phase, attempt=attempt,
                        from_backend=primary.name, from_model=primary.model,
                        to_backend=fallback.name, to_model=fallback.model, reason=reason,
                        message=result.error_message[:300])  # fmt: skip
    log.info("agent fallback", extra={"task_key": journal.task.key, "reason": reason,
                                      "from": primary.name, "to": fallback.name})  # fmt: skip
