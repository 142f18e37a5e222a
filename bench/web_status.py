"""How fast the read-only status page answers with a large history, and how soon a new
event reaches an open page.

Seeds a scratch database with 5 repositories, T tasks in every status (most finished, ~20
queued, 4 active, some awaiting approval) and E task events (most tasks around E/T, a few
with 10-80 times that), 1-3 runs per task and a few patch/mbox artifacts, all loaded with
COPY. Then it starts the real status page as its own process (`python -m devserver web`)
and measures, from a client in this process over loopback:

- time to first byte and to the whole body of /, /?partial=1, /tasks, a filtered search,
  a deep page and two task pages (a typical one and the largest), N requests each after
  10 warm-ups, one at a time on a keep-alive connection;
- write -> SSE message latency for events written one by one with TaskEventRepo.add (the
  clock starts at the call: the NOTIFY can beat add()'s own answer), on a task's stream and
  on the dashboard's (plus the dashboard's re-fetch of /?partial=1, as the page does), with
  1 and with 20 clients open;
- the same pages' handlers in this process (no HTTP), and their queries alone;
- EXPLAIN ANALYZE of the pages' queries (custom plan, and the generic plan a prepared
  statement may switch to after five runs).

    .venv/bin/python bench/web_status.py [--dsn DSN] [--tasks 10000] [--events 1000000]
                                         [--requests 200] [--live-events 500]
                                         [--gap-ms 10,50] [--quick] [--keep]

Uses --dsn (a server: a scratch database is created on it and dropped at the end, unless
--keep), else DATABASE_URL, else the embedded PostgreSQL under $TMPDIR.
Targets: first byte < 100 ms for every page; an event in an open page < 200 ms after commit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import jinja2
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import artifacts as artifacts_sql
from storage import task_events as events_sql
from storage import task_runs as runs_sql
from storage import task_views as views_sql
from storage import tasks as tasks_sql
from storage import workers as workers_sql
from storage.artifacts import ArtifactRepo
from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from storage.migrate import apply_all
from storage.repos import RepoRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import ACTIVE, TaskStatus
from storage.task_views import TaskViews
from storage.tasks import TaskRepo
from web import views
from web.format import environment
from web.keys import env_key, pool_key

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Payload: TypeAlias = dict[str, Any]

PAGE_TARGET_MS = 100.0
EVENT_TARGET_MS = 200.0
SEED = 20261126
WARMUP = 10
LIVE_CLIENTS = 20
SEARCH_WORD = "login"
HISTORY_DAYS = 120
EVENT_GAP_SECONDS = 20.0  # mean time between two events of a running task
REPOS = [("api", "API"), ("webapp", "WEB"), ("core", "CORE"), ("infra", "OPS"),
         ("docs", "DOCS")]  # fmt: skip
S = TaskStatus

# --- generated tasks -----------------------------------------------------------------------

AREAS: dict[str, tuple[list[str], list[str]]] = {
    "auth": (["login page", "password reset", "session cookie", "OAuth callback", "2FA prompt",
              "LoginView", "remember_me checkbox"],
             ["auth/views.py", "auth/forms.py", "auth/tokens.py", "templates/login.html"]),
    "billing": (["checkout", "invoice PDF", "Stripe webhook", "refund flow", "coupon codes",
                 "InvoiceService", "subscription renewal"],
                ["billing/invoices.py", "billing/webhooks.py", "billing/models.py"]),
    "search": (["search results", "autocomplete", "index rebuild", "SearchQuery parser",
                "faceted filters", "ranking_score"],
               ["search/index.py", "search/query.py", "search/api.py"]),
    "export": (["CSV export", "XLSX report", "export_orders job", "date range filter",
                "ReportBuilder"], ["reports/export.py", "reports/builder.py"]),
    "api": (["REST pagination", "rate limiter", "API keys", "OpenAPI docs",
             "JSON error responses", "cursor pagination"],
            ["api/views.py", "api/pagination.py", "api/throttling.py", "api/schema.py"]),
    "infra": (["Docker image", "CI pipeline", "database migrations", "health check",
               "log rotation", "login rate alerts"],
              ["Dockerfile", ".github/workflows/ci.yml", "settings/base.py", "Makefile"]),
}  # fmt: skip
PROBLEMS = ["returns 500 when the {x} is empty", "is slow for large accounts",
            "times out under load", "shows the wrong timezone", "breaks on unicode names",
            "fails with a KeyError on missing fields", "is not covered by tests",
            "ignores the user's locale", "returns stale data after an update"]  # fmt: skip
VERBS = ["Fix", "Add", "Refactor", "Speed up", "Handle errors in", "Add tests for", "Rewrite",
         "Validate input of", "Document"]  # fmt: skip
FIELDS = ["password", "email", "quantity", "query string", "file name", "date", "token"]
DETAILS = [
    "Steps: open the {thing}, submit with the {x} blank; expected a validation message.",
    "Customers reported it twice this week; the stack trace is in Sentry.",
    "The handler in {file} does not check the {x} before using it.",
    "Profile it first; the N+1 query in {file} is the likely culprit.",
    "Keep the public API unchanged and add a regression test.",
]
OPERATORS = [(5012345, "Alice"), (6023456, "Bob"), (7034567, "Carol")]


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    description: str
    files: list[str]


def task_text(rng: random.Random) -> Text:
    things, files = AREAS[rng.choice(list(AREAS))]
    thing, x = rng.choice(things), rng.choice(FIELDS)
    title = f"{rng.choice(VERBS)} {thing}: {rng.choice(PROBLEMS).format(x=x)}"
    touched = rng.sample(files, k=rng.randint(1, min(3, len(files))))
    details = rng.sample(DETAILS, k=rng.randint(1, 3))
    return Text(title, " ".join(d.format(thing=thing, x=x, file=touched[0]) for d in details),
                touched)  # fmt: skip


def pytest_tail(rng: random.Random, chars: int) -> str:
    """The end of a failing pytest run, about `chars` long."""
    area = rng.choice(list(AREAS))
    lines = [f"tests/test_{area}.py::test_case_{i} PASSED" for i in range(rng.randint(8, 30))]
    lines += [
        "=" * 30 + " FAILURES " + "=" * 30,
        f"_____ test_{area}_handles_empty_input _____",
        "    def test_handles_empty_input(client):",
        f"        resp = client.post('/{area}/', data={{'value': ''}})",
        ">       assert resp.status_code == 400",
        "E       assert 500 == 400",
        "E        +  where 500 = <Response [500]>.status_code",
        f"tests/test_{area}.py:{rng.randint(20, 400)}: AssertionError",
        "----------------------------- Captured log call -----------------------------",
        f"ERROR    {area}.views:views.py:{rng.randint(10, 300)} KeyError: 'value'",
        "=" * 25 + " short test summary info " + "=" * 25,
        f"FAILED tests/test_{area}.py::test_{area}_handles_empty_input - assert 500 == 400",
        f"{'=' * 10} 1 failed, {rng.randint(20, 400)} passed in {rng.uniform(2, 90):.2f}s "
        f"{'=' * 10}",
    ]
    text = "\n".join(lines)
    while len(text) < chars:
        text = f"tests/test_{area}.py::test_more_{len(text)} PASSED\n" + text
    return text[-chars:]


def _hex(rng: random.Random, n: int = 40) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


class Payloads:
    """Realistic payloads per event kind (shapes as worker/ writes them), a pool of variants
    each, generated once; the JSON text is kept too, for COPY."""

    VARIANTS = 40

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.pool: dict[str, list[Payload]] = {
            kind.value: [self._make(kind) for _ in range(self.VARIANTS)]
            for kind in EventKind
            if kind not in (EventKind.STATUS_CHANGED, EventKind.TASK_CREATED)
        }
        self.text = {k: [json.dumps(p) for p in v] for k, v in self.pool.items()}
        self._changes: dict[tuple[str, str, str], str] = {}

    def pick(self, kind: EventKind) -> str:
        return self._rng.choice(self.text[kind.value])

    def pick_dict(self, kind: EventKind) -> Payload:
        return self._rng.choice(self.pool[kind.value])

    def change(self, frm: TaskStatus, to: TaskStatus, reason: str = "") -> str:
        key = (frm.value, to.value, reason)
        if key not in self._changes:
            self._changes[key] = json.dumps({"from": frm.value, "to": to.value, "reason": reason})
        return self._changes[key]

    def _make(self, kind: EventKind) -> Payload:  # noqa: PLR0911, PLR0912  # one case per kind
        rng, k = self._rng, EventKind
        attempt = rng.randint(1, 3)
        text = task_text(rng)
        branch = f"agent/{rng.choice(REPOS)[1]}-{rng.randint(1, 3000)}"
        if kind is k.TASK_QUEUED:
            return {"job_id": rng.randint(1, 10**6), "priority": rng.randint(1, 4)}
        if kind is k.WORKSPACE_READY:
            return {"branch": branch, "base_commit": _hex(rng), "resumed": rng.random() < 0.2}
        if kind is k.REPO_MAP_BUILT:
            return {"ok": True, "tree_id": _hex(rng), "cached": rng.random() < 0.6,
                    "seconds": round(rng.uniform(0.01, 6), 3), "files": rng.randint(50, 9000),
                    "parsed": rng.randint(50, 9000), "symbols": rng.randint(500, 150_000),
                    "languages": {"python": rng.randint(40, 6000), "c": rng.randint(0, 900),
                                  "javascript": rng.randint(0, 400)},
                    "shown_files": rng.randint(10, 60),
                    "chars": rng.randint(4000, 16000)}  # fmt: skip
        if kind is k.MEMORY_RECALL:
            return {"ok": True, "embedder": "hashed-v1", "memories": [
                {"key": f"{rng.choice(REPOS)[1]}-{rng.randint(1, 3000)}",
                 "outcome": rng.choice(["success", "failure"]),
                 "title": task_text(rng).title[:120], "similarity": round(rng.random(), 3),
                 "error_class": rng.choice([None, "pytest.failures", "timeout"])}
                for _ in range(rng.randint(0, 5))]}  # fmt: skip
        if kind is k.REALITY_SIGNAL:
            names = ["git_history", "issue_tracker", "code_search", "test_coverage"]
            return {"score": rng.randint(20, 95), "confidence": round(rng.random(), 2),
                    "threshold": rng.choice([None, 40]), "sources": [
                        {"name": n, "weight": 0.25, "signal": round(rng.random(), 3),
                         "evidence": f"{rng.randint(1, 40)} commits touched "
                                     f"{text.files[0]} in the last 90 days",
                         "informative": True, "error": None} for n in names]}  # fmt: skip
        if kind in (k.AGENT_STARTED,):
            return {"phase": "attempt", "attempt": attempt, "backend": "claude",
                    "model": rng.choice([None, "sonnet"])}  # fmt: skip
        if kind is k.AGENT_FINISHED:
            ok = rng.random() < 0.7
            return {"phase": "attempt", "attempt": attempt, "ok": ok,
                    "exit_code": 0 if ok else 1, "error_kind": None if ok else "max_turns",
                    "error": "" if ok else "Reached the maximum number of turns (80)",
                    "cost_usd": round(rng.uniform(0.05, 3), 4), "turns": rng.randint(3, 80),
                    "seconds": round(rng.uniform(20, 900), 2),
                    "session_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "permission_denials": []}  # fmt: skip
        if kind is k.VERIFY_STARTED:
            return {"attempt": attempt, "steps": ["lint", "test"]}
        if kind is k.VERIFY_PASSED:
            return {"attempt": attempt, "steps": ["lint", "test"]}
        if kind is k.VERIFY_FAILED:
            return {"attempt": attempt, "step": "test", "exit_code": 1, "timed_out": False,
                    "tail": pytest_tail(rng, 1500)}  # fmt: skip
        if kind is k.ERROR_CLASSIFIED:
            return {"attempt": attempt, "source": "verify", "key": "pytest.failures",
                    "family": "tests", "severity": "retryable",
                    "hint": "a test fails: read the assertion and fix the code, not the test",
                    "location": f"tests/test_{rng.choice(list(AREAS))}.py:{rng.randint(9, 400)}",
                    "excerpt": pytest_tail(rng, 400), "escalate": None}  # fmt: skip
        if kind is k.RETRY_SCHEDULED:
            return {"attempt": attempt + 1,
                    "reason": "verification failed at step test (pytest.failures)"}  # fmt: skip
        if kind is k.RATE_LIMIT_BACKOFF:
            resume = datetime(2026, 11, 20, rng.randint(0, 23), rng.randint(0, 59), tzinfo=UTC)
            return {"kind": "rate_limit", "phase": "attempt", "resume_at": resume.isoformat(),
                    "seconds": rng.randint(60, 3600), "wait": rng.randint(1, 5), "max_waits": 6,
                    "job_id": rng.randint(1, 10**6),
                    "message": "429 rate_limit_error: Number of request tokens has exceeded "
                               "your per-minute rate limit"}  # fmt: skip
        if kind in (k.BUDGET_WARNING, k.BUDGET_EXCEEDED):
            return {"limit": "cost", "used": round(rng.uniform(3, 5), 2), "max": 5.0}
        if kind is k.PREFLIGHT_PASSED:
            if rng.random() < 0.5:
                return {"kind": "scope", "files": text.files, "attempt": attempt}
            return {"kind": "preflight", "commits": rng.randint(1, 4), "files": text.files,
                    "checked": len(text.files)}  # fmt: skip
        if kind is k.PREFLIGHT_FAILED:
            return {"kind": "preflight", "commits": 1, "files": text.files,
                    "checked": len(text.files), "count": 1,
                    "violations": [{"check": "secrets", "path": text.files[0], "line": 12,
                                    "detail": "looks like an AWS key", "rule": "aws-key"}],
                    "reason": f"preflight found 1 problem(s): {text.files[0]}:12: looks like "
                              "an AWS key"}  # fmt: skip
        if kind is k.PATCHES_GENERATED:
            n = rng.randint(1, 3)
            return {"commits": n, "files": [f"{i + 1:04d}-fix.patch" for i in range(n)]
                    + ["combined.mbox"], "mbox_bytes": rng.randint(2000, 40000)}  # fmt: skip
        if kind is k.PR_OPENED:
            number = rng.randint(1, 900)
            return {"number": number, "url": f"https://git.example.com/acme/api/pulls/{number}",
                    "forge": "gitea", "created": True, "head": branch, "base": "main"}  # fmt: skip
        if kind is k.BRANCH_PUSHED:
            return {"branch": branch, "commit": _hex(rng)}
        if kind is k.MEMORY_WRITTEN:
            return {"memory_id": rng.randint(1, 10**5), "outcome": "success",
                    "files": text.files, "error_class": None}  # fmt: skip
        if kind in (k.PLAN_PENDING,):
            return {"round": 1, "ok": True, "summary": f"{text.title}; change {text.files[0]}",
                    "steps": rng.randint(2, 6), "files": len(text.files)}  # fmt: skip
        if kind in (k.PLAN_APPROVED, k.PLAN_REJECTED):
            return {"round": 1, "by": rng.choice(OPERATORS)[1]}
        if kind is k.PLAN_REMINDER:
            return {"round": 1, "waiting_seconds": rng.randint(1800, 90000)}
        if kind is k.OPERATOR_ACTION:
            user_id, name = rng.choice(OPERATORS)
            return {"action": rng.choice(["retry", "cancel", "approve", "budget"]),
                    "via": rng.choice(["button", "command"]), "user_id": user_id,
                    "name": name}  # fmt: skip
        if kind is k.TASK_DONE:
            return {"reason": "", "commits": rng.randint(1, 3), "branch": branch}
        if kind is k.TASK_FAILED:
            return {"reason": "verification failed at step test (pytest.failures) "
                              "(after 3 attempt(s))"}  # fmt: skip
        if kind is k.TASK_BLOCKED:
            return {"reason": "cost limit $5.00 reached ($5.12 used)", "commits": 1,
                    "branch": branch,
                    "budget_exceeded": {"limit": "cost", "used": 5.12, "max": 5.0}}  # fmt: skip
        if kind is k.TASK_CANCELLED:
            return {"reason": f"cancelled by {rng.choice(OPERATORS)[1]}", "commits": 0,
                    "branch": branch}  # fmt: skip
        return {}


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


# --- seeding -------------------------------------------------------------------------------

TASK_COLUMNS = ["key", "repo_id", "title", "description", "acceptance", "priority", "mode",
                "git_flow", "skip_verify", "max_cost_usd", "spent_cost_usd",
                "spent_wall_seconds", "spent_turns", "status", "status_reason", "plan",
                "plan_round", "plan_approved_at", "plan_decided_by", "awaiting_since", "pr_url",
                "branch", "base_commit", "head_commit", "chat_id", "thread_id", "message_id",
                "created_by", "created_at", "updated_at", "started_at", "finished_at"]  # fmt: skip
EVENT_COLUMNS = ["task_id", "kind", "payload", "created_at"]
RUN_COLUMNS = ["task_id", "phase", "attempt", "backend", "model", "session_id", "exit_code",
               "ok", "cost_usd", "turns", "duration_seconds", "error_class", "error_message",
               "output_tail", "verify", "started_at", "finished_at"]  # fmt: skip
ARTIFACT_COLUMNS = ["task_id", "kind", "filename", "content", "sha256", "size", "created_at"]
REASONS = {S.FAILED: "verification failed at step test (pytest.failures) (after 3 attempt(s))",
           S.BLOCKED: "cost limit $5.00 reached ($5.12 used)",
           S.CANCELLED: "cancelled by Alice"}  # fmt: skip


def task_record(rng: random.Random, p: Planned, repo_id: int) -> tuple[Any, ...]:
    ran = p.events > 3
    decided = p.interactive and ran and p.status not in (S.AWAITING_APPROVAL, S.PLANNING,
                                                         S.PREPARING)  # fmt: skip
    started = p.times[3] if ran else None
    finished = p.times[-1] if p.status in (S.DONE, S.FAILED, S.BLOCKED, S.CANCELLED) else None
    plan = None
    if p.interactive:
        plan = json.dumps({"summary": p.text.title, "steps": [
            f"Read {f} and find where it goes wrong" for f in p.text.files] + [
            "Add a regression test", "Fix the code"], "files_to_touch": p.text.files,
            "risks": ["touches a hot path"]})  # fmt: skip
    chat = rng.random() < 0.5
    spent = Decimal(f"{rng.uniform(0.1, 5):.4f}") if ran else Decimal(0)
    branch = f"agent/{p.key}" if ran else None
    return (
        p.key, repo_id, p.text.title, p.text.description,
        "The tests pass and the case is covered." if rng.random() < 0.3 else "",
        rng.choice([1, 2, 3, 3, 3, 4]), "interactive" if p.interactive else "autonomous",
        rng.choice(["patch", "pr", "patch", "direct"]), False,
        Decimal(5) if rng.random() < 0.3 else None, spent,
        (p.times[-1] - p.times[3]).total_seconds() if ran else 0.0,
        rng.randint(5, 200) if ran else 0, p.status.value, REASONS.get(p.status, ""), plan,
        1 if p.interactive else 0,
        p.times[min(len(p.times) - 1, 20)] if decided else None, "Alice" if decided else None,
        p.times[-1] if p.status is S.AWAITING_APPROVAL else None,
        None, branch, _hex(rng) if ran else None, _hex(rng) if ran else None,
        -1001234567890 if chat else None, rng.choice([None, 17, 42]) if chat else None,
        rng.randint(1, 10**6) if chat else None, "telegram" if chat else "cli",
        p.created_at, p.times[-1], started, finished,
    )  # fmt: skip


def run_records(rng: random.Random, p: Planned, task_id: int,
                tails: list[str]) -> list[tuple[Any, ...]]:  # fmt: skip
    if p.events <= 3 or p.status in (S.PREPARING,):
        return []
    out: list[tuple[Any, ...]] = []
    phases = (["plan"] if p.interactive else []) + ["attempt"] * rng.randint(1, 3)
    span = (p.times[-1] - p.times[3]) / (len(phases) + 1)
    attempt = 0
    for i, phase in enumerate(phases):
        attempt = 1 if phase == "plan" or attempt == 0 else attempt + 1
        last = i == len(phases) - 1
        running = last and p.status in (S.RUNNING, S.PLANNING)
        ok = None if running else (p.status is S.DONE and last) or phase == "plan"
        tail = rng.choice(tails)
        verify = None
        if phase == "attempt" and not running:
            verify = json.dumps({"passed": bool(ok), "steps": [
                {"name": "lint", "command": "ruff check .", "exit_code": 0, "timed_out": False,
                 "seconds": 1.2, "tail": "All checks passed!"},
                {"name": "test", "command": "pytest -q", "exit_code": 0 if ok else 1,
                 "timed_out": False, "seconds": round(rng.uniform(2, 90), 2),
                 "tail": tail[-4000:]}]})  # fmt: skip
        started = p.times[3] + span * (i + 0.5)
        out.append((
            task_id, phase, attempt, "claude", rng.choice([None, "sonnet"]),
            str(uuid.UUID(int=rng.getrandbits(128))), None if running else (0 if ok else 1),
            ok, None if running else Decimal(f"{rng.uniform(0.05, 3):.6f}"),
            None if running else rng.randint(3, 80),
            None if running else round(rng.uniform(20, 900), 2),
            None if ok or running else "max_turns", "", "" if running else tail[-2000:], verify,
            started, None if running else started + span * 0.4,
        ))  # fmt: skip
    return out


def artifact_records(rng: random.Random, task_id: int, key: str,
                     at: datetime) -> list[tuple[Any, ...]]:  # fmt: skip
    commits = rng.randint(1, 3)
    patches = []
    for n in range(commits):
        body = "".join(f"+    value = request.form.get('value', '')  # line {i}\n"
                       for i in range(rng.randint(20, 300)))  # fmt: skip
        patch = (f"From {_hex(rng)} Mon Sep 17 00:00:00 2001\nFrom: DevServer Agent "
                 f"<agent@devserver.invalid>\nSubject: [PATCH {n + 1}/{commits}] {key}: fix\n\n"
                 f"---\n app/views.py | 3 ++-\n\ndiff --git a/app/views.py b/app/views.py\n"
                 f"--- a/app/views.py\n+++ b/app/views.py\n@@ -1,3 +1,300 @@\n{body}")  # fmt: skip
        patches.append((f"{n + 1:04d}-{key.lower()}-fix.patch", patch.encode()))
    files = [*patches, ("combined.mbox", b"".join(content for _, content in patches))]
    return [(task_id, "mbox" if name.endswith(".mbox") else "patch", name, content,
             hashlib.sha256(content).hexdigest(), len(content), at)
            for name, content in files]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Seeded:
    typical: tuple[str, int]  # key, events
    largest: tuple[str, int]
    live: tuple[str, int]  # the running task events are written to: key, id
    statuses: dict[str, int]
    runs: int
    artifacts: int
    seconds: dict[str, float]
    sizes: dict[str, str]


async def seed(pool: Pool, tasks: int, events: int, rng: random.Random) -> Seeded:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    now = datetime.now(UTC)
    pay = Payloads(rng)
    planned = plan_tasks(rng, tasks, events, now)
    tails = [pytest_tail(rng, rng.randint(1500, 3500)) for _ in range(30)]
    seconds["plan tasks"] = time.perf_counter() - started
    async with pool.acquire() as conn:
        repo_ids = [await conn.fetchval(
            "INSERT INTO repos (name, key_prefix, source, default_branch, test_command,"
            " lint_command, task_seq) VALUES ($1, $2, $3, 'main', 'pytest -q', 'ruff check .',"
            " $4) RETURNING id", name, prefix, f"/srv/git/{name}",
            sum(1 for p in planned if p.repo_index == i))
            for i, (name, prefix) in enumerate(REPOS)]  # fmt: skip
        mark = time.perf_counter()
        await conn.copy_records_to_table(
            "tasks", columns=TASK_COLUMNS,
            records=[task_record(rng, p, repo_ids[p.repo_index]) for p in planned])  # fmt: skip
        ids = {r["key"]: r["id"] for r in await conn.fetch("SELECT id, key FROM tasks")}
        seconds["tasks: COPY"] = time.perf_counter() - mark

        mark = time.perf_counter()
        rows: list[tuple[int, str, str, datetime]] = []
        for p in planned:
            task_id = ids[p.key]
            pairs = lifecycle(rng, pay, p)
            assert len(pairs) == p.events, (p.status, p.events, len(pairs))
            rows += [(task_id, kind, payload, at)
                     for (kind, payload), at in zip(pairs, p.times, strict=True)]  # fmt: skip
        rows.sort(key=itemgetter(3))  # ids in time order: tasks interleave, as in production
        seconds["events: generate"] = time.perf_counter() - mark
        mark = time.perf_counter()
        # The trigger NOTIFYs once per row, COPY included: off while loading history nobody
        # listens to. The app's INSERT also writes the notifications outbox; history needs none.
        await conn.execute("ALTER TABLE task_events DISABLE TRIGGER task_events_notify")
        try:
            await conn.copy_records_to_table("task_events", columns=EVENT_COLUMNS, records=rows)
        finally:
            await conn.execute("ALTER TABLE task_events ENABLE TRIGGER task_events_notify")
        seconds["events: COPY"] = time.perf_counter() - mark
        del rows

        mark = time.perf_counter()
        runs = [r for p in planned for r in run_records(rng, p, ids[p.key], tails)]
        await conn.copy_records_to_table("task_runs", columns=RUN_COLUMNS, records=runs)
        done = [p for p in planned if p.status is S.DONE]
        largest = max(planned, key=lambda p: p.events)
        average = events / tasks
        typical = min((p for p in done if p.events < 3 * average),
                      key=lambda p: (abs(p.events - average), p.key))  # fmt: skip
        with_files = {p.key for p in rng.sample(done, len(done) // 10)} | {largest.key,
                                                                          typical.key}  # fmt: skip
        files = [r for p in done if p.key in with_files
                 for r in artifact_records(rng, ids[p.key], p.key, p.times[-1])]  # fmt: skip
        await conn.copy_records_to_table("artifacts", columns=ARTIFACT_COLUMNS, records=files)
        await conn.execute(
            "INSERT INTO workers (id, hostname, pid, concurrency, running)"
            " VALUES ('bench:1:a1b2', 'bench', 4242, 2, 2)")  # fmt: skip
        seconds["runs + artifacts: COPY"] = time.perf_counter() - mark

        mark = time.perf_counter()
        for table in ("repos", "tasks", "task_events", "task_runs", "artifacts", "workers"):
            await conn.execute(f"VACUUM (ANALYZE) {table}")
        seconds["VACUUM (ANALYZE)"] = time.perf_counter() - mark
        sizes = {table: await conn.fetchval(
            "SELECT pg_size_pretty(pg_total_relation_size($1::regclass))", table)
            for table in ("tasks", "task_events", "task_runs", "artifacts")}  # fmt: skip
    seconds["total"] = time.perf_counter() - started
    running = next(p for p in planned if p.status is S.RUNNING)
    counts: dict[str, int] = {}
    for p in planned:
        counts[p.status.value] = counts.get(p.status.value, 0) + 1
    return Seeded((typical.key, typical.events), (largest.key, largest.events),
                  (running.key, ids[running.key]), counts, len(runs), len(files), seconds,
                  sizes)  # fmt: skip


# --- measuring -----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest rank."""
    rank = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


