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
  on the dashboard's (which pushes the dashboard's new body), with 1 and with 20 clients
  open;
- the same pages' handlers in this process (no HTTP), and their queries alone;
- EXPLAIN ANALYZE of the pages' queries (custom plan, and the generic plan a prepared
  statement may switch to after five runs).

The parts: web_data.py (texts, payloads), web_plan.py (each task's events), web_seed.py
(COPY), web_clients.py (HTTP and SSE clients), web_pages.py (pages, handlers, EXPLAIN).

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
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web_clients import (
    WARMUP,
    HttpConnection,
    Live,
    LiveResult,
    PageResult,
    live_dashboard,
    live_task_page,
    percentile,
    time_pages,
)
from web_data import Payloads
from web_pages import explain, handler_times, make_pages, queries_to_explain
from web_seed import seed

from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from storage.migrate import apply_all
from web import views

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Payload: TypeAlias = dict[str, Any]

PAGE_TARGET_MS = 100.0
EVENT_TARGET_MS = 200.0
SEED = 20261126
LIVE_CLIENTS = 20


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
