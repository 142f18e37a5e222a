"""One plain-text line per task event, for the status card's "Last:" line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from storage.task_events import TaskEvent


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, marking a cut with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def clock(iso: object) -> str:
    """ "14:05 UTC" from an ISO timestamp; the text itself if it is none."""
    try:
        return f"{datetime.fromisoformat(str(iso)):%H:%M} UTC"
    except ValueError:
        return str(iso)


_EVENT_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "status_changed": lambda p: f"status {p.get('from', '?')} → {p.get('to', '?')}"
    + (f": {p['reason']}" if p.get("reason") else ""),
    "agent_started": lambda p: f"{_run_name(p)} started ({p.get('backend', '?')})",
    "agent_finished": lambda p: f"{_run_name(p)} " + (
        "finished" if p.get("ok") else f"ended with {p.get('error_kind') or 'an error'}"),
    "agent_fallback": lambda p: f"{_agent(p, 'from')} refused ({p.get('reason', '?')}): "
        f"attempt {p.get('attempt', '?')} runs on {_agent(p, 'to')}",
    "plan_pending": lambda p: f"plan round {p.get('round', '?')} waits for your decision",
    "verify_started": lambda p: "checking: " + (", ".join(p.get("steps") or []) or "no steps"),
    "verify_passed": lambda p: "checks passed" + (" (skipped)" if p.get("skipped") else ""),
    "verify_failed": lambda p: f"check {p.get('step', '?')} failed (exit {p.get('exit_code')})",
    "retry_scheduled": lambda p: f"retrying: attempt {p.get('attempt', '?')}",
    "patches_generated": lambda p: f"{p.get('commits', 0)} commit(s) ready as patches",
    "workspace_ready": lambda p: f"workspace ready on {p.get('branch', '?')}",
    "repo_map_built": lambda p: (f"repo map: {p.get('files', 0)} files, {p.get('symbols', 0)} "
        f"symbols" + (" (cached)" if p.get("cached") else "")) if p.get("ok") else
        "repo map unavailable",
    "memory_recall": lambda p: f"recalled {len(p.get('memories') or [])} similar past task(s)"
        if p.get("ok") else "memory recall unavailable",
    "reality_signal": lambda p: f"reality score {p.get('score', '?')}/100",
    "error_classified": lambda p: f"failure class {p.get('key', '?')}: {p.get('hint', '')}",
    "rate_limit_backoff": lambda p: f"waiting for the model API ({p.get('kind', '?')}) until "
        f"{clock(p.get('resume_at'))}; no attempt used",
    "memory_written": lambda p: f"remembered as a {p.get('outcome', '?')}",
    "preflight_passed": lambda p: "changed files are within the plan" if p.get("kind") == "scope"
        else f"preflight passed: {p.get('commits', 0)} commit(s), {p.get('checked', 0)} file(s)",
    "preflight_failed": lambda p: ("outside the plan: " + ", ".join(p.get("files") or []))
        if p.get("kind") == "scope" else f"preflight failed: {p.get('count', 0)} problem(s)",
    "branch_pushed": lambda p: f"pushed {p.get('branch', '?')} at {str(p.get('commit', ''))[:12]}",
    "task_recovered": lambda p: f"queued again ({p.get('recovery', '?')} of "
        f"{p.get('of', '?')}): {p.get('reason', 'its job was lost')}",
    "pr_opened": lambda p: f"PR #{p.get('number', '?')} "
        f"{'opened' if p.get('created') else 'updated'}: {p.get('url', '')}",
}  # fmt: skip


def describe_event(event: TaskEvent | None) -> str:
    """One plain-text line about an event, for cards."""
    if event is None:
        return "no events yet"
    line = _EVENT_LINES.get(event.kind.value)
    return clip(line(event.payload) if line else event.kind.value.replace("_", " "), 300)


def _agent(p: dict[str, Any], side: str) -> str:
    """'codex' or 'codex (gpt-5)': a fallback's side, `from` or `to`."""
    model = p.get(f"{side}_model")
    return f"{p.get(f'{side}_backend', '?')}" + (f" ({model})" if model else "")


def _run_name(p: dict[str, Any]) -> str:
    if p.get("phase") == "plan":
        return f"planning (round {p.get('attempt', '?')})"
    return f"agent attempt {p.get('attempt', '?')}"