@dataclass(frozen=True, slots=True)
class Fetch:
    status: int
    first_ms: float  # request written -> first byte of the answer
    total_ms: float  # request written -> last byte of the body
    size: int


class HttpConnection:
    """HTTP/1.1 GETs on one keep-alive connection, over plain asyncio streams: the first
    read that returns any byte of the answer stops the first-byte clock."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> Fetch:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        request = (f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   "Accept: text/html\r\nUser-Agent: bench\r\n\r\n")  # fmt: skip
        started = time.perf_counter()
        writer.write(request.encode())
        data = bytearray(await reader.read(65536))
        first = time.perf_counter()
        while (end := data.find(b"\r\n\r\n")) < 0:
            more = await reader.read(65536)
            if not more:
                raise ConnectionError(f"closed before the headers of {path}")
            data += more
        lines = bytes(data[:end]).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}  # fmt: skip
        length = int(headers["content-length"])  # pages are plain web.Responses
        body = len(data) - end - 4
        if body < length:
            await reader.readexactly(length - body)
        return Fetch(int(lines[0].split()[1]), (first - started) * 1000,
                     (time.perf_counter() - started) * 1000, length)  # fmt: skip

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


@dataclass(frozen=True, slots=True)
class Page:
    label: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    match_info: dict[str, str]
    queries: Callable[[Pool], Awaitable[object]]  # what the handler asks the database


@dataclass(frozen=True, slots=True)
class PageResult:
    page: Page
    size: int
    first: list[float]
    total: list[float]


async def time_pages(host: str, port: int, pages: list[Page], requests: int) -> list[PageResult]:
    results = []
    for page in pages:
        connection = HttpConnection(host, port)
        try:
            for _ in range(WARMUP):
                warm = await connection.get(page.path)
                assert warm.status == 200, (page.path, warm.status)
            fetches = [await connection.get(page.path) for _ in range(requests)]
        finally:
            await connection.close()
        assert all(f.status == 200 for f in fetches), page.path
        results.append(PageResult(page, fetches[-1].size, sorted(f.first_ms for f in fetches),
                                  sorted(f.total_ms for f in fetches)))  # fmt: skip
    return results


# --- live: SSE clients ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SseMessage:
    event: str
    event_id: int | None
    at: float  # perf_counter when its last byte was read


class SseStream:
    """A raw HTTP/1.1 SSE client: reads chunks as they come, splits messages on blank lines."""

    def __init__(self, host: str, port: int, path: str,
                 on_message: Callable[[SseMessage], None] | None = None) -> None:  # fmt: skip
        self.host, self.port, self.path = host, port, path
        self.messages: list[SseMessage] = []
        self.opened = asyncio.Event()  # the server's first comment line arrived
        self._on_message = on_message
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                            "Accept: text/event-stream\r\n\r\n").encode())  # fmt: skip
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        assert head.split()[1] == "200", head
        chunked = "transfer-encoding: chunked" in head.lower()
        self._pump = asyncio.create_task(self._read(reader, chunked))

    async def _read(self, reader: asyncio.StreamReader, chunked: bool) -> None:
        text = ""
        while True:
            if chunked:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    return
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    return
            now = time.perf_counter()
            text += data.decode()
            while "\n\n" in text:
                block, text = text.split("\n\n", 1)
                self._message(block, now)

    def _message(self, block: str, now: float) -> None:
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            self.opened.set()  # ": open", ": connected", ": keepalive"
            return
        event, event_id = "message", None
        for line in lines:
            name, _, value = line.partition(":")
            if name == "event":
                event = value.strip()
            elif name == "id":
                event_id = int(value)
        message = SseMessage(event, event_id, now)
        self.messages.append(message)
        if self._on_message is not None:
            self._on_message(message)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._pump
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


@dataclass(frozen=True, slots=True)
class Written:
    event_id: int
    # perf_counter when add() was called. The commit happens before add() returns, and the
    # NOTIFY leaves at the commit, so a nudge can beat add()'s own answer to this process:
    # the clock starts at the call (an upper bound on commit -> page, by add()'s p50 ~2 ms).
    written: float
    insert_ms: float


LIVE_KINDS = [EventKind.AGENT_STARTED, EventKind.AGENT_FINISHED, EventKind.VERIFY_STARTED,
              EventKind.VERIFY_FAILED, EventKind.ERROR_CLASSIFIED, EventKind.RETRY_SCHEDULED,
              EventKind.REPO_MAP_BUILT, EventKind.MEMORY_RECALL, EventKind.REALITY_SIGNAL,
              EventKind.BUDGET_WARNING, EventKind.OPERATOR_ACTION]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Live:
    """A running status page, the pool events are written with, and the running task."""

    host: str
    port: int
    pool: Pool
    key: str
    task_id: int
    pay: Payloads
    rng: random.Random
    gap_ms: tuple[float, float]  # between two events written


async def write_events(live: Live, count: int) -> list[Written]:
    """`count` events, one by one through the storage API (event + outbox rows, autocommit),
    a random gap_ms apart."""
    repo, written = TaskEventRepo(live.pool), []
    for _ in range(count):
        kind = live.rng.choice(LIVE_KINDS)
        before = time.perf_counter()
        event = await repo.add(live.task_id, kind, live.pay.pick_dict(kind))
        after = time.perf_counter()
        written.append(Written(event.id, before, (after - before) * 1000))
        await asyncio.sleep(live.rng.uniform(*live.gap_ms) / 1000)
    return written


async def _until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.perf_counter() + seconds
    while not check():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@dataclass(frozen=True, slots=True)
class LiveResult:
    label: str
    clients: int
    events: int
    latencies: list[float]  # ms, one per event and client that got it, sorted
    lost: int
    insert_ms: list[float]


async def live_task_page(live: Live, clients: int, count: int) -> LiveResult:
    """`clients` streams of the running task's page; each event's `timeline` message is
    matched by its SSE id."""
    after = await live.pool.fetchval("SELECT max(id) FROM task_events WHERE task_id = $1",
                                     live.task_id)  # fmt: skip
    path = f"/tasks/{live.key}/live?after={after}"  # as task.html opens it
    streams = [SseStream(live.host, live.port, path) for _ in range(clients)]
    try:
        for stream in streams:
            await stream.open()
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 10)
        await asyncio.sleep(0.5)  # ": open" comes just before the subscription
        written = await write_events(live, count)
        wanted = {w.event_id for w in written}

        def arrived() -> bool:
            return all(wanted <= {m.event_id for m in s.messages} for s in streams)

        await _until(arrived, 10)
    finally:
        for stream in streams:
            await stream.close()
    latencies, lost = [], 0
    for stream in streams:
        seen = {m.event_id: m.at for m in reversed(stream.messages) if m.event == "timeline"}
        for w in written:
            if w.event_id in seen:
                latencies.append((seen[w.event_id] - w.written) * 1000)
            else:
                lost += 1
    return LiveResult(f"task page stream `/tasks/{live.key}/live`", clients, count,
                      sorted(latencies), lost, sorted(w.insert_ms for w in written))  # fmt: skip


async def live_dashboard(live: Live, clients: int, count: int) -> list[LiveResult]:
    """`clients` dashboards: each event is one notice, and each notice pushes every open
    dashboard its new body (rendered once, after the notice, and shared); the k-th
    `dashboard` message answers the k-th event."""
    streams = [SseStream(live.host, live.port, "/live", lambda _m: None) for _ in range(clients)]
    try:
        for stream in streams:
            await stream.open()
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 10)
        written = await write_events(live, count)

        def arrived() -> bool:
            return all(sum(m.event == "dashboard" for m in s.messages) >= count
                       for s in streams)  # fmt: skip

        await _until(arrived, 30)
    finally:
        for stream in streams:
            await stream.close()
    latencies, lost = [], 0
    for stream in streams:
        bodies = [m.at for m in stream.messages if m.event == "dashboard"]
        lost += max(0, count - len(bodies))
        latencies += [(at - w.written) * 1000 for w, at in zip(written, bodies, strict=False)]
    inserts = sorted(w.insert_ms for w in written)
    return [LiveResult("dashboard stream `/live`: the new body pushed", clients, count,
                       sorted(latencies), lost, inserts)]  # fmt: skip


# --- the server, as its own process --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def web_process(dsn: str) -> AsyncIterator[tuple[str, int]]:
    """`python -m devserver web` on a free port, as in production; stopped with SIGTERM."""
    host, port = "127.0.0.1", free_port()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as home:
        env = {k: v for k, v in os.environ.items() if k != "WEB_TOKEN"}
        env |= {"DATABASE_URL": dsn, "WEB_HOST": host, "WEB_PORT": str(port),
                "DEVSERVER_HOME": home, "DEVSERVER_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT)}  # fmt: skip
        log_path = Path(home) / "web.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "devserver", "web", cwd=home, env=env, stdout=log,
                stderr=log)  # fmt: skip
            try:
                connection = HttpConnection(host, port)
                deadline = time.perf_counter() + 60
                while True:
                    try:
                        if (await connection.get("/healthz")).status == 200:
                            break
                    except (OSError, KeyError, IndexError):
                        await connection.close()
                        connection = HttpConnection(host, port)
                    if process.returncode is not None or time.perf_counter() > deadline:
                        raise RuntimeError("web process did not start:\n"
                                           + log_path.read_text()[-3000:])  # fmt: skip
                    await asyncio.sleep(0.2)
                await connection.close()
                yield host, port
            finally:
                if process.returncode is None:
                    process.terminate()
                    try:
                        await asyncio.wait_for(process.wait(), 15)
                    except TimeoutError:
                        process.kill()
                        await process.wait()


# --- where the time goes: in-process handlers and queries, EXPLAIN -------------------------


async def handler_times(
    pool: Pool, pages: list[Page], repeat: int
) -> dict[str, tuple[float, float]]:
    """Per page: p50 ms of the handler (queries + rendering, no HTTP) and of its queries."""
    app = web.Application()
    app[pool_key] = pool
    app[env_key] = environment(jinja2.PackageLoader("web", "templates"))
    out = {}
    for page in pages:
        handler, queries = [], []
        for i in range(repeat + 3):
            request = make_mocked_request("GET", page.path, match_info=page.match_info, app=app)
            started = time.perf_counter()
            await page.handler(request)
            middle = time.perf_counter()
            await page.queries(pool)
            if i >= 3:  # warm-up
                handler.append((middle - started) * 1000)
                queries.append((time.perf_counter() - middle) * 1000)
        out[page.label] = (statistics.median(handler), statistics.median(queries))
    return out


async def explain(pool: Pool, sql: str, args: Sequence[object]) -> tuple[float, float, str]:
    """Execution ms of the custom plan and of the generic plan, and the custom plan's text."""
    async with pool.acquire() as conn:
        custom = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)]
        # EXECUTE takes no bind parameters: pass the values as literals the server quotes.
        types = [f"{t.schema}.{t.name}" for t in (await conn.prepare(sql)).get_parameters()]
        literals = [await conn.fetchval(f"SELECT quote_nullable($1::{name})", value)
                    for name, value in zip(types, args, strict=True)]  # fmt: skip
        values = ", ".join(f"{v}::{name}" for v, name in zip(literals, types, strict=True))
        await conn.execute("PREPARE bench_generic AS " + sql)
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            run = "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic"
            run += f"({values})" if values else ""
            generic = [r[0] for r in await conn.fetch(run)]
        finally:
            await conn.execute("DEALLOCATE bench_generic")
            await conn.execute("RESET plan_cache_mode")

    def execution(lines: list[str]) -> float:
        return float(next(line for line in lines if line.startswith("Execution Time")).split()[2])

    return execution(custom), execution(generic), "\n".join(custom)


