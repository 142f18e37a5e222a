from __future__ import annotations

from pytest_aiohttp import AiohttpClient

from storage.db import create_pool
from storage.workers import WorkerRepo
from web.app import create_app


async def test_healthz_reports_database_ok(aiohttp_client: AiohttpClient, db_dsn: str) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"ok": True, "database": "ok", "worker_heartbeat_age_s": None,
                                     "workers_alive": False}  # fmt: skip


async def test_only_get_routes(aiohttp_client: AiohttpClient, db_dsn: str) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    response = await client.post("/healthz")
    assert response.status == 405


async def test_healthz_reports_the_newest_worker_heartbeat(
    aiohttp_client: AiohttpClient, db_dsn: str
) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    app_pool = await create_pool(db_dsn)
    try:
        await WorkerRepo(app_pool).beat("h:1:aa", hostname="h", pid=1, concurrency=2, running=0)
    finally:
        await app_pool.close()
    body = await (await client.get("/healthz")).json()
    assert body["workers_alive"] is True
    assert 0 <= body["worker_heartbeat_age_s"] < 60
