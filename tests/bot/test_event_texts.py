"""One line per event for cards and the status page: the recovery says what happened."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.event_texts import describe_event
from storage.task_events import EventKind, TaskEvent


def _event(kind: EventKind, payload: dict[str, object]) -> TaskEvent:
    return TaskEvent(1, 1, kind, payload, datetime(2026, 11, 25, tzinfo=UTC))


def test_a_recovery_names_its_count_and_reason() -> None:
    event = _event(EventKind.TASK_RECOVERED,
                   {"recovery": 1, "of": 2, "reason": "the worker running it stopped"})  # fmt: skip
    assert describe_event(event) == "queued again (1 of 2): the worker running it stopped"


def test_an_event_without_a_line_reads_as_its_kind() -> None:
    assert describe_event(_event(EventKind.TASK_DONE, {})) == "task done"
    assert describe_event(None) != ""
