"""The pages: dashboard, tasks, a task, ideas, downloads, and /healthz. GET only.

Every query runs on the read-only pool (default_transaction_read_only), so the page cannot
change anything even by mistake. Pages render server-side; a little script makes them live
(web/stream.py), and without it they still work (a refresh link).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jinja2
from aiohttp import web

from storage.artifacts import ArtifactRepo
from storage.errors import NotFound
from storage.ideas import Idea, IdeaRepo
from storage.nights import NightRepo
from storage.repos import RepoRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.task_views import TaskViews
from storage.tasks import TaskRepo
from storage.worker_state import WorkerStateRepo
from storage.workers import WorkerRepo
from web import format as fmt
from web.keys import env_key, pool_key

PAGE_SIZE = 50
TIMELINE_LIMIT = 300  # events on a task page; older ones a page at a time, behind a link
HEARTBEAT_STALE_SECONDS = 120  # a worker not seen for this long counts as gone


def _render(request: web.Request, template: str, **context: Any) -> web.Response:
    env: jinja2.Environment = request.app[env_key]
    html = env.get_template(template).render(now=datetime.now(UTC), **context)
    return web.Response(text=html, content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-store"})  # fmt: skip


def _midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def dashboard_context(pool: asyncpg.Pool[asyncpg.Record]) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        views = TaskViews(conn)
        since = _midnight()
        return {
            "running": await views.running(),
            "queue": await views.queue(),
            "counts": await TaskRepo(conn).counts(since),
            "repos": await views.per_repo(since),
            "paused": await WorkerStateRepo(conn).paused(),
            "workers": await WorkerRepo(conn).alive(HEARTBEAT_STALE_SECONDS),
            "night": await NightRepo(conn).current(),
        }


async def dashboard_body(app: web.Application) -> str:
    """The dashboard's live part (_dashboard.html), as the page and the stream show it."""
    context = await dashboard_context(app[pool_key])
    return app[env_key].get_template("_dashboard.html").render(now=datetime.now(UTC), **context)


async def dashboard(request: web.Request) -> web.Response:
    context = await dashboard_context(request.app[pool_key])
    template = "_dashboard.html" if request.query.get("partial") else "dashboard.html"
    return _render(request, template, **context)


def _int(text: str | None, low: int, high: int) -> int | None:
    if text is None or not (text.strip().isascii() and text.strip().isdigit()):
        return None  # (isdigit alone takes "²", which int() refuses)
    value = int(text)
    return value if low <= value <= high else None


async def tasks(request: web.Request) -> web.Response:
    q = request.query
    status = q.get("status") or None
    if status is not None and status not in {s.value for s in TaskStatus}:
        raise web.HTTPBadRequest(text=f"unknown status {status[:40]!r}")
    page = _int(q.get("page"), 1, 100_000) or 1
    priority = _int(q.get("priority"), 1, 4)
    # PostgreSQL text cannot hold NUL: none can match, so none is looked for.
    text = (q.get("q") or "").replace("\x00", "").strip()[:200] or None
    repo = (q.get("repo") or "").replace("\x00", "").strip()[:64] or None
    async with request.app[pool_key].acquire() as conn, conn.transaction(readonly=True):
        views = TaskViews(conn)
        found = await views.search(status=TaskStatus(status) if status else None, repo=repo,
                                   priority=priority, text=text, limit=PAGE_SIZE,
                                   offset=(page - 1) * PAGE_SIZE)  # fmt: skip
        repos = await views.repo_names()
    pages = max(1, -(-found.total // PAGE_SIZE))
    filters = {"status": status or "", "repo": repo or "", "priority": priority or "",
               "q": text or ""}  # fmt: skip
    return _render(request, "tasks.html", found=found, page=page, pages=pages, repos=repos,
                   filters=filters, statuses=[s.value for s in TaskStatus])  # fmt: skip


async def task_detail(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    before = _int(request.query.get("before"), 1, 2**62)  # an older page of the timeline
    async with request.app[pool_key].acquire() as conn, conn.transaction(readonly=True):
        try:
            task = await TaskRepo(conn).by_key(key)
        except NotFound:
            raise web.HTTPNotFound(text=f"no task {key[:40]}") from None
        repo = await RepoRepo(conn).by_id(task.repo_id)
        events_repo = TaskEventRepo(conn)
        events, hidden = await events_repo.tail(task.id, TIMELINE_LIMIT, before=before)
        preflight = await events_repo.last_of(
            task.id, [EventKind.PREFLIGHT_PASSED, EventKind.PREFLIGHT_FAILED],
            payload_kind="preflight")  # fmt: skip
        reality = await events_repo.last_of(task.id, [EventKind.REALITY_SIGNAL])
        runs = await TaskRunRepo(conn).for_task(task.id)
        artifacts = await ArtifactRepo(conn).for_task(task.id)
    return _render(
        request, "task.html", task=task, repo=repo, events=events, hidden=hidden, older=before,
        runs=runs, artifacts=artifacts, budget=fmt.budget(task, repo),
        preflight=fmt.preflight([preflight] if preflight else []),
        reality=fmt.reality([reality] if reality else []), log_tail=fmt.log_tail(runs),
        last_event=events[-1].id if events else 0,
    )  # fmt: skip


async def download(request: web.Request) -> web.Response:
    """A patch or the combined mbox, as the file `git am` takes."""
    key, name = request.match_info["key"], request.match_info["name"]
    async with request.app[pool_key].acquire() as conn, conn.transaction(readonly=True):
        try:
            task = await TaskRepo(conn).by_key(key)
            content = await ArtifactRepo(conn).content(task.id, name)
        except NotFound:
            raise web.HTTPNotFound(text="no such file") from None
    if name.endswith(".mbox"):
        filename, kind = f"{task.key}.mbox", "application/mbox"
    elif name.endswith(".patch"):
        filename, kind = name, "text/x-patch"
    else:
        filename, kind = name, "application/octet-stream"
    return web.Response(body=content, content_type=kind, headers={
        "Content-Disposition": f'attachment; filename="{_safe_filename(filename)}"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})  # fmt: skip


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120] or "download"


class IdeaNode:
    def __init__(self, idea: Idea) -> None:
        self.idea = idea
        self.children: list[IdeaNode] = []


def idea_tree(ideas: list[Idea]) -> list[IdeaNode]:
    """Roots first, each with its children in the order given (folders first)."""
    nodes = {i.id: IdeaNode(i) for i in ideas}
    roots: list[IdeaNode] = []
    for node in nodes.values():
        parent = nodes.get(node.idea.parent_id) if node.idea.parent_id is not None else None
        (parent.children if parent is not None else roots).append(node)
    return roots


async def ideas(request: web.Request) -> web.Response:
    async with request.app[pool_key].acquire() as conn, conn.transaction(readonly=True):
        found = await IdeaRepo(conn).all()
    return _render(request, "ideas.html", roots=idea_tree(found), count=len(found))


async def healthz(request: web.Request) -> web.Response:
    """For monitors: 200 when the database answers; the workers' heartbeat age is reported
    (null when no worker has beaten), and `workers_alive` says whether one is recent."""
    pool = request.app[pool_key]
    try:
        async with asyncio.timeout(2):
            latest = await WorkerRepo(pool).latest_seen()
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return web.json_response({"ok": False, "database": "unreachable"}, status=503)
    age = None if latest is None else round((datetime.now(UTC) - latest).total_seconds(), 1)
    alive = age is not None and age < HEARTBEAT_STALE_SECONDS
    return web.json_response({"ok": True, "database": "ok", "worker_heartbeat_age_s": age,
                              "workers_alive": alive})  # fmt: skip
