"""The implement stage: agent attempts, each followed by the checks, until they pass.

After a failed attempt the agent gets the failure (the tail of the failed check, or why its
run ended) and tries again, resuming its session when the backend has one. An interactive
task implements its approved plan: the plan is in the prompt as a binding contract, and a
change that passes the checks must also stay inside the plan's files (worker/scope.py).
Outside them once, the agent is sent back to revert; twice, the task is blocked.

The task's budget (worker/budget.py) is checked before each agent run and before the checks,
and nothing is retried past it: the verdict then says which limit stopped the work. A task
resumed after that (Extend & resume) goes on in the agent's session when there is one.

A run the model API refuses (rate limit, overload, out of quota) is run again at once on the
repo's fallback agent, which keeps the rest of the job (worker/agent_choice.py); without
one, or refused again, the task waits (worker/backoff.py) or, out of quota, fails.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from storage.repos import Repo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import Task
from worker.agent_choice import Agent, fallback_agent, primary_agent, record_fallback, refused
from worker.agents.base import AgentRequest, AgentResult, ErrorKind
from worker.agents.environment import agent_environment, set_identity
from worker.agents.registry import UnknownBackend
from worker.backoff import REFUSED_KINDS, must_wait
from worker.budget import Budget, Usage
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.plan import Plan, plan_from_json
from worker.processes import tail
from worker.prompts import (
    feedback_prompt,
    interrupted_prompt,
    resume_prompt,
    task_prompt,
    verify_commands,
)
from worker.retries import Failure, RetryPolicy, agent_failure, check_failure
from worker.runs import finish_run, start_run
from worker.scope import changed_files, outside_plan, scope_feedback
from worker.verify import VerifyStep, run_verify
from worker.workspace import Worktree

FEEDBACK_LIMIT = 6000  # characters of failure output handed back to the agent
_ENDS = frozenset({EventKind.TASK_DONE, EventKind.TASK_FAILED, EventKind.TASK_BLOCKED,
                   EventKind.TASK_CANCELLED})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str = ""
    blocked: bool = False  # not failed but blocked: the work is kept and delivered as patches
    budget: Usage | None = None  # blocked by this limit of the task's budget
    wait: AgentResult | None = None  # refused by the model API: wait, then go on (backoff.py)


def _stopped(usage: Usage) -> Verdict:
    return Verdict(passed=False, reason=usage.reason, blocked=True, budget=usage)


@dataclass(frozen=True, slots=True)
class Step:
    """What one attempt ended with: a final verdict, or feedback for the next attempt."""

    verdict: Verdict | None
    feedback: str = ""
    reason: str = ""
    out_of_scope: tuple[str, ...] = ()  # files changed outside the approved plan
    failure: Failure | None = None  # the failed agent run or check, classified


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the agent is told next: in its session (`resume`), and the same with the task
    spelled out (`alone`), for an agent without that session (another CLI)."""

    text: str
    resume: str | None
    alone: str

    @classmethod
    def new(cls, text: str) -> Prompt:
        return cls(text, None, text)


async def implement(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps, budget: Budget, *,
    context: str = "",
) -> Verdict:  # fmt: skip
    """`context`: what the agent is shown before the task (repo map, past tasks)."""
    try:
        agent = primary_agent(journal.task, repo, deps)
    except UnknownBackend as exc:
        return Verdict(passed=False, reason=str(exc))
    return await _Attempts(journal, repo, worktree, deps, budget, agent=agent,
                           context=context).run()  # fmt: skip


