"""Plain-text views of repos and tasks for the terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.artifacts import Artifact
from storage.repos import Repo
from storage.task_events import TaskEvent
from storage.task_runs import TaskRun
from storage.tasks import Task


def repo_line(repo: Repo) -> str:
    checks = ", ".join(f"{n}: {c}" for n, c in (("pre", repo.pre_command),
                       ("build", repo.build_command), ("test", repo.test_command),
                       ("lint", repo.lint_command)) if c) or "no checks"  # fmt: skip
    forge = repo.forge_kind
    if repo.forge_owner and repo.forge_name:
        forge += f" {repo.forge_base_url}/{repo.forge_owner}/{repo.forge_name}"
    return (
        f"{repo.name:<16} {repo.key_prefix:<8} {repo.default_branch:<10} {repo.source}  "
        f"[{checks}]  forge: {forge}"
    )


def task_line(task: Task) -> str:
    return f"{task.key:<10} {task.status.value:<18} p{task.priority} {task.title}"


def _time(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def event_text(event: TaskEvent) -> str:
    """The event's payload in one line, and the evidence-bearing ones in a few readable lines."""
    p = event.payload
    match event.kind.value:
        case "reality_signal":
            lines = [
                f"score={p.get('score')}/100 confidence={p.get('confidence')}"
                + (f" threshold={p['threshold']}" if p.get("threshold") is not None else "")
            ]
            for source in p.get("sources") or []:
                said = source.get("evidence") or f"unavailable ({source.get('error')})"
                value = "-" if source.get("signal") is None else f"{source['signal']:.2f}"
                lines.append(f"{source.get('name')} {value}: {said}")
            return "\n      ".join(lines)
        case "memory_recall" if p.get("ok"):
            found = [
                f"{m.get('key')} ({m.get('outcome')}, {m.get('similarity')})"
                for m in p.get("memories") or []
            ]
            return f"{len(found)} similar: " + (", ".join(found) or "none")
        case "preflight_failed" | "task_blocked" if p.get("violations"):
            found = [
                f"{v.get('path')}"
                + (f":{v['line']}" if v.get("line") else "")
                + f" {v.get('check')}: {v.get('detail')}"
                for v in p["violations"]
            ]
            return "\n      ".join([f"{p.get('count', len(found))} problem(s):", *found])
        case "pr_opened":
            verb = "opened" if p.get("created") else "updated"
            return f"PR #{p.get('number')} {verb}: {p.get('url')}"
    return _payload(p)


def _payload(payload: dict[str, Any]) -> str:
    parts = []
    for key, value in payload.items():
        if value in (None, "", [], {}):
            continue
        text = str(value).replace("\n", " ⏎ ")
        parts.append(f"{key}={text[:160]}")
    return " ".join(parts)


def budget_lines(task: Task) -> str:
    """Spent against the task's own limits (none: the repo's or the global ones apply)."""
    cost = f"${task.max_cost_usd:.2f}" if task.max_cost_usd else None
    wall = f"{task.max_wall_seconds}s" if task.max_wall_seconds else None
    rows = [("cost", f"${task.spent_cost_usd:.2f}", cost),
            ("wall", f"{task.spent_wall_seconds:.0f}s", wall),
            ("turns", str(task.spent_turns), task.max_turns)]  # fmt: skip
    lines = [f"{task.key}  {task.title}"]
    for name, spent, own in rows:
        lines.append(
            f"  {name + ':':<9} {spent} of " + (str(own) if own else "no limit of its own")
        )
    return "\n".join(lines)


def task_report(
    task: Task, repo: Repo, runs: list[TaskRun], events: list[TaskEvent], artifacts: list[Artifact]
) -> str:
    reason = f" ({task.status_reason})" if task.status_reason else ""
    lines = [
        f"{task.key}  {task.title}",
        f"  status:   {task.status.value}{reason}",
        f"  repo:     {repo.name} ({repo.source})",
        f"  flow:     {task.git_flow}   priority: {task.priority}   branch: {task.branch or '-'}"
        + (f"   PR: {task.pr_url}" if task.pr_url else ""),
        f"  spent:    ${task.spent_cost_usd:.4f}, {task.spent_turns} turns, "
        f"{task.spent_wall_seconds:.1f}s agent time",
    ]
    if task.description:
        lines += ["", "Description:"] + [f"  {line}" for line in task.description.splitlines()]
    lines += ["", f"Runs ({len(runs)}):"]
    for run in runs:
        verdict = "ok" if run.ok else (run.error_class or "failed")
        checks = ""
        if run.verify is not None:
            checks = "  checks " + ("passed" if run.verify.get("passed") else "FAILED")
        cost = f"${run.cost_usd:.4f}" if run.cost_usd is not None else "cost n/a"
        seconds = f"{run.duration_seconds:.1f}s" if run.duration_seconds is not None else "-"
        lines.append(f"  #{run.attempt} {run.phase:<8} {run.backend:<8} {verdict:<10} "
                     f"{seconds:>7} {cost} turns {run.turns or '-'}{checks}")  # fmt: skip
    lines += ["", f"Events ({len(events)}):"]
    for event in events:
        lines.append(f"  {_time(event.created_at)} {event.kind.value:<18} {event_text(event)}")
    lines += ["", f"Artifacts ({len(artifacts)}):"]
    for artifact in artifacts:
        lines.append(
            f"  {artifact.filename:<40} {artifact.size:>8} bytes  sha256 {artifact.sha256[:12]}"
        )
    if any(a.filename == "combined.mbox" for a in artifacts):
        lines += ["", f"Apply with:  devserver task mbox {task.key} | git am"]
    return "\n".join(lines)