def _midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


def queries_to_explain(seeded: Seeded, ids: dict[str, int],
                       deep_offset: int) -> list[tuple[str, str, list[object]]]:  # fmt: skip
    active = [s.value for s in ACTIVE]
    typical, largest = ids[seeded.typical[0]], ids[seeded.largest[0]]
    return [
        ("dashboard: running (TaskViews.running)", views_sql._RUNNING, [active]),
        ("dashboard: queue (TaskViews.queue)", views_sql._QUEUE, [50]),
        ("dashboard: counts (TaskRepo.counts)", tasks_sql._COUNTS, [active, _midnight()]),
        ("dashboard: per repo (TaskViews.per_repo)", views_sql._PER_REPO, [active, _midnight()]),
        ("dashboard: workers alive", workers_sql._ALIVE, [120.0]),
        ("tasks: page 1", views_sql._SEARCH, [None, None, None, None, 50, 0]),
        (f"tasks: status=done q={SEARCH_WORD}", views_sql._SEARCH,
         ["done", None, None, like(SEARCH_WORD), 50, 0]),
        (f"tasks: offset {deep_offset}", views_sql._SEARCH,
         [None, None, None, None, 50, deep_offset]),
        ("task: by key", tasks_sql._BY_KEY, [seeded.typical[0]]),
        (f"task: newest events, typical ({seeded.typical[1]})", events_sql._TAIL,
         [typical, views.TIMELINE_LIMIT, None]),
        (f"task: newest events, largest ({seeded.largest[1]})", events_sql._TAIL,
         [largest, views.TIMELINE_LIMIT, None]),
        ("task: older-event count, largest", events_sql._COUNT_BEFORE, [largest, 2**62]),
        ("task: runs", runs_sql._FOR_TASK, [largest]),
        ("task: artifacts", artifacts_sql._FOR_TASK, [largest]),
        ("live: events after the last one", events_sql._FOR_TASK, [largest, 10**12]),
    ]  # fmt: skip


