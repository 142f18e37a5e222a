"""The implement stage: agent attempts, each followed by the checks, until they pass.

After a failed attempt the agent gets the failure (the tail of the failed check, or why its
run ended) and tries again, resuming its session when the backend has one. An interactive
task implements its approved plan: the plan is in the prompt as a binding contract, and a
change that passes the checks must also stay inside the plan's files (worker/scope.py).
Outside them once, the agent is sent back to revert; twice, the task is blocked.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.repos import Repo
from storage.task_events import EventKind
from storage.task_runs import TaskRunRepo
from storage.tasks import Task, TaskStatus
from worker.agents.base import AgentBackend, AgentRequest, AgentResult, ErrorKind
from worker.agents.environment import agent_environment
from worker.agents.registry import UnknownBackend
from worker.deps import WorkerDeps
from worker.events import TaskJournal
from worker.plan import Plan, plan_from_json
from worker.processes import tail
from worker.prompts import feedback_prompt, task_prompt, verify_commands
from worker.runs import deadline_seconds, finish_run, start_run
from worker.scope import changed_files, outside_plan, scope_feedback
from worker.verify import VerifyStep, run_verify
from worker.workspace import Worktree

# Agent errors no retry can fix: stop at once and tell the user.
HARD_AGENT_ERRORS = frozenset({ErrorKind.AUTH, ErrorKind.PROMPT_TOO_LONG, ErrorKind.BUDGET})
FEEDBACK_LIMIT = 6000  # characters of failure output handed back to the agent


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reason: str = ""
    blocked: bool = False  # not failed but blocked: the work is kept and delivered as patches


@dataclass(frozen=True, slots=True)
class Step:
    """What one attempt ended with: a final verdict, or feedback for the next attempt."""

    verdict: Verdict | None
    feedback: str = ""
    reason: str = ""
    out_of_scope: tuple[str, ...] = ()  # files changed outside the approved plan


async def implement(
    journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps
) -> Verdict:
    task = journal.task
    name = task.agent_backend or repo.agent_backend
    try:
        backend = deps.backend_for(repo, name)
    except UnknownBackend as exc:
        return Verdict(passed=False, reason=str(exc))
    loop = _Attempts(journal, repo, worktree, deps, backend=backend, backend_name=name)
    return await loop.run()


class _Attempts:
    def __init__(
        self, journal: TaskJournal, repo: Repo, worktree: Worktree, deps: WorkerDeps, *,
        backend: AgentBackend, backend_name: str,
    ) -> None:  # fmt: skip
        self.journal, self.repo, self.worktree, self.deps = journal, repo, worktree, deps
        self.backend, self.backend_name = backend, backend_name
        self.task = journal.task
        self.model = self.task.agent_model or repo.agent_model
        self.home = deps.agent_homes / self.task.key
        self.steps = [VerifyStep(name, command) for name, command in verify_commands(repo)]
        self.runs = TaskRunRepo(deps.pool)
        self.contract = contract_of(self.task)
        self.scope_strikes = 0

    async def run(self) -> Verdict:
        self.home.mkdir(parents=True, exist_ok=True)
        earlier = await self.runs.attempts_made(self.task.id)
        session_id: str | None = None
        feedback: str | None = None
        reason = "no attempt was made"
        for n in range(1, self.repo.max_attempts + 1):
            attempt = earlier + n
            result, run_id = await self._agent(attempt, feedback, session_id)
            session_id = result.session_id or session_id
            step = await self._judge(result, attempt, run_id)
            if step.verdict is not None:
                return step.verdict
            if step.out_of_scope:
                last = n == self.repo.max_attempts
                verdict = await self._out_of_scope(step, attempt, last_attempt=last)
                if verdict is not None:
                    return verdict
            feedback, reason = step.feedback, step.reason
            if n < self.repo.max_attempts:
                await self.journal.event(EventKind.RETRY_SCHEDULED, attempt=attempt + 1,
                                         reason=reason)  # fmt: skip
        return Verdict(passed=False, reason=f"{reason} (after {self.repo.max_attempts} attempt(s))")

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

    def _prompt(self, feedback: str | None, session_id: str | None) -> str:
        base = task_prompt(self.task, self.repo, self.contract)
        if feedback is None:
            return base
        if session_id is not None:  # the agent remembers the task
            return feedback_prompt(feedback)
        return feedback_prompt(feedback, with_task=base)

    async def _agent(
        self, attempt: int, feedback: str | None, session_id: str | None
    ) -> tuple[AgentResult, int]:
        if self.journal.task.status is not TaskStatus.RUNNING:
            await self.journal.move(TaskStatus.RUNNING)
        resume = session_id if feedback is not None else None
        run_id = await start_run(self.journal, self.deps, phase="attempt", attempt=attempt,
                                 backend=self.backend_name, model=self.model,
                                 resumed_session=resume is not None)  # fmt: skip
        request = AgentRequest(
            prompt=self._prompt(feedback, session_id), workdir=self.worktree.path,
            home=self.home, deadline_seconds=deadline_seconds(self.journal.task, self.deps),
            model=self.model,
            max_turns=self.task.max_turns or self.deps.settings.default_max_turns,
            resume_session_id=resume,
        )  # fmt: skip
        result = await self.backend.run(request)  # if stopped, jobs keeps what it wrote
        await finish_run(self.journal, self.deps, run_id, result, phase="attempt", attempt=attempt)
        await self._commit(f"{self.task.key}: {self.task.title}")
        return result, run_id

    async def _judge(self, result: AgentResult, attempt: int, run_id: int) -> Step:
        if not result.ok:
            kind = result.error_kind or ErrorKind.CRASH
            reason = f"agent run {attempt} ended with {kind.value}: {result.error_message}"
            if kind in HARD_AGENT_ERRORS:
                return Step(Verdict(passed=False, reason=reason))
            feedback = (f"The agent run ended early ({kind.value}): {result.error_message}\n"
                        "Continue from the current state of the working tree.")  # fmt: skip
            return Step(None, feedback, reason)
        if not await self.deps.workspace.commits_since_base(self.worktree):
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
        await self.journal.move(TaskStatus.VERIFYING)
        await self.journal.event(EventKind.VERIFY_STARTED, attempt=attempt,
                                 steps=[s.name for s in self.steps])  # fmt: skip
        result = await run_verify(self.steps, cwd=self.worktree.path,
                                  env=agent_environment(self.home),
                                  timeout_per_step=self.repo.verify_timeout_seconds)  # fmt: skip
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
        return Step(None, tail(result.summary(), FEEDBACK_LIMIT),
                    f"verification failed at step {failed.name}")  # fmt: skip

    async def _commit(self, message: str) -> str | None:
        return await self.deps.workspace.commit_all(
            self.worktree, message, self.repo.git_author_name, self.repo.git_author_email
        )


def contract_of(task: Task) -> Plan | None:
    """The approved plan an interactive task implements; None for an autonomous task."""
    if task.mode != "interactive" or task.plan_approved_at is None:
        return None
    return plan_from_json(task.plan)
