"""The read-only status page: wiring. Routes are GET only; queries run on a read-only pool;
one LISTEN connection per process feeds every live page (web/live.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware

from storage.db import create_pool
from web import stream, views
from web.auth import token_wall
from web.format import environment
from web.keys import env_key, hub_key, pool_key, render_key
from web.live import EventHub, SharedRender
from web.settings import WebSettings

log = logging.getLogger(__name__)


def create_app(dsn: str, settings: WebSettings | None = None) -> web.Application:
    settings = settings or WebSettings()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        app[pool_key] = await create_pool(dsn, read_only=True, min_size=1, max_size=8)
        hub = app[hub_key] = EventHub(dsn)
        await hub.start()
        yield
        await hub.stop()
        await app[pool_key].close()

    async def close_streams(app: web.Application) -> None:
        await app[hub_key].stop()  # open SSE responses end, so shutdown need not wait

    middlewares: list[Middleware] = []
    if settings.token is not None:
        middlewares.append(token_wall(settings.token.get_secret_value()))
    app = web.Application(middlewares=middlewares)
    app[env_key] = environment(jinja2.PackageLoader("web", "templates"))
    app[render_key] = SharedRender()
    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(close_streams)
    app.router.add_get("/", views.dashboard)
    app.router.add_get("/live", stream.dashboard_stream)
    app.router.add_get("/tasks", views.tasks)
    app.router.add_get(r"/tasks/{key:[A-Z][A-Z0-9]*-[0-9]+}", views.task_detail)
    app.router.add_get(r"/tasks/{key:[A-Z][A-Z0-9]*-[0-9]+}/live", stream.task_stream)
    app.router.add_get(r"/tasks/{key:[A-Z][A-Z0-9]*-[0-9]+}/files/{name:[A-Za-z0-9._-]+}",
                       views.download)  # fmt: skip
    app.router.add_get("/ideas", views.ideas)
    app.router.add_get("/healthz", views.healthz)
    return app


async def run_web(dsn: str, settings: WebSettings, stop: asyncio.Event) -> None:
    runner = web.AppRunner(create_app(dsn, settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("web listening", extra={"host": settings.host, "port": settings.port})
        await stop.wait()
    finally:
        await runner.cleanup()
