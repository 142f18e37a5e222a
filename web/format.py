"""What the templates show, worked out of rows: jinja filters, and the task page's sections
(preflight verdict, reality score, budget, log tail) read from its events and runs.

Templates autoescape, so everything here returns plain text, never markup. The one-line
event texts are the bot's (bot/event_texts.py), so chat and page say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jinja2

from bot.event_texts import describe_event
from bot.texts import ICONS, elapsed, money, spent
from storage.repos import Repo
from storage.task_events import EventKind, TaskEvent
from storage.task_runs import TaskRun
from storage.task_status import TaskStatus
from storage.tasks import Task

LOG_TAIL = 4000  # characters of the latest run's output on the task page


def clock(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"
    return f"{seconds // 86400}d ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    return f"{whole // 60}m {whole % 60:02d}s" if whole >= 60 else f"{seconds:.1f}s"


def icon(status: TaskStatus | str) -> str:
    return ICONS.get(TaskStatus(status), "")


def event_line(event: TaskEvent) -> str:
    return describe_event(event)


def step_line(kind: str | None, payload: dict[str, Any] | None) -> str:
    """A running task's current step, from its latest event."""
    if kind is None:
        return "starting"
    return describe_event(TaskEvent(0, 0, EventKind(kind), payload or {}, datetime.now(UTC)))


def filters() -> dict[str, Any]:
    return {"clock": clock, "ago": ago, "duration": duration, "icon": icon, "money": money,
            "spent": spent, "elapsed": elapsed, "event_line": event_line,
            "step_line": step_line}  # fmt: skip


def environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True,
                             auto_reload=False)  # templates ship with the package  # fmt: skip
    env.filters.update(filters())
    return env


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    spent: str
    limit: str  # "no limit" when none applies
    share: float | None  # 0..1 of the limit used; None without a limit


def budget(task: Task, repo: Repo) -> list[Limit]:
    """Spent against the task's limits (its own, else its repo's)."""
    cost_limit = task.max_cost_usd or repo.max_cost_usd
    wall_limit = task.max_wall_seconds or repo.max_wall_seconds
    turn_limit = task.max_turns or repo.max_turns
    return [
        Limit("cost", spent(task), money(cost_limit) if cost_limit else "no limit",
              _share(task.spent_cost_usd, cost_limit) if not task.cost_unknown else None),
        Limit("wall time", duration(task.spent_wall_seconds),
              duration(wall_limit) if wall_limit else "no limit",
              _share(task.spent_wall_seconds, wall_limit)),
        Limit("turns", str(task.spent_turns), str(turn_limit) if turn_limit else "no limit",
              _share(task.spent_turns, turn_limit)),
    ]  # fmt: skip


def _share(used: Decimal | float | int, limit: Decimal | float | int | None) -> float | None:
    if not limit:
        return None
    return min(float(used) / float(limit), 1.0)


@dataclass(frozen=True, slots=True)
class Preflight:
    passed: bool
    summary: str
    violations: list[dict[str, Any]]
    at: datetime


def preflight(events: list[TaskEvent]) -> Preflight | None:
    """The latest pre-PR preflight verdict (not the plan's scope check), with findings."""
    for event in reversed(events):
        p = event.payload
        if event.kind is EventKind.PREFLIGHT_PASSED and p.get("kind") == "preflight":
            summary = f"passed: {p.get('commits', 0)} commit(s), {p.get('checked', 0)} file(s)"
            return Preflight(True, summary, [], event.created_at)
        if event.kind is EventKind.PREFLIGHT_FAILED and p.get("kind") == "preflight":
            return Preflight(False, str(p.get("reason", "failed")),
                             list(p.get("violations") or []), event.created_at)  # fmt: skip
    return None


def reality(events: list[TaskEvent]) -> dict[str, Any] | None:
    found = [e for e in events if e.kind is EventKind.REALITY_SIGNAL]
    return found[-1].payload if found else None


def log_tail(runs: list[TaskRun]) -> str:
    """The latest run's output tail, with the failed check's tail when there is one."""
    if not runs:
        return ""
    last = runs[-1]
    parts = [last.output_tail]
    for step in (last.verify or {}).get("steps", []):
        if step.get("exit_code") not in (0, None) or step.get("timed_out"):
            parts.append(f"--- check {step.get('name')} (exit {step.get('exit_code')}) ---\n"
                         f"{step.get('tail', '')}")  # fmt: skip
    return "\n".join(p for p in parts if p)[-LOG_TAIL:]
