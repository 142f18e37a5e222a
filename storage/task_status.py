"""A task's statuses and the only moves between them (TaskRepo.move checks them in SQL)."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    PREPARING = "preparing"
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    VERIFYING = "verifying"
    DELIVERING = "delivering"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


S = TaskStatus
TERMINAL = frozenset({S.DONE, S.FAILED, S.BLOCKED, S.CANCELLED})
ACTIVE = frozenset({S.PREPARING, S.PLANNING, S.RUNNING, S.VERIFYING, S.DELIVERING})

# Where each status may go next. A job that died mid-task (worker crash) may start over from
# any active status, so every active status may go back to PREPARING; FAILED/BLOCKED/CANCELLED
# may be queued again (retry, resume), DONE never changes again.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PENDING: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.PREPARING, S.CANCELLED, S.FAILED}),
    S.PREPARING: frozenset({S.PREPARING, S.PLANNING, S.RUNNING, S.QUEUED, S.FAILED, S.BLOCKED,
                            S.CANCELLED}),
    S.PLANNING: frozenset({S.PREPARING, S.AWAITING_APPROVAL, S.QUEUED, S.FAILED, S.BLOCKED,
                           S.CANCELLED}),
    S.AWAITING_APPROVAL: frozenset({S.QUEUED, S.BLOCKED, S.CANCELLED}),
    S.RUNNING: frozenset({S.PREPARING, S.VERIFYING, S.DELIVERING, S.QUEUED, S.FAILED, S.BLOCKED,
                          S.CANCELLED}),
    S.VERIFYING: frozenset({S.PREPARING, S.RUNNING, S.DELIVERING, S.QUEUED, S.FAILED, S.BLOCKED,
                            S.CANCELLED}),
    S.DELIVERING: frozenset({S.PREPARING, S.DONE, S.QUEUED, S.FAILED, S.BLOCKED, S.CANCELLED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),
    S.BLOCKED: frozenset({S.QUEUED, S.CANCELLED}),
    S.CANCELLED: frozenset({S.QUEUED}),
}  # fmt: skip


def allowed_sources(to: TaskStatus) -> frozenset[TaskStatus]:
    return frozenset(src for src, targets in TRANSITIONS.items() if to in targets)
