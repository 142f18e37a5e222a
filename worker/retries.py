"""After a failed attempt: what went wrong (worker/classify.py), and whether to try again.

The retry policy: a hard class (a missing command, a merge conflict, no permission, a full
disk, bad credentials …) escalates at once, because another attempt of the agent cannot fix
it; so does the same class twice in a row, because the agent has already been told how to
fix it once. Everything else gets the remediation block (the class, its hint, and the
relevant lines of the output) as feedback for the next attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.agents.base import AgentResult, ErrorKind
from worker.classify import RULES, Classification, Severity, classify, remediation
from worker.processes import tail

EXCERPT_EVENT_CHARS = 1500  # of the quoted lines, in the error_classified event


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, classified; `source` is "agent" or the failed check's name."""

    classification: Classification
    source: str
    command: str | None = None

    @property
    def key(self) -> str:
        return self.classification.key

    def feedback(self) -> str:
        step = None if self.source == "agent" else self.source
        return remediation(self.classification, step=step, command=self.command)

    def event(self, attempt: int, escalate: str | None) -> dict[str, Any]:
        c = self.classification
        return {
            "attempt": attempt, "source": self.source, "key": c.key, "family": c.family,
            "severity": c.severity.value, "hint": c.hint, "location": c.location,
            "excerpt": tail(c.excerpt, EXCERPT_EVENT_CHARS), "escalate": escalate,
        }  # fmt: skip


def agent_failure(result: AgentResult) -> Failure:
    """Classify an agent run that did not succeed. The error kind its backend read from the
    CLI's structured result (auth, max turns, …) names the class when there is a rule for it;
    else the text does (a crash's traceback, a timeout). The quoted lines come from the text."""
    kind = result.error_kind or ErrorKind.CRASH
    text = "\n".join(part for part in (result.error_message, result.output_tail) if part)
    found = classify(text, timed_out=kind is ErrorKind.TIMEOUT)
    rule = _AGENT_RULES.get(f"agent.{kind.value}")
    if rule is not None and found.key != rule.key:
        found = Classification(rule.key, rule.family, rule.severity, rule.hint, found.location,
                               found.excerpt, found.retry_at)  # fmt: skip
    return Failure(found, "agent")


_AGENT_RULES = {rule.key: rule for rule in RULES if rule.family == "agent"}


def check_failure(step: str, command: str, output: str, *, timed_out: bool) -> Failure:
    return Failure(classify(output, timed_out=timed_out), step, command)


class RetryPolicy:
    """Remembers the previous failure's class within one job."""

    def __init__(self) -> None:
        self._previous: str | None = None

    def escalation(self, failure: Failure) -> str | None:
        """Why to stop trying now, or None to try again."""
        c = failure.classification
        previous, self._previous = self._previous, c.key
        if c.severity is Severity.HARD:
            return f"{c.key} is not something another attempt can fix"
        if c.key == previous and c.key != "unknown":
            return f"{c.key} again after the agent was told how to fix it"
        return None
