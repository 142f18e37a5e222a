"""Each task's planned status and event sequence for bench/web_status.py (seeded)."""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web_data import EVENT_GAP_SECONDS, HISTORY_DAYS, REPOS, Payloads, S, Text, task_text

from storage.task_events import EventKind
from storage.task_status import ACTIVE, TaskStatus

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Payload: TypeAlias = dict[str, Any]

# --- planned tasks and their event sequences -----------------------------------------------


@dataclass(slots=True)
class Planned:
    key: str
    repo_index: int
    status: TaskStatus
    events: int
    interactive: bool
    text: Text
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    times: list[datetime] = field(default_factory=list)
    requeued: bool = False


def plan_statuses(rng: random.Random, total: int) -> list[TaskStatus]:
    queued, awaiting = min(20, total // 10), min(8, total // 20)
    active = [S.RUNNING, S.VERIFYING, S.PLANNING, S.PREPARING]
    rest = total - queued - awaiting - len(active)
    terminal = rng.choices([S.DONE, S.FAILED, S.BLOCKED, S.CANCELLED], [72, 14, 8, 6], k=rest)
    return [S.QUEUED] * queued + [S.AWAITING_APPROVAL] * awaiting + active + terminal


def event_counts(rng: random.Random, statuses: list[TaskStatus], total: int) -> list[int]:
    """Events per task: small for waiting tasks, log-normal around the mean for the rest,
    0.4% long tasks with 10-80x the mean (the largest exactly 80x); summing to `total`."""
    mean = total / len(statuses)
    counts, regular = [], []
    for i, status in enumerate(statuses):
        if status is S.QUEUED:  # new, or a quarter back after a failure
            counts.append(rng.randint(40, 120) if rng.random() < 0.25 else 3)
        elif status in (S.AWAITING_APPROVAL, S.PLANNING, S.PREPARING):
            counts.append(rng.randint(12, 30))
        else:
            counts.append(max(30, round(rng.lognormvariate(math.log(mean * 0.9), 0.45))))
            regular.append(i)
    long_count = max(2, len(statuses) // 250)
    long_tasks = rng.sample([i for i in regular if statuses[i] is S.DONE], long_count)
    for n, i in enumerate(long_tasks):
        counts[i] = round(mean * 80) if n == 0 else round(mean * math.exp(
            rng.uniform(math.log(10), math.log(80))))  # fmt: skip
    fixed = set(long_tasks)
    adjustable = [i for i in regular if i not in fixed]
    # Scale the regular tasks so everything sums to `total`, then settle the rounding.
    want = total - sum(counts) + sum(counts[i] for i in adjustable)
    scale = want / sum(counts[i] for i in adjustable)
    for i in adjustable:
        counts[i] = max(30, round(counts[i] * scale))
    diff = total - sum(counts)
    while diff != 0:
        i = rng.choice(adjustable)
        step = 1 if diff > 0 else -1
        if counts[i] + step >= 30:
            counts[i] += step
            diff -= step
    return counts


def plan_tasks(rng: random.Random, tasks: int, events: int, now: datetime) -> list[Planned]:
    statuses = plan_statuses(rng, tasks)
    counts = event_counts(rng, statuses, events)
    planned = []
    for status, n in zip(statuses, counts, strict=True):
        interactive = status in (S.AWAITING_APPROVAL, S.PLANNING) or rng.random() < 0.15
        p = Planned("", rng.randrange(len(REPOS)), status, n, interactive, task_text(rng))
        p.requeued = status is S.QUEUED and n > 3
        gaps = [0.0, 0.05, 0.1] + [rng.expovariate(1 / EVENT_GAP_SECONDS)
                                   for _ in range(p.events - 3)]  # fmt: skip
        if p.events > 3:
            gaps[3] += rng.expovariate(1 / 600)  # waiting in the queue
        span = sum(gaps)
        if status is S.QUEUED:
            end = now - timedelta(seconds=rng.uniform(30, 7200))
        elif status in ACTIVE:
            end = now - timedelta(seconds=rng.uniform(2, 60))
        elif status is S.AWAITING_APPROVAL:
            end = now - timedelta(seconds=rng.uniform(600, 86400))
        else:
            latest = now - timedelta(seconds=60)
            end = latest - timedelta(seconds=rng.uniform(0, HISTORY_DAYS * 86400 - span))
        start = end - timedelta(seconds=span)
        moment, p.times = 0.0, []
        for gap in gaps:
            moment += gap
            p.times.append(start + timedelta(seconds=moment))
        p.created_at = p.times[0]
        planned.append(p)
    planned.sort(key=lambda p: p.created_at)
    sequence = [0] * len(REPOS)
    for p in planned:
        sequence[p.repo_index] += 1
        p.key = f"{REPOS[p.repo_index][1]}-{sequence[p.repo_index]}"
    return planned


def lifecycle(rng: random.Random, pay: Payloads, p: Planned) -> list[tuple[str, str]]:
    """Exactly p.events (kind, payload) pairs, in the order the worker writes them."""
    k = EventKind

    def ev(kind: EventKind) -> tuple[str, str]:
        return kind.value, pay.pick(kind)

    def sc(frm: TaskStatus, to: TaskStatus, reason: str = "") -> tuple[str, str]:
        return k.STATUS_CHANGED.value, pay.change(frm, to, reason)

    created = {"key": p.key, "title": p.text.title, "by": rng.choice(["cli", "telegram"])}
    head = [(k.TASK_CREATED.value, json.dumps(created)), sc(S.PENDING, S.QUEUED),
            ev(k.TASK_QUEUED)]  # fmt: skip
    start = [sc(S.QUEUED, S.PREPARING), ev(k.WORKSPACE_READY), ev(k.REPO_MAP_BUILT),
             ev(k.MEMORY_RECALL), ev(k.REALITY_SIGNAL)]  # fmt: skip
    plan = [sc(S.PREPARING, S.PLANNING), ev(k.AGENT_STARTED), ev(k.AGENT_FINISHED),
            sc(S.PLANNING, S.AWAITING_APPROVAL), ev(k.PLAN_PENDING)]  # fmt: skip
    approve = [ev(k.PLAN_REMINDER), ev(k.OPERATOR_ACTION), ev(k.PLAN_APPROVED),
               sc(S.AWAITING_APPROVAL, S.QUEUED), ev(k.TASK_QUEUED),
               sc(S.QUEUED, S.PREPARING), ev(k.WORKSPACE_READY)]  # fmt: skip
    run = [sc(S.PREPARING, S.RUNNING)]
    failed_reason = "verification failed at step test (pytest.failures) (after 3 attempt(s))"
    failed = [ev(k.AGENT_STARTED), ev(k.AGENT_FINISHED), sc(S.RUNNING, S.VERIFYING),
              ev(k.VERIFY_STARTED), ev(k.VERIFY_FAILED), ev(k.ERROR_CLASSIFIED),
              ev(k.MEMORY_WRITTEN), sc(S.VERIFYING, S.FAILED, failed_reason),
              ev(k.TASK_FAILED)]  # fmt: skip
    tails: dict[TaskStatus, list[tuple[str, str]]] = {
        S.DONE: [ev(k.AGENT_STARTED), ev(k.AGENT_FINISHED), sc(S.RUNNING, S.VERIFYING),
                 ev(k.VERIFY_STARTED), ev(k.VERIFY_PASSED), ev(k.PREFLIGHT_PASSED),
                 sc(S.VERIFYING, S.DELIVERING), ev(k.PREFLIGHT_PASSED),
                 ev(k.PATCHES_GENERATED), ev(rng.choice([k.PR_OPENED, k.BRANCH_PUSHED])),
                 ev(k.MEMORY_WRITTEN), sc(S.DELIVERING, S.DONE), ev(k.TASK_DONE)],
        S.FAILED: failed,
        S.BLOCKED: [ev(k.BUDGET_WARNING), ev(k.BUDGET_EXCEEDED),
                    sc(S.RUNNING, S.BLOCKED, "cost limit $5.00 reached ($5.12 used)"),
                    ev(k.TASK_BLOCKED)],
        S.CANCELLED: [ev(k.OPERATOR_ACTION), sc(S.RUNNING, S.CANCELLED, "cancelled by Alice"),
                      ev(k.TASK_CANCELLED)],
        S.RUNNING: [ev(k.AGENT_STARTED)],
        S.VERIFYING: [ev(k.AGENT_STARTED), ev(k.AGENT_FINISHED), sc(S.RUNNING, S.VERIFYING),
                      ev(k.VERIFY_STARTED)],
        S.PLANNING: [sc(S.PREPARING, S.PLANNING), ev(k.AGENT_STARTED)],
        S.PREPARING: [ev(k.WORKSPACE_READY)],
        S.AWAITING_APPROVAL: plan,
        S.QUEUED: [*failed, ev(k.OPERATOR_ACTION), sc(S.FAILED, S.QUEUED), ev(k.TASK_QUEUED)],
    }  # fmt: skip
    if p.status is S.QUEUED and not p.requeued:
        return head
    executing = p.status not in (S.AWAITING_APPROVAL, S.PLANNING, S.PREPARING)
    prefix = head + start
    if p.interactive and executing:
        prefix += plan + approve
    if executing:
        prefix += run
    tail = tails[p.status]
    room = p.events - len(prefix) - len(tail)
    if room < 0:
        return (prefix[: p.events - len(tail)] + tail)[-p.events :]
    middle: list[tuple[str, str]] = []
    while not executing and len(middle) < room:  # waits before the plan
        middle += [ev(k.RATE_LIMIT_BACKOFF), ev(k.OPERATOR_ACTION), ev(k.REPO_MAP_BUILT)]
    while len(middle) < room:  # failed attempts, with what happens between them
        middle += [ev(k.AGENT_STARTED), ev(k.AGENT_FINISHED), sc(S.RUNNING, S.VERIFYING),
                   ev(k.VERIFY_STARTED), ev(k.VERIFY_FAILED), ev(k.ERROR_CLASSIFIED),
                   ev(k.RETRY_SCHEDULED), sc(S.VERIFYING, S.RUNNING)]  # fmt: skip
        for kind, chance in ((k.RATE_LIMIT_BACKOFF, 0.15), (k.OPERATOR_ACTION, 0.1),
                             (k.BUDGET_WARNING, 0.05), (k.REPO_MAP_BUILT, 0.1)):  # fmt: skip
            if rng.random() < chance:
                middle.append(ev(kind))
    return prefix + middle[:room] + tail
