"""bench/overhead.py's account of where a task's time goes: git's own wall time per
subcommand (from GIT_TRACE2_EVENT), the pipeline's phases (from the task's events), and the
CPU time of the worker, its children and PostgreSQL (from /proc)."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import asyncpg


def git_seconds(trace: Path) -> dict[str, float]:
    """Wall seconds of each top-level git command in a trace2 event file, by subcommand."""
    totals: dict[str, float] = defaultdict(float)
    names: dict[str, str] = {}
    if not trace.exists():
        return {}
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        sid = event.get("sid", "")
        if "/" in sid:
            continue  # a child git of a git command: inside its parent's time
        if event.get("event") == "start":
            names[sid] = _subcommand(event.get("argv", [])[1:])
        elif event.get("event") == "exit":
            totals[names.get(sid, "?")] += float(event.get("t_abs", 0.0))
    return dict(totals)


def _subcommand(argv: list[str]) -> str:
    """`worktree` of `git -c user.name=X -C dir worktree add ...`."""
    words = iter(argv)
    for word in words:
        if word in ("-c", "-C"):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return "?"


PHASES = (  # (label, event that ends the phase); each phase starts where the last ended
    ("queue pickup -> preparing", "status_changed:preparing"),
    ("workspace (fetch, worktree)", "workspace_ready"),
    ("repo map, memory, prompt", "agent_started"),
    ("agent", "agent_finished"),
    ("commit the agent's work, verify (none)", "verify_passed"),
    ("preflight, patches", "patches_generated"),
    ("done", "task_done"),
    ("after done: memory written (the slot still held)", "memory_written"),
)


async def phases(pool: asyncpg.Pool, task_id: int) -> dict[str, float]:
    """Seconds per phase from the task's events (each stamped with its transaction's start)."""
    created = await pool.fetchval("SELECT created_at FROM tasks WHERE id = $1", task_id)
    rows = await pool.fetch("SELECT kind, payload->>'to' AS moved_to, created_at "
                            "FROM task_events WHERE task_id = $1 ORDER BY id", task_id)  # fmt: skip
    out: dict[str, float] = {}
    last = created
    for label, ends in PHASES:
        kind, _, moved_to = ends.partition(":")
        at = next((r["created_at"] for r in rows if r["kind"] == kind and r["created_at"] >= last
                   and (not moved_to or r["moved_to"] == moved_to)), None)  # fmt: skip
        if at is None:
            continue
        out[label] = (at - last).total_seconds()
        last = at
    return out


def cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of process `pid`, and of its children that have ended
    (Linux /proc; (0, 0) for a process gone or elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / tick, (cutime + cstime) / tick


def postgres_cpu() -> float:
    """CPU seconds of every process of this machine named `postgres` (the embedded server's
    backends and helpers; none when the database runs elsewhere)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="ascii") as comm:
                if comm.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        total += sum(cpu(int(entry)))
    return total
