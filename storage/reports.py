"""The daily report: what happened to the tasks of the last 24 h, per chat.

The worker writes it into the outbox as a `report` notification whose payload is
`DailyReport.to_payload()`; the bot renders it (bot/report_texts.py) when it sends it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import asyncpg

from storage.db import Executor
from storage.task_status import TaskStatus

TOP_FAILURES = 5
KEYS_PER_FAILURE = 5

# Tasks that ended in the window, or were created in it (those may still be going). The
# failure class is the task's last error_classified event, when it has one.
_WINDOW = """
    SELECT t.key, t.status, t.status_reason, t.spent_cost_usd, t.cost_unknown, t.chat_id,
           coalesce(t.finished_at >= $1 AND t.finished_at < $2, false) AS ended,
           (SELECT e.payload ->> 'key'
              FROM task_events e
             WHERE e.task_id = t.id AND e.kind = 'error_classified'
             ORDER BY e.id DESC
             LIMIT 1) AS error_class
      FROM tasks t
     WHERE (t.finished_at >= $1 AND t.finished_at < $2)
        OR (t.created_at >= $1 AND t.created_at < $2)
     ORDER BY t.id
"""


@dataclass(frozen=True, slots=True)
class ReportTask:
    key: str
    status: TaskStatus
    reason: str
    cost: Decimal
    cost_unknown: bool
    chat_id: int | None
    ended: bool  # finished in the window (else created in it and not finished)
    error_class: str | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(r["key"], TaskStatus(r["status"]), r["status_reason"], r["spent_cost_usd"],
                   r["cost_unknown"], r["chat_id"], r["ended"], r["error_class"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Failure:
    label: str  # the failure class, or the start of the reason
    count: int
    keys: tuple[str, ...]  # the first few tasks that failed so


@dataclass(frozen=True, slots=True)
class DailyReport:
    since: datetime
    until: datetime
    done: int
    failed: int
    blocked: int
    cancelled: int
    still_open: int  # created in the window, not finished
    cost: Decimal
    cost_unknown: bool  # some agent run reported no cost: `cost` is short
    failures: tuple[Failure, ...]  # most frequent first

    def to_payload(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(), "until": self.until.isoformat(),
            "done": self.done, "failed": self.failed, "blocked": self.blocked,
            "cancelled": self.cancelled, "still_open": self.still_open,
            "cost": str(self.cost), "cost_unknown": self.cost_unknown,
            "failures": [{"label": f.label, "count": f.count, "keys": list(f.keys)}
                         for f in self.failures],
        }  # fmt: skip

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> Self:
        failures = tuple(Failure(str(f["label"]), int(f["count"]), tuple(map(str, f["keys"])))
                         for f in p.get("failures") or ())  # fmt: skip
        return cls(datetime.fromisoformat(p["since"]), datetime.fromisoformat(p["until"]),
                   int(p["done"]), int(p["failed"]), int(p["blocked"]), int(p["cancelled"]),
                   int(p["still_open"]), Decimal(p["cost"]), bool(p["cost_unknown"]),
                   failures)  # fmt: skip


def failure_label(task: ReportTask) -> str:
    """What groups failures: the class the classifier gave, else the reason up to its first
    ':' or ';' ("internal error", "could not prepare the workspace")."""
    if task.error_class:
        return task.error_class
    head = re.split(r"[:;]", task.reason, maxsplit=1)[0].strip()
    return head[:80] or "no reason given"


def summarise(tasks: Iterable[ReportTask], since: datetime, until: datetime) -> DailyReport:
    counts: dict[TaskStatus, int] = defaultdict(int)
    failures: dict[str, list[str]] = defaultdict(list)
    cost, cost_unknown, still_open = Decimal(0), False, 0
    for task in tasks:
        cost += task.cost
        cost_unknown = cost_unknown or task.cost_unknown
        if not task.ended:
            still_open += 1
            continue
        counts[task.status] += 1
        if task.status is TaskStatus.FAILED:
            failures[failure_label(task)].append(task.key)
    top = sorted(failures.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_FAILURES]
    return DailyReport(
        since, until, counts[TaskStatus.DONE], counts[TaskStatus.FAILED],
        counts[TaskStatus.BLOCKED], counts[TaskStatus.CANCELLED], still_open, cost,
        cost_unknown,
        tuple(Failure(label, len(keys), tuple(keys[:KEYS_PER_FAILURE])) for label, keys in top),
    )  # fmt: skip


class ReportRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def window(self, since: datetime, until: datetime) -> list[ReportTask]:
        """Tasks that ended in [since, until), or were created in it."""
        return [ReportTask.from_record(r) for r in await self._db.fetch(_WINDOW, since, until)]
