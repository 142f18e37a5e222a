"""Seeding for bench/web_status.py: the planned tasks, their events, runs and artifacts
loaded with COPY (the per-row NOTIFY trigger off meanwhile), then VACUUM ANALYZE."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web_data import REPOS, Payloads, S, hex_digits, pytest_tail
from web_plan import Planned, lifecycle, plan_tasks

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Payload: TypeAlias = dict[str, Any]

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
        None, branch, hex_digits(rng) if ran else None, hex_digits(rng) if ran else None,
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
        patch = (f"From {hex_digits(rng)} Mon Sep 17 00:00:00 2001\nFrom: DevServer Agent "
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
