"""The daily report (a `report` notification; storage/reports.py), as the chat reads it."""

from __future__ import annotations

from datetime import UTC

from bot.texts import ICONS, esc, money
from storage.reports import DailyReport
from storage.task_status import TaskStatus


def daily_report(report: DailyReport) -> str:
    """Counts, cost and the most frequent failures of the 24 h up to `report.until`."""
    until = report.until.astimezone(UTC)
    cost = money(report.cost) + (" (some runs reported no cost)" if report.cost_unknown else "")
    lines = [
        f"📊 <b>Daily report</b>: the 24 h to {until:%Y-%m-%d %H:%M} UTC",
        f"{ICONS[TaskStatus.DONE]} {report.done} done · {ICONS[TaskStatus.FAILED]} "
        f"{report.failed} failed · {ICONS[TaskStatus.BLOCKED]} {report.blocked} blocked · "
        f"{ICONS[TaskStatus.CANCELLED]} {report.cancelled} cancelled",
        f"Still open (created in that time): {report.still_open} · Cost: {cost}",
    ]
    if report.failures:
        lines.append("<b>Top failures</b>")
        for failure in report.failures:
            keys = ", ".join(esc(key) for key in failure.keys)
            hidden = failure.count - len(failure.keys)
            more = f" and {hidden} more" if hidden > 0 else ""
            lines.append(f"• {esc(failure.label)} ({failure.count}): {keys}{more}")
    return "\n".join(lines)