# --- pages ---------------------------------------------------------------------------------


async def _tasks_queries(pool: Pool, status: str | None, text: str | None, page: int) -> None:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        v = TaskViews(conn)
        await v.search(status=TaskStatus(status) if status else None, text=text,
                       limit=views.PAGE_SIZE, offset=(page - 1) * views.PAGE_SIZE)  # fmt: skip
        await v.repo_names()


async def _task_queries(pool: Pool, key: str) -> None:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        task = await TaskRepo(conn).by_key(key)
        await RepoRepo(conn).by_id(task.repo_id)
        events = TaskEventRepo(conn)
        await events.tail(task.id, views.TIMELINE_LIMIT)
        await events.last_of(task.id, [EventKind.PREFLIGHT_PASSED, EventKind.PREFLIGHT_FAILED],
                             payload_kind="preflight")  # fmt: skip
        await events.last_of(task.id, [EventKind.REALITY_SIGNAL])
        await TaskRunRepo(conn).for_task(task.id)
        await ArtifactRepo(conn).for_task(task.id)


def make_pages(seeded: Seeded, deep_page: int) -> list[Page]:
    typical, largest = seeded.typical, seeded.largest
    return [
        Page("/", "/", views.dashboard, {}, views.dashboard_context),
        Page("/?partial=1", "/?partial=1", views.dashboard, {}, views.dashboard_context),
        Page("/tasks", "/tasks", views.tasks, {},
             lambda pool: _tasks_queries(pool, None, None, 1)),
        (Page(f"/tasks?status=done&q={SEARCH_WORD}", f"/tasks?status=done&q={SEARCH_WORD}",
              views.tasks, {}, lambda pool: _tasks_queries(pool, "done", SEARCH_WORD, 1))),
        Page(f"/tasks?page={deep_page}", f"/tasks?page={deep_page}", views.tasks, {},
             lambda pool: _tasks_queries(pool, None, None, deep_page)),
        Page(f"/tasks/{typical[0]} ({typical[1]} events)", f"/tasks/{typical[0]}",
             views.task_detail, {"key": typical[0]},
             lambda pool: _task_queries(pool, typical[0])),
        Page(f"/tasks/{largest[0]} ({largest[1]} events)", f"/tasks/{largest[0]}",
             views.task_detail, {"key": largest[0]},
             lambda pool: _task_queries(pool, largest[0])),
    ]  # fmt: skip


