from __future__ import annotations

from pytest_aiohttp import AiohttpClient

from web.app import create_app


async def test_healthz_reports_database_ok(aiohttp_client: AiohttpClient, db_dsn: str) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"ok": True, "database": "ok"}


async def test_only_get_routes(aiohttp_client: AiohttpClient, db_dsn: str) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    response = await client.post("/healthz")
    assert response.status == 405
