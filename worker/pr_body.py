"""The pull request's description: the task, its checks, what it cost, and the preflight.

Markdown, the same on Gitea, Forgejo and GitHub. The task's own text is the user's, so a
line of it that looks like a secret (worker/secrets.py) is withheld rather than published.
"""

from __future__ import annotations

from decimal import Decimal

from storage.task_runs import TaskRun
from storage.tasks import Task
from worker.preflight import Report
from worker.secrets import scan_text

MAX_BODY = 60_000  # GitHub's limit is 65,536 characters


def pr_body(task: Task, runs: list[TaskRun], report: Report, *, checked: list[str] | None = None
            ) -> str:  # fmt: skip
    """`checked`: the steps the last verify_passed event names (an `apply` task has no agent
    runs to read them from)."""
    lines = [f"**{task.key}**: {task.title}", ""]
    if task.description.strip():
        lines += [task.description.strip(), ""]
    if task.acceptance.strip():
        lines += ["**Acceptance**", "", task.acceptance.strip(), ""]
    lines += _verification(task, runs, checked)
    lines += _cost(task, runs)
    lines += _preflight(report)
    lines += ["", "<sub>Opened by DevServer. The patches are also in the task's chat.</sub>"]
    return _withhold_secrets("\n".join(lines))[:MAX_BODY]


def _verification(task: Task, runs: list[TaskRun], steps: list[str] | None) -> list[str]:
    lines = ["### Verification", ""]
    checked = [r for r in runs if r.phase == "attempt" and r.verify is not None]
    if task.skip_verify:
        return [*lines, "Skipped for this task.", ""]
    if (not checked or checked[-1].verify is None) and steps:
        return [*lines, f"Passed: {', '.join(steps)}.", ""]
    if not checked or checked[-1].verify is None:
        return [*lines, "This repository has no checks configured.", ""]
    report = checked[-1].verify
    lines += ["| step | command | result | time |", "|---|---|---|---|"]
    for step in report.get("steps", []):
        ok = step.get("exit_code") == 0 and not step.get("timed_out")
        result = "passed" if ok else ("timed out" if step.get("timed_out") else "failed")
        command = str(step.get("command", "")).replace("|", "\\|").replace("`", "'")
        lines.append(f"| {step.get('name', '')} | `{command}` | {result} | "
                     f"{step.get('seconds', 0)} s |")  # fmt: skip
    return [*lines, ""]


def _cost(task: Task, runs: list[TaskRun]) -> list[str]:
    attempts = [r for r in runs if r.phase == "attempt"]
    plans = [r for r in runs if r.phase == "plan"]
    cost = sum((r.cost_usd or Decimal(0) for r in runs), Decimal(0))
    spent = f"${cost:.2f}" + (" (some runs reported no cost)" if task.cost_unknown else "")
    minutes = task.spent_wall_seconds / 60
    agent = attempts[-1].backend if attempts else "none"
    model = attempts[-1].model if attempts and attempts[-1].model else "default model"
    return ["### Cost", "",
            f"{len(attempts)} attempt(s), {len(plans)} plan run(s), {task.spent_turns} turn(s), "
            f"{spent}, {minutes:.1f} min of work; agent {agent} ({model})", ""]  # fmt: skip


def _preflight(report: Report) -> list[str]:
    verdict = "passed" if report.passed else "failed"
    return ["### Preflight", "",
            f"{verdict}: {report.commits} commit(s), {len(report.files)} file(s); author "
            "identity, forbidden files, file sizes, binaries and a secret scan of the added "
            "lines"]  # fmt: skip


def _withhold_secrets(text: str) -> str:
    found = {f.line: f.rule for f in scan_text("PR body", text)}
    if not found:
        return text
    lines = text.split("\n")
    for number, rule in found.items():
        lines[number - 1] = f"_(a line withheld: it looks like a secret, {rule})_"
    return "\n".join(lines)
