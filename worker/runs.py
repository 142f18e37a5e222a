"""One agent run on the record: its `task_runs` row, the task's spend, and the
agent_started / agent_finished events. Shared by the plan phase and the implement attempts.

The run's cost and turns go on the task here; its wall time is counted by the budget's
meter around it (worker/budget.py), which also counts a run that is stopped. A fallback's
run (worker/agent_choice.py) is a run of its own, under the fallback's backend and model."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from storage.task_events import EventKind
from storage.task_runs import RunOutcome, TaskRunRepo
from storage.tasks import Task, TaskRepo
from worker.agents.base import AgentResult
from worker.deps import WorkerDeps
from worker.events import TaskJournal


async def start_run(
    journal: TaskJournal, deps: WorkerDeps, *, phase: str, attempt: int, backend: str,
    model: str | None, **event: Any,
) -> int:  # fmt: skip
    run_id = await TaskRunRepo(deps.pool).start(journal.task.id, phase=phase, attempt=attempt,
                                                 backend=backend, model=model)  # fmt: skip
    await journal.event(EventKind.AGENT_STARTED, phase=phase, attempt=attempt, backend=backend,
                        model=model, **event)  # fmt: skip
    return run_id


async def finish_run(
    journal: TaskJournal, deps: WorkerDeps, run_id: int, result: AgentResult, *, phase: str,
    attempt: int,
) -> Task:  # fmt: skip
    """The run's end on the record; returns the task's row with the run's spend added."""
    cost = Decimal(str(result.cost_usd)) if result.cost_usd is not None else None
    kind = result.error_kind.value if result.error_kind else None
    # The run's row and the task's spend at once; the event, which readers act on, after.
    # A run that succeeds without a cost is the subscription case: the task's cost is unknown.
    # (A run stopped early reports nothing; its cost is missing, but that is no such sign.)
    _, spent = await asyncio.gather(
        TaskRunRepo(deps.pool).finish(run_id, RunOutcome(
            ok=result.ok, exit_code=result.exit_code, session_id=result.session_id,
            cost_usd=cost, turns=result.turns, duration_seconds=result.duration_seconds,
            error_class=kind, error_message=result.error_message,
            output_tail=result.output_tail,
        )),
        TaskRepo(deps.pool).add_spend(journal.task.id, cost_usd=cost or Decimal(0),
                                      turns=result.turns or 0,
                                      cost_unknown=result.ok and cost is None),
    )  # fmt: skip
    tokens = {"usage": result.usage} if result.usage else {}  # a CLI that counts no dollars
    await journal.event(
        EventKind.AGENT_FINISHED, phase=phase, attempt=attempt, ok=result.ok,
        exit_code=result.exit_code, error_kind=kind, error=result.error_message[:500],
        cost_usd=result.cost_usd, turns=result.turns, seconds=round(result.duration_seconds, 2),
        session_id=result.session_id, permission_denials=result.permission_denials[:20],
        **tokens,
    )  # fmt: skip
    return spent
