"""The terminal's task report: the evidence-bearing events read as lines, not dicts."""

from __future__ import annotations

from datetime import UTC, datetime

from devserver.show import event_text
from storage.task_events import EventKind, TaskEvent

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_reality_signal_shows_score_threshold_and_one_line_per_source() -> None:
    event = TaskEvent(1, 1, EventKind.REALITY_SIGNAL, {
        "score": 38, "confidence": 0.55, "threshold": 40, "sources": [
            {"name": "repo_map", "signal": 0.0, "evidence": "0 of 2 names found"},
            {"name": "memory", "signal": None, "evidence": None, "error": "OSError: down"}]},
        AT)  # fmt: skip
    assert event_text(event).split("\n      ") == [
        "score=38/100 confidence=0.55 threshold=40",
        "repo_map 0.00: 0 of 2 names found",
        "memory -: unavailable (OSError: down)",
    ]


def test_memory_recall_names_the_tasks_it_recalled() -> None:
    event = TaskEvent(2, 1, EventKind.MEMORY_RECALL, {"ok": True, "memories": [
        {"key": "SHOP-2", "outcome": "success", "similarity": 0.61}]}, AT)  # fmt: skip
    assert event_text(event) == "1 similar: SHOP-2 (success, 0.61)"
    failed = TaskEvent(3, 1, EventKind.MEMORY_RECALL, {"ok": False, "error": "timeout"}, AT)
    assert event_text(failed) == "ok=False error=timeout"


def test_preflight_findings_and_the_pr_read_as_lines() -> None:
    blocked = TaskEvent(4, 1, EventKind.TASK_BLOCKED, {"reason": "preflight found 2", "count": 2,
        "violations": [
            {"check": "secret", "path": "a.py", "line": 3, "detail": "npm-access-token: npm_…"},
            {"check": "binary", "path": "logo.png", "detail": "binary file"}]}, AT)  # fmt: skip
    assert event_text(blocked).split("\n      ") == [
        "2 problem(s):", "a.py:3 secret: npm-access-token: npm_…", "logo.png binary: binary file"
    ]  # fmt: skip
    pr = TaskEvent(5, 1, EventKind.PR_OPENED, {"number": 4, "url": "https://g/me/w/pulls/4",
                                               "created": False}, AT)  # fmt: skip
    assert event_text(pr) == "PR #4 updated: https://g/me/w/pulls/4"
