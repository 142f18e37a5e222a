"""Generated data for bench/web_status.py: task texts, event payloads like the real
ones, and each task's planned status and event sequence (seeded, reproducible)."""

from __future__ import annotations

import json
import random
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.task_events import EventKind
from storage.task_status import TaskStatus

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Payload: TypeAlias = dict[str, Any]

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


def hex_digits(rng: random.Random, n: int = 40) -> str:
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
            return {"branch": branch, "base_commit": hex_digits(rng), "resumed": rng.random() < 0.2}
        if kind is k.REPO_MAP_BUILT:
            return {"ok": True, "tree_id": hex_digits(rng), "cached": rng.random() < 0.6,
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
            return {"branch": branch, "commit": hex_digits(rng)}
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
