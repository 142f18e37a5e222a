"""Server-Sent Events: a task's timeline as it grows, and a nudge for the dashboard.

A stream subscribes to the process's EventHub (web/live.py) before it reads the database,
so an event written in between is never missed: it is read by id (`after`, or the
browser's Last-Event-ID on reconnect), rendered with the same template as the page, and
sent. A comment line every KEEPALIVE seconds keeps proxies from closing an idle stream and
finds closed clients.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import jinja2
from aiohttp import web

from storage.errors import NotFound
from storage.task_events import TaskEventRepo
from storage.task_status import TERMINAL
from storage.tasks import TaskRepo
from web import format as fmt
from web import views
from web.keys import env_key, hub_key, pool_key, render_key
from web.live import Notice, Subscription

KEEPALIVE = 15.0
_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"}  # fmt: skip


def sse(event: str, data: str, event_id: int | None = None) -> bytes:
    """One SSE message; every line of `data` gets its own `data:` field."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


async def task_stream(request: web.Request) -> web.StreamResponse:
    key = request.match_info["key"]
    pool = request.app[pool_key]
    try:
        task = await TaskRepo(pool).by_key(key)
    except NotFound:
        raise web.HTTPNotFound(text=f"no task {key[:40]}") from None
    given = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    # ASCII digits within bigint only ("²" passes isdigit; a huge id would fail the query).
    after = int(given) if given.isascii() and given.isdigit() and len(given) < 19 else 0
    env: jinja2.Environment = request.app[env_key]
    item = env.get_template("_event.html")
    response = web.StreamResponse(headers=_HEADERS)
    await response.prepare(request)
    await response.write(b": open\n\n")  # aiohttp sends the headers with the first write

    async def send_new(_notice: Notice | None = None) -> None:
        nonlocal after
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            events = await TaskEventRepo(conn).for_task(task.id, after=after)
            current = await TaskRepo(conn).by_id(task.id) if events else None
        for event in events:
            await response.write(sse("timeline", item.render(event=event), event.id))
            after = event.id
        if current is not None:
            status = {"status": current.status.value, "icon": fmt.icon(current.status),
                      "reason": current.status_reason,
                      "ended": current.status in TERMINAL}  # fmt: skip
            await response.write(sse("status", json.dumps(status)))

    async with request.app[hub_key].subscribe(task.id) as sub:
        await send_new()  # what happened before we subscribed
        await _follow(response, sub, send_new)
    return response


async def dashboard_stream(request: web.Request) -> web.StreamResponse:
    """The dashboard's new body (`dashboard`) whenever any task or switch changes."""
    response = web.StreamResponse(headers=_HEADERS)
    await response.prepare(request)
    shared = request.app[render_key]

    async def push(notice: Notice) -> None:
        body = await shared.since(notice.at, lambda: views.dashboard_body(request.app))
        await response.write(sse("dashboard", body))

    async with request.app[hub_key].subscribe() as sub:
        await response.write(b": connected\n\n")
        await _follow(response, sub, push)
    return response


async def _follow(
    response: web.StreamResponse,
    sub: Subscription,
    on_notice: Callable[[Notice], Awaitable[None]],
) -> None:
    """Call `on_notice` for each notice until the client goes or the hub drops us."""
    try:
        while True:
            try:
                notice = await asyncio.wait_for(sub.next(), KEEPALIVE)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if notice is None:
                return
            await on_notice(notice)
    except (ConnectionResetError, ConnectionError):
        return  # the page was closed