# --- report --------------------------------------------------------------------------------


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
            f"load average {load}")  # fmt: skip


def ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


@dataclass(frozen=True, slots=True)
class Plan:
    label: str
    custom_ms: float
    generic_ms: float
    text: str


@dataclass(frozen=True, slots=True)
class Options:
    tasks: int
    events: int
    requests: int
    live_events: int
    gap_ms: tuple[float, float]


async def run(dsn: str, o: Options) -> None:
    rng = random.Random(SEED)  # noqa: S311  # reproducible data, not secrets
    print(f"machine: {machine()}")
    pool = await create_pool(dsn, min_size=1, max_size=8)
    try:
        version = await pool.fetchval("SHOW server_version")
        settings = [f"{name}={await pool.fetchval(f'SHOW {name}')}"
                    for name in ("shared_buffers", "work_mem", "synchronous_commit")]  # fmt: skip
        print(f"postgres {version}: {', '.join(settings)}")
        print(f"seeding {o.tasks:,} tasks, {o.events:,} events ...")
        seeded = await seed(pool, o.tasks, o.events, rng)
        print("seeded: " + ", ".join(f"{k} {v:.1f}s" for k, v in seeded.seconds.items()))
        print(f"  statuses: {seeded.statuses}; runs {seeded.runs:,}; "
              f"artifacts {seeded.artifacts:,}; sizes {seeded.sizes}")  # fmt: skip
        print(f"  typical task {seeded.typical}, largest {seeded.largest}, live {seeded.live}")
        ids = {r["key"]: r["id"] for r in await pool.fetch(
            "SELECT id, key FROM tasks WHERE key = ANY($1::text[])",
            [seeded.typical[0], seeded.largest[0]])}  # fmt: skip
        deep_page = min(100, max(1, o.tasks // views.PAGE_SIZE // 2))
        pages = make_pages(seeded, deep_page)
        pay = Payloads(random.Random(SEED + 1))  # noqa: S311  # reproducible data

        async with web_process(dsn) as (host, port):
            print(f"web: python -m devserver web on {host}:{port} (its own process)")
            results = await time_pages(host, port, pages, o.requests)
            live = Live(host, port, pool, seeded.live[0], seeded.live[1], pay, rng, o.gap_ms)
            streams: list[LiveResult] = []
            for clients in (1, LIVE_CLIENTS):
                streams.append(await live_task_page(live, clients, o.live_events))
                streams += await live_dashboard(live, clients, o.live_events)
        inside = await handler_times(pool, pages, max(10, o.requests // 10))
        plans = [Plan(label, *await explain(pool, sql, args))
                 for label, sql, args in queries_to_explain(
                     seeded, ids, (deep_page - 1) * views.PAGE_SIZE)]  # fmt: skip
    finally:
        await pool.close()
    report(results, inside, streams, plans, o)


def report(results: list[PageResult], inside: dict[str, tuple[float, float]],
           streams: list[LiveResult], plans: list[Plan], o: Options) -> None:  # fmt: skip
    print(f"\n### Pages: {o.requests} requests each, after {WARMUP} warm-ups, one at a time"
          f" (target: first byte < {PAGE_TARGET_MS:.0f} ms)\n")  # fmt: skip
    print("| page | body KB | first byte p50 ms | p95 | max | whole body p50 | p95 "
          "| handler p50 | its queries p50 | met |")  # fmt: skip
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|")
    for r in results:
        handler, queries = inside[r.page.label]
        met = "yes" if percentile(r.first, 95) < PAGE_TARGET_MS else "**no**"
        print(f"| `{r.page.label}` | {r.size / 1024:.0f} | {ms(statistics.median(r.first))} "
              f"| {ms(percentile(r.first, 95))} | {ms(r.first[-1])} "
              f"| {ms(statistics.median(r.total))} | {ms(percentile(r.total, 95))} "
              f"| {ms(handler)} | {ms(queries)} | {met} |")  # fmt: skip
    print(f"\n### Live: write -> SSE message, {o.live_events} events one by one, "
          f"{o.gap_ms[0]:.0f}-{o.gap_ms[1]:.0f} ms apart "
          f"(target: < {EVENT_TARGET_MS:.0f} ms)\n")  # fmt: skip
    print("| stream | clients | deliveries | lost | p50 ms | p95 | p99 | max | met |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|:-:|")
    for result in streams:
        lat = result.latencies
        if not lat:
            print(f"| {result.label} | {result.clients} | 0 | {result.lost} | | | | | |")
            continue
        met = "yes" if percentile(lat, 99) < EVENT_TARGET_MS else "**no**"
        print(f"| {result.label} | {result.clients} | {len(lat):,} | {result.lost} "
              f"| {ms(statistics.median(lat))} | {ms(percentile(lat, 95))} "
              f"| {ms(percentile(lat, 99))} | {ms(lat[-1])} | {met} |")  # fmt: skip
    inserts = sorted(x for result in streams for x in result.insert_ms)
    p50, p95 = statistics.median(inserts), percentile(inserts, 95)
    print(f"\nThe clock starts when TaskEventRepo.add is called; add() itself (event + outbox"
          f" rows, commit): p50 {ms(p50)} ms, p95 {ms(p95)} ms")  # fmt: skip
    print("\n### Queries: EXPLAIN (ANALYZE, BUFFERS) execution time\n")
    print("| query | custom plan ms | generic plan ms |")
    print("|---|--:|--:|")
    for plan in plans:
        print(f"| {plan.label} | {plan.custom_ms:.2f} | {plan.generic_ms:.2f} |")
    for plan in sorted(plans, key=lambda p: -max(p.custom_ms, p.generic_ms))[:3]:
        print(f"\n{plan.label} (custom plan):\n{plan.text}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--live-events", type=int, default=500)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 tasks, 50,000 events, 50 requests, 100 live events",
    )
    parser.add_argument(
        "--gap-ms", default="10,50", help="MIN,MAX ms between two live events (default 10,50)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.events, args.requests, args.live_events = 1000, 50_000, 50, 100
    base = args.dsn or start_embedded(
        Path(tempfile.gettempdir()) / f"devserver-bench-pg-{os.getuid()}"
    )
    name = f"bench_web_{uuid.uuid4().hex[:8]}"
    await admin_execute(base, f'CREATE DATABASE "{name}"')
    dsn = with_db(base, name)
    try:
        await apply_all(dsn)
        low, high = (float(x) for x in args.gap_ms.split(","))
        await run(dsn, Options(args.tasks, args.events, args.requests, args.live_events,
                               (low, high)))  # fmt: skip
    finally:
        if args.keep:
            print(f"\nkept: {dsn}")
        else:
            await admin_execute(base, f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
