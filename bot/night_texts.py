"""What /night says."""

from __future__ import annotations

from datetime import tzinfo

from bot.texts import esc
from storage.nights import Fed, Night

USAGE = (
    "Usage: <code>/night</code> (until 07:00), <code>/night until 06:30</code>, "
    "<code>/night stop</code>, <code>/night status</code>."
)
NOT_ON = "No night is on. Start one with <code>/night until 06:30</code>."
STOPPED = "🌅 Night stopped; its summary follows. Tasks already running finish."


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
