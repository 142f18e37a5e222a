"""The pages bench/web_status.py measures, their handlers and queries in-process, and the
queries' EXPLAIN ANALYZE (custom and generic plans)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import jinja2
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web_clients import Page
from web_seed import Seeded

from storage import artifacts as artifacts_sql
from storage import task_events as events_sql
from storage import task_runs as runs_sql
from storage import task_views as views_sql
from storage import tasks as tasks_sql
from storage import workers as workers_sql
from storage.artifacts import ArtifactRepo
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

SEARCH_WORD = "login"


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