class _Attempts:
    def __init__(
        self, journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps,
        budget: Budget, *, agent: Agent, context: str,
    ) -> None:  # fmt: skip
        self.journal, self.repo, self.worktree, self.deps = journal, repo, worktree, deps
        self.budget, self.context = budget, context
        self.policy = RetryPolicy()
        self.agent = agent  # the fallback, once the API has refused it (worker/agent_choice.py)
        self.fell_back = False
        self.task = journal.task
        self.home = deps.agent_homes / self.task.key
        self.steps = [VerifyStep(name, command) for name, command in verify_commands(repo)]
        self.runs = TaskRunRepo(deps.pool)
        self.contract = contract_of(self.task)
        self.scope_strikes = 0
        self.committed = False  # whether the last run's work was committed (it left some)

    async def run(self) -> Verdict:  # noqa: PLR0911  # one way out per kind of ending
        self.home.mkdir(parents=True, exist_ok=True)
        # Commits the agent makes itself carry the repo's identity (the preflight checks it).
        await set_identity(self.home, self.repo.git_author_name, self.repo.git_author_email)
        # Three reads, none waiting for another. The budget: resumed, or the plan phase
        # used it all.
        earlier, prompt, breach = await asyncio.gather(
            self.runs.attempts_made(self.task.id), self._first_prompt(), self.budget.exceeded()
        )
        session_id = prompt.resume
        reason = "no attempt was made"
        if breach is not None:
            return _stopped(breach)
        for n in range(1, self.repo.max_attempts + 1):
            attempt = earlier + n
            result, run_id, breach = await self._agent(attempt, prompt)
            if breach is None and refused(result) and (again := await self._fall_back(
                    attempt, result, prompt)) is not None:  # fmt: skip
                prompt, session_id = again, again.resume
                result, run_id, breach = await self._agent(attempt, prompt)
            if breach is not None:
                return _stopped(breach)
            if must_wait(result):  # not the agent's failure, and no attempt used
                return Verdict(passed=False, reason=result.error_message, wait=result)
            session_id = result.session_id or session_id
            step = await self._judge(result, attempt, run_id)
            escalated = await self._classified(step, attempt)
            if escalated is not None:
                return escalated
            if step.verdict is not None:
                return step.verdict
            if step.out_of_scope:
                last = n == self.repo.max_attempts
                verdict = await self._out_of_scope(step, attempt, last_attempt=last)
                if verdict is not None:
                    return verdict
            breach = await self.budget.exceeded()  # no retry past the budget
            if breach is not None:
                return _stopped(breach)
            reason = step.reason
            prompt = self._retry_prompt(step.feedback, session_id)
            if n < self.repo.max_attempts:
                await self.journal.event(EventKind.RETRY_SCHEDULED, attempt=attempt + 1,
                                         reason=reason)  # fmt: skip
        return Verdict(passed=False, reason=f"{reason} (after {self.repo.max_attempts} attempt(s))")

    async def _classified(self, step: Step, attempt: int) -> Verdict | None:
        """Record the failure's class; stop here if the retry policy says to escalate."""
        if step.failure is None:
            return None
        escalate = self.policy.escalation(step.failure)
        await self.journal.event(EventKind.ERROR_CLASSIFIED,
                                 **step.failure.event(attempt, escalate))  # fmt: skip
        if escalate is None or step.verdict is not None:
            return None
        c = step.failure.classification
        where = f" at {c.location}" if c.location else ""
        return Verdict(passed=False, reason=f"{step.reason}{where}; escalated: {escalate}. "
                       f"Hint: {c.hint}")  # fmt: skip

    async def _out_of_scope(
        self, step: Step, attempt: int, *, last_attempt: bool
    ) -> Verdict | None:
        """The first time, send the agent back (if an attempt is left); else block the task."""
        if self.scope_strikes > 1:
            return Verdict(False, f"{step.reason}, again after being sent back", blocked=True)
        if last_attempt:
            return Verdict(False, f"{step.reason}, with no attempt left to revert them",
                           blocked=True)  # fmt: skip
        await self.journal.event(EventKind.PREFLIGHT_FAILED, kind="scope",
                                 files=list(step.out_of_scope), attempt=attempt,
                                 reason=step.reason)  # fmt: skip
        return None

    async def _first_prompt(self) -> Prompt:
        """The task; after the budget or the model API stopped it, go on (in the agent's
        session, if it has one)."""
        base = task_prompt(self.task, self.repo, self.contract, self.context)
        stop = await interruption(self.deps, self.task, backend=self.agent.name)
        if stop is None:
            return Prompt.new(base)
        write = resume_prompt if stop.by_budget else interrupted_prompt
        alone = write(stop.reason, with_task=base)
        if stop.session_id is None:
            return Prompt.new(alone)
        # The agent remembers the task and its work: it needs no telling again.
        return Prompt(write(stop.reason), stop.session_id, alone)

    def _retry_prompt(self, feedback: str, session_id: str | None) -> Prompt:
        base = task_prompt(self.task, self.repo, self.contract, self.context)
        alone = feedback_prompt(feedback, with_task=base)
        if session_id is None:
            return Prompt.new(alone)
        return Prompt(feedback_prompt(feedback), session_id, alone)  # it remembers the task

    async def _fall_back(self, attempt: int, result: AgentResult, prompt: Prompt) -> Prompt | None:
        """Switch to the repo's fallback (once per job), saying so; the prompt it gets: the
        same in the same CLI (its session goes on), else the task spelled out."""
        if self.fell_back:
            return None
        self.fell_back = True
        fallback = fallback_agent(self.repo, self.agent, self.deps)
        if fallback is None:
            return None
        await record_fallback(self.journal, result, phase="attempt", attempt=attempt,
                              primary=self.agent, fallback=fallback)  # fmt: skip
        same_cli = fallback.name == self.agent.name
        self.agent = fallback
        return prompt if same_cli else Prompt.new(prompt.alone)

    async def _agent(self, attempt: int, prompt: Prompt) -> tuple[AgentResult, int, Usage | None]:
        """One agent run, its work committed; and the limit that stopped it, if one did."""
        moved = None
        if self.journal.task.status is not TaskStatus.RUNNING:
            moved = await self.journal.move(TaskStatus.RUNNING)
        limits = await self.budget.run_limits(self.deps.settings.default_max_turns, fresh=moved)
        agent = self.agent
        run_id = await start_run(self.journal, self.deps, phase="attempt", attempt=attempt,
                                 backend=agent.name, model=agent.model,
                                 resumed_session=prompt.resume is not None)  # fmt: skip
        async with self.budget.metered() as wall_left:
            request = AgentRequest(
                prompt=prompt.text, workdir=self.worktree.path, home=self.home,
                deadline_seconds=self.deps.settings.agent_timeout_seconds, model=agent.model,
                max_turns=limits.max_turns, max_budget_usd=limits.max_budget_usd,
                resume_session_id=prompt.resume, wall_left=wall_left,
            )  # fmt: skip
            result = await agent.backend.run(request)  # if stopped, jobs keeps what it wrote
        spent = await finish_run(self.journal, self.deps, run_id, result, phase="attempt",
                                 attempt=attempt)  # fmt: skip
        breach = await self.budget.stopped(result, limits)
        if breach is not None:
            await self._commit(f"WIP: partial work, {breach.reason}")
            return result, run_id, breach
        self.committed = await self._commit(f"{self.task.key}: {self.task.title}")
        await self.budget.warn(fresh=spent)
        return result, run_id, None

    async def _judge(self, result: AgentResult, attempt: int, run_id: int) -> Step:
        if not result.ok:
            kind = result.error_kind or ErrorKind.CRASH
            reason = f"agent run {attempt} ended with {kind.value}: {result.error_message}"
            failure = agent_failure(result)  # a hard class (auth, …) escalates: no retry
            feedback = (f"The agent run ended early ({kind.value}): {result.error_message}\n"
                        "Continue from the current state of the working tree.\n\n"
                        f"{failure.feedback()}")  # fmt: skip
            return Step(None, tail(feedback, FEEDBACK_LIMIT), reason, failure=failure)
        # A commit made just now is after the base; else the agent may have committed itself.
        if not self.committed and not await self.deps.workspace.commits_since_base(self.worktree):
            feedback = "You made no changes to the repository; the task needs a change."
            return Step(None, feedback, "the agent made no changes")
        if self.task.skip_verify or not self.steps:
            await self.journal.event(EventKind.VERIFY_PASSED, attempt=attempt, steps=[],
                                     skipped=True)  # fmt: skip
            return await self._scope(attempt)
        step = await self._verify(attempt, run_id)
        if step.verdict is not None and step.verdict.passed:
            return await self._scope(attempt)
        return step

    async def _scope(self, attempt: int) -> Step:
        """The approved plan's allow-list, checked once the change passes its checks."""
        if self.contract is None:
            return Step(Verdict(passed=True))
        base, allowed = self.worktree.base_commit, self.contract.files_to_touch
        changed = await changed_files(self.worktree.path, base)
        outside = outside_plan(changed, allowed)
        if not outside:
            await self.journal.event(EventKind.PREFLIGHT_PASSED, kind="scope", files=changed,
                                     attempt=attempt)  # fmt: skip
            return Step(Verdict(passed=True))
        self.scope_strikes += 1
        await self.deps.workspace.discard_changes(self.worktree)  # what the checks left behind
        feedback = await scope_feedback(self.worktree.path, base, outside, allowed)
        reason = f"changed files outside the approved plan: {', '.join(outside)}"
        return Step(None, feedback, reason, out_of_scope=tuple(outside))

    async def _verify(self, attempt: int, run_id: int) -> Step:
        breach = await self.budget.exceeded(only="wall")  # the checks take time, not money
        if breach is not None:
            return Step(_stopped(breach))
        await self.journal.move(TaskStatus.VERIFYING)
        await self.journal.event(EventKind.VERIFY_STARTED, attempt=attempt,
                                 steps=[s.name for s in self.steps])  # fmt: skip
        async with self.budget.metered() as wall_left:
            result = await run_verify(self.steps, cwd=self.worktree.path,
                                      env=agent_environment(self.home),
                                      timeout_per_step=self.repo.verify_timeout_seconds,
                                      time_left=wall_left)  # fmt: skip
        await self.budget.warn()
        report = [{"name": s.name, "command": s.command, "exit_code": s.exit_code,
                   "timed_out": s.timed_out, "seconds": round(s.duration_seconds, 2),
                   "tail": tail(s.output_tail, 4000)} for s in result.steps]  # fmt: skip
        await self.runs.record_verify(run_id, {"passed": result.passed, "steps": report})
        failed = result.failed_step
        if failed is None:
            await self.journal.event(EventKind.VERIFY_PASSED, attempt=attempt,
                                     steps=[s.name for s in result.steps])  # fmt: skip
            return Step(Verdict(passed=True))
        await self.journal.event(EventKind.VERIFY_FAILED, attempt=attempt, step=failed.name,
                                 exit_code=failed.exit_code, timed_out=failed.timed_out,
                                 tail=tail(failed.output_tail, 1500))  # fmt: skip
        await self.deps.workspace.discard_changes(self.worktree)  # what the checks left behind
        failure = check_failure(failed.name, failed.command, failed.output_tail,
                                timed_out=failed.timed_out)  # fmt: skip
        return Step(None, tail(failure.feedback(), FEEDBACK_LIMIT),
                    f"verification failed at step {failed.name} ({failure.key})",
                    failure=failure)  # fmt: skip

    async def _commit(self, message: str) -> bool:
        return await self.deps.workspace.commit_all(
            self.worktree, message, self.repo.git_author_name, self.repo.git_author_email
        )


