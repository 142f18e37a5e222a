"""Run a repo's verification steps (build, lint, test) and summarise the first failure.

Each step is a shell command run with `/bin/sh -c` in the worktree, with the environment
the caller passes (build it with agent_environment so no worker secret reaches it).
Steps run in order and stop at the first failure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.processes import TimeLeft, run_command, tail

log = logging.getLogger(__name__)

SUMMARY_OUTPUT_CHARS = 8000


@dataclass(frozen=True, slots=True)
class VerifyStep:
    name: str
    command: str


@dataclass(frozen=True, slots=True)
class StepResult:
    name: str
    command: str
    exit_code: int | None  # None when killed at the deadline
    timed_out: bool
    duration_seconds: float
    output_tail: str  # end of stdout and stderr, interleaved as written

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True, slots=True)
class VerifyResult:
    steps: list[StepResult]

    @property
    def passed(self) -> bool:
        return all(step.passed for step in self.steps)

    @property
    def failed_step(self) -> StepResult | None:
        return next((step for step in self.steps if not step.passed), None)

    def summary(self, output_chars: int = SUMMARY_OUTPUT_CHARS) -> str:
        """Short feedback for the agent: which step failed, how, and the end of its output."""
        failed = self.failed_step
        if failed is None:
            if not self.steps:
                return "No verification steps are configured."
            names = ", ".join(step.name for step in self.steps)
            return f"All verification steps passed ({names})."
        if failed.timed_out:
            outcome = f"timed out after {failed.duration_seconds:.0f} s and was killed"
        else:
            outcome = f"exited with code {failed.exit_code}"
        output = tail(failed.output_tail, output_chars).rstrip()
        return (
            f"Verification step '{failed.name}' failed: {outcome}.\n"
            f"Command: {failed.command}\n"
            f"Last output:\n{output or '(no output)'}"
        )


async def run_verify(
    steps: Sequence[VerifyStep],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_per_step: float,
    output_limit: int = 20_000,
    time_left: TimeLeft | None = None,
) -> VerifyResult:
    """Run the steps in order; stop at the first that fails. Empty commands are skipped.

    `time_left` (the task's wall time) can stop a step before its own timeout: it then
    counts as timed out."""
    results: list[StepResult] = []
    for step in steps:
        if not step.command.strip():
            continue
        log.info("verify step start", extra={"step": step.name})
        outcome = await run_command(
            ["/bin/sh", "-c", step.command],
            cwd=cwd,
            env=env,
            timeout=timeout_per_step,
            max_output_bytes=4 * output_limit,  # UTF-8: at most 4 bytes per character
            merge_stderr=True,
            time_left=time_left,
        )
        result = StepResult(
            name=step.name,
            command=step.command,
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            duration_seconds=outcome.duration_seconds,
            output_tail=tail(outcome.stdout, output_limit),
        )
        results.append(result)
        log.info(
            "verify step finished",
            extra={
                "step": step.name,
                "passed": result.passed,
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "duration_seconds": round(result.duration_seconds, 3),
            },
        )
        if not result.passed:
            break
    return VerifyResult(results)
