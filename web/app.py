"""The read-only status page. For now: /healthz; the pages arrive with the web issue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TypeAlias

import asyncpg
from aiohttp import web

from storage.db import create_pool
from web.settings import WebSettings

log = logging.getLogger(__name__)

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
pool_key = web.AppKey("pool", asyncpg.Pool)


async def healthz(request: web.Request) -> web.Response:
    pool: Pool = request.app[pool_key]
    try:
        async with asyncio.timeout(2):
            await pool.fetchval("SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return web.json_response({"ok": False, "database": "unreachable"}, status=503)
    return web.json_response({"ok": True, "database": "ok"})


def create_app(dsn: str) -> web.Application:
    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        app[pool_key] = await create_pool(dsn, read_only=True, min_size=1, max_size=4)
        yield
        await app[pool_key].close()

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/healthz", healthz)
    return app


async def run_web(dsn: str, settings: WebSettings, stop: asyncio.Event) -> None:
    runner = web.AppRunner(create_app(dsn), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("web listening", extra={"host": settings.host, "port": settings.port})
        await stop.wait()
    finally:
        await runner.cleanup()