@dataclass(frozen=True, slots=True)
class Interruption:
    reason: str
    session_id: str | None  # of the last attempt; None when the backend reported none
    by_budget: bool  # else: the model API refused a run (worker/backoff.py)


async def interruption(
    deps: WorkerDeps, task: Task, *, backend: str | None = None
) -> Interruption | None:
    """If the task's last job ended at its budget or waiting for the model API, after
    implementing began: why, and the agent session to go on in (with `backend`: only a
    session of that CLI; another's is of no use to it)."""
    events = await TaskEventRepo(deps.pool).for_task(task.id)
    ends = [e for e in events if e.kind in _ENDS or e.kind is EventKind.RATE_LIMIT_BACKOFF]
    if not ends:
        return None
    last = ends[-1]
    by_budget = last.kind is EventKind.TASK_BLOCKED and "budget_exceeded" in last.payload
    waited = last.kind is EventKind.RATE_LIMIT_BACKOFF and last.payload.get("phase") == "attempt"
    if not (by_budget or waited):
        return None
    attempts = [r for r in await TaskRunRepo(deps.pool).for_task(task.id) if r.phase == "attempt"]
    if not attempts:  # stopped before implementing (by the plan phase): nothing to go on from
        return None
    # A refused run's session holds no work worth going on from, and may not exist.
    usable = [r for r in attempts if r.error_class not in REFUSED_KINDS]
    sessions = [r.session_id for r in usable if r.session_id and backend in (None, r.backend)]
    if by_budget:
        reason = str(last.payload.get("reason", ""))
    else:
        reason = f"the model API refused the run ({last.payload.get('kind', 'rate_limit')})"
    return Interruption(reason, sessions[-1] if sessions else None, by_budget)


def contract_of(task: Task) -> Plan | None:
    """The approved plan an interactive task implements; None for an autonomous task."""
    if task.mode != "interactive" or task.plan_approved_at is None:
        return None
    return plan_from_json(task.plan)
