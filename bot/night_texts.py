"""What /night says."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.texts import esc
from storage.nights import Fed, Night
from storage.task_status import TaskStatus

USAGE = (
    "Usage: <code>/night</code> (until 07:00), <code>/night until 06:30</code>, "
    "<code>/night stop</code>, <code>/night status</code>."
)
NOT_ON = "No night is on. Start one with <code>/night until 06:30</code>."
STOPPED = "🌅 Night stopped; its summary follows. Tasks already running finish."


def timezone(name: str | None) -> tzinfo:
    """The configured zone, or the server's local one."""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return datetime.now().astimezone().tzinfo or UTC


def _clock(night: Night, zone: tzinfo) -> str:
    return f"{night.ends_at.astimezone(zone):%H:%M} ({esc(str(zone))})"


def started(night: Night, zone: tzinfo) -> str:
    return (f"🌙 Night on until {_clock(night, zone)}: the worker takes the backlog (pending "
            "tasks by priority, then failed tasks worth one more try), and a summary comes "
            "at the end. <code>/night stop</code> ends it sooner.")  # fmt: skip


def already_on(night: Night | None, zone: tzinfo) -> str:
    if night is None:
        return "A night was starting at the same time; see <code>/night status</code>."
    return (f"A night is on already, until {_clock(night, zone)} (started by "
            f"{esc(night.started_by)}).")  # fmt: skip


def status(night: Night, fed: list[Fed], zone: tzinfo) -> str:
    counts: dict[str, int] = {}
    for item in fed:
        counts[item.task.status.value] = counts.get(item.task.status.value, 0) + 1
    done = ", ".join(f"{esc(s.replace('_', ' '))} {n}" for s, n in sorted(counts.items()))
    return (f"🌙 Night on until {_clock(night, zone)}, started by {esc(night.started_by)}.\n"
            f"Fed so far: {len(fed)} task(s)" + (f" ({done})" if done else "") + ".")  # fmt: skip


def summary(night: Night, fed: list[Fed], zone: tzinfo, status_page_url: str | None) -> str:
    """The morning summary: done, failed, blocked, still going, cost; one line per task,
    its key a link to its page when the status page has an address (else a button opens it)."""
    by: dict[str, list[Fed]] = {}
    for item in fed:
        by.setdefault(item.task.status.value, []).append(item)
    cost = sum((item.cost for item in fed), Decimal(0))
    counts = " · ".join(f"{status.replace('_', ' ')} {len(items)}"
                        for status, items in sorted(by.items()))  # fmt: skip
    end = night.stopped_at or night.ends_at
    span = f"{night.started_at.astimezone(zone):%H:%M} to {end.astimezone(zone):%H:%M}"
    unknown = sum(1 for item in fed if item.task.cost_unknown)
    spent = f"cost ${cost:.2f}" + (
        "" if not unknown else " (unknown: subscription)" if unknown == len(fed)
        else f" (+ {unknown} task(s) of unknown cost)"
    )  # fmt: skip
    lines = [f"🌅 <b>Night summary</b> ({span} {esc(str(zone))}, {esc(night.stop_reason or '')})",
             f"{len(fed)} task(s) run: {counts or 'none'} · {spent}"]  # fmt: skip
    base = (status_page_url or "").rstrip("/")
    for item in summary_order(fed):
        key = esc(item.task.key)
        link = f'<a href="{esc(base)}/tasks/{key}">{key}</a>' if base else key
        retry = " (retried)" if item.reason == "retry" else ""
        lines.append(f"• <b>{link}</b> {esc(item.task.title[:80])} — "
                     f"{esc(item.task.status.value.replace('_', ' '))}{retry}")  # fmt: skip
    return "\n".join(lines)


_ORDER = (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.BLOCKED)


def summary_order(fed: list[Fed]) -> list[Fed]:
    """Done first, then failed, blocked, and the rest; by task within each."""

    def order(item: Fed) -> tuple[int, int]:
        status = item.task.status
        return (_ORDER.index(status) if status in _ORDER else len(_ORDER), item.task.id)

    return sorted(fed, key=order)
