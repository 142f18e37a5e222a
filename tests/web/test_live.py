"""Live updates over Server-Sent Events, at the HTTP level: catch-up by id, new events as
they are written, the dashboard's nudge, and the listener surviving a lost connection."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from storage.task_events import EventKind, TaskEventRepo
from tests.web.seed import Pool, World, add_task, seed
from web import views
from web.app import create_app
from web.keys import hub_key
from web.live import APP_NAME


@pytest.fixture
async def world(pool: Pool) -> World:
    return await seed(pool)


async def _messages(response: aiohttp.ClientResponse, want: int) -> list[dict[str, str]]:
    """Read SSE messages (comments skipped) until `want` of them arrived."""
    found: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with asyncio.timeout(10):
        while len(found) < want:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    found.append(current)
                current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = current[field] + "\n" + value if field in current else value
    return found


async def test_a_task_stream_catches_up_then_follows_new_events(
    aiohttp_client: AiohttpClient, db_dsn: str, pool: Pool, world: World
) -> None:
    app = create_app(db_dsn)
    client = await aiohttp_client(app)
    await asyncio.wait_for(app[hub_key].connected.wait(), 5)
    events = await TaskEventRepo(pool).for_task(world.running.id)
    last = events[-1].id
    response = await client.get(f"/tasks/{world.running.key}/live",
                                headers={"Last-Event-ID": str(events[-2].id)})  # fmt: skip
    assert response.headers["Content-Type"] == "text/event-stream"
    caught_up = await _messages(response, 2)
    assert [m["event"] for m in caught_up] == ["timeline", "status"]
    assert caught_up[0]["id"] == str(last)  # only what the page had not seen
    assert "agent attempt 2 started" in caught_up[0]["data"]
    assert '"status": "running"' in caught_up[1]["data"]

    await TaskEventRepo(pool).add(world.running.id, EventKind.VERIFY_STARTED,
                                  {"attempt": 2, "steps": ["test <x>"]})  # fmt: skip
    await TaskEventRepo(pool).add(world.done.id, EventKind.MEMORY_WRITTEN, {})  # another task
    new = await _messages(response, 2)
    assert new[0]["event"] == "timeline"
    assert "checking: test &lt;x&gt;" in new[0]["data"]  # rendered and escaped like the page
    assert int(new[0]["id"]) > last
    response.close()


async def test_dashboards_get_one_shared_render_per_change(
    aiohttp_client: AiohttpClient, db_dsn: str, pool: Pool, world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    app = create_app(db_dsn)
    client = await aiohttp_client(app)
    await asyncio.wait_for(app[hub_key].connected.wait(), 5)
    renders = 0
    original = views.dashboard_body

    async def counted(application: web.Application) -> str:
        nonlocal renders
        renders += 1
        return await original(application)

    monkeypatch.setattr(views, "dashboard_body", counted)  # count the renders
    streams = [await client.get("/live") for _ in range(5)]
    await add_task(pool, world.api, "Seen by five dashboards")
    for response in streams:  # each dashboard gets the body with the new task
        while True:
            [pushed] = await _messages(response, 1)
            assert pushed["event"] == "dashboard"
            assert pushed["data"].startswith('<div id="dashboard">')
            if "Seen by five dashboards" in pushed["data"]:
                break
        response.close()
    # three events (created, status, queued) seen by five dashboards: without sharing, 15
    assert 1 <= renders <= 3


async def test_the_listener_reconnects_and_pages_catch_up(
    aiohttp_client: AiohttpClient, db_dsn: str, pool: Pool, world: World
) -> None:
    app = create_app(db_dsn)
    client = await aiohttp_client(app)
    hub = app[hub_key]
    await asyncio.wait_for(hub.connected.wait(), 5)
    events = TaskEventRepo(pool)
    last = (await events.for_task(world.running.id))[-1].id
    response = await client.get(f"/tasks/{world.running.key}/live?after={last}")
    killed = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = $1 AND datname = current_database()", APP_NAME)  # fmt: skip
    assert killed == 1
    await events.add(world.running.id, EventKind.RETRY_SCHEDULED, {"attempt": 3})  # unheard
    async with asyncio.timeout(10):
        while hub.connects < 2:  # noqa: ASYNC110  # a counter, polled: no event to await
            await asyncio.sleep(0.05)
    missed = await _messages(response, 1)  # caught up after the reconnect
    assert "retrying: attempt 3" in missed[0]["data"]
    await events.add(world.running.id, EventKind.RETRY_SCHEDULED, {"attempt": 4})
    heard = [m for m in await _messages(response, 2) if m["event"] == "timeline"]
    assert "retrying: attempt 4" in heard[-1]["data"]
    response.close()
