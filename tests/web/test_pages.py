"""The status page's handlers over real HTTP (pytest-aiohttp) and a real database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from pytest_aiohttp import AiohttpClient

from storage.nights import NightRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.worker_state import WorkerStateRepo
from storage.workers import WorkerRepo
from tests.web.seed import HOSTILE, MBOX, PATCH, Pool, World, add_task, seed
from web.app import create_app
from web.keys import pool_key
from web.settings import WebSettings
from web.views import TIMELINE_LIMIT


@pytest.fixture
async def world(pool: Pool) -> World:
    return await seed(pool)


def _text(html: str) -> str:
    """The page's text, tags dropped and whitespace squeezed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_dashboard_shows_running_queue_in_worker_order_today_and_repos(
    aiohttp_client: AiohttpClient, db_dsn: str, pool: Pool, world: World
) -> None:
    await WorkerRepo(pool).beat("host-1:42:ab", hostname="host-1", pid=42, concurrency=2,
                                running=1)  # fmt: skip
    client = await aiohttp_client(create_app(db_dsn))
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    html = await response.text()
    text = _text(html)
    assert "SHOP-1 Speed up the cart" in text
    assert "agent attempt 2 started (claude)" in text  # the current step
    queue = text[text.index("Queue") : text.index("Repositories")]
    assert queue.index("Critical fix") < queue.index("Low priority chore")  # P1 before P4
    assert "1 done today" in text
    assert "1 blocked today" in text
    assert "$0.42 cost today" in text
    assert "Taking tasks." in text
    assert "host-1 (1/2 running" in text
    assert re.search(r"shop 1 1 1 0 0 3", text)  # queued, running, done, failed, blocked, all
    assert "<script>alert" not in html

    assert "Night cycle off." in text
    await WorkerStateRepo(pool).set_paused(True)
    ends = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=6, minute=30, second=0, microsecond=0
    )
    await NightRepo(pool).start(chat_id=None, thread_id=None, by="Alice (1)", ends_at=ends)
    partial = await (await client.get("/?partial=1")).text()
    assert partial.lstrip().startswith('<div id="dashboard">')
    assert "Paused" in partial
    assert f"Night cycle on until {ends:%Y-%m-%d} 06:30:00 UTC, started by Alice (1)." in _text(
        partial
    )


async def test_tasks_filter_search_and_page(
    aiohttp_client: AiohttpClient, db_dsn: str, pool: Pool, world: World
) -> None:
    for n in range(55):
        await add_task(pool, world.api, f"Chore number {n}")
    client = await aiohttp_client(create_app(db_dsn))
    first = _text(await (await client.get("/tasks")).text())
    assert "60 task(s), page 1 of 2" in first
    assert "API-57 Chore number 54" in first  # newest first
    second = _text(await (await client.get("/tasks?page=2")).text())
    assert "API-1 Low priority chore" in second
    done = _text(await (await client.get("/tasks?status=done")).text())
    assert "1 task(s)" in done
    assert world.done.key in done
    by_repo = _text(await (await client.get("/tasks?repo=shop&priority=1")).text())
    assert "1 task(s)" in by_repo
    assert "Critical fix" in by_repo
    by_key = _text(await (await client.get(f"/tasks?q={world.done.key.lower()}")).text())
    assert "1 task(s)" in by_key
    assert world.done.key in by_key
    wild = _text(await (await client.get("/tasks?q=%25")).text())
    assert "0 task(s)" in wild  # % is a character to find, not a wildcard
    assert (await client.get("/tasks?status=nonsense")).status == 400


async def test_task_page_shows_everything_about_a_task(
    aiohttp_client: AiohttpClient, db_dsn: str, world: World
) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    html = await (await client.get(f"/tasks/{world.done.key}")).text()
    text = _text(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE not in html
    assert "passed: 1 commit(s), 1 file(s)" in text  # preflight verdict
    assert "81/100" in text
    assert "repo_map: 0.90 — 2 of 2 names found" in text
    assert "memory: unavailable (timeout)" in text
    assert "cost $0.42 of $4.00" in text  # the repo's limit applies
    assert "1 attempt claude sonnet ok , checks passed 7 $0.42 1m 01s" in text
    assert "agent says: all done" in text  # log tail
    assert f'href="/tasks/{world.done.key}/files/combined.mbox"' in html
    assert "status running → delivering" in text  # the timeline, in order
    assert text.index("task_created") < text.index("task_done")
    blocked = _text(await (await client.get(f"/tasks/{world.blocked.key}")).text())
    assert "deploy.py:2 (secret): github-classic-token: ghp_…(40 chars)…2aQ9" in blocked
    assert (await client.get("/tasks/NOPE-1")).status == 404
    assert (await client.get("/tasks/..%2Fetc")).status == 404


async def test_downloads_have_the_right_type_name_and_bytes(
    aiohttp_client: AiohttpClient, db_dsn: str, world: World
) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    mbox = await client.get(f"/tasks/{world.done.key}/files/combined.mbox")
    assert mbox.status == 200
    assert mbox.headers["Content-Type"] == "application/mbox"
    assert mbox.headers["Content-Disposition"] == f'attachment; filename="{world.done.key}.mbox"'
    assert await mbox.read() == MBOX
    patch = await client.get(f"/tasks/{world.done.key}/files/0001-Add.patch")
    assert patch.headers["Content-Type"].startswith("text/x-patch")
    assert patch.headers["Content-Disposition"] == 'attachment; filename="0001-Add.patch"'
    assert await patch.read() == PATCH
    assert (await client.get(f"/tasks/{world.done.key}/files/missing.patch")).status == 404
    assert (await client.get(f"/tasks/{world.running.key}/files/combined.mbox")).status == 404


async def test_only_get_and_head_exist(
    aiohttp_client: AiohttpClient, db_dsn: str, world: World
) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    paths = ["/", "/tasks", f"/tasks/{world.done.key}", f"/tasks/{world.done.key}/live",
             f"/tasks/{world.done.key}/files/combined.mbox", "/ideas", "/healthz",
             "/live"]  # fmt: skip
    for path in paths:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = await client.request(method, path)
            assert response.status == 405, (method, path)


async def test_the_pages_pool_cannot_write(
    aiohttp_client: AiohttpClient, db_dsn: str, world: World
) -> None:
    app = create_app(db_dsn)
    await aiohttp_client(app)
    with pytest.raises(Exception, match="read-only transaction"):
        await app[pool_key].execute("UPDATE tasks SET title = 'x'")


async def test_the_token_wall_guards_every_route(
    aiohttp_client: AiohttpClient, db_dsn: str, world: World
) -> None:
    token = "web-secret-token-123"  # noqa: S105  # test value
    client = await aiohttp_client(create_app(db_dsn, WebSettings(token=token)))
    key = world.done.key
    for path in ("/", "/tasks", f"/tasks/{key}", f"/tasks/{key}/live", "/live", "/ideas",
                 f"/tasks/{key}/files/combined.mbox", "/healthz"):  # fmt: skip
        response = await client.get(path)
        assert response.status == 401, path
        assert "Token needed" in await response.text()
        wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
    bearer = await client.get("/healthz", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status == 200
    first = await client.get(f"/?token={token}")
    assert first.status == 200
    assert token not in await first.text()
    cookie = first.cookies["devserver_token"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    download = await client.get(f"/tasks/{key}/files/combined.mbox")  # the cookie carries it
    assert download.status == 200


async def test_a_long_timeline_shows_the_newest_events_and_links_to_all(
    aiohttp_client: AiohttpClient, db_dsn: str, pool: Pool, world: World
) -> None:
    events = TaskEventRepo(pool)
    before = len(await events.for_task(world.done.id))
    for n in range(TIMELINE_LIMIT + 40 - before):
        await events.add(world.done.id, EventKind.RETRY_SCHEDULED, {"attempt": n})
    client = await aiohttp_client(create_app(db_dsn))
    html = await (await client.get(f"/tasks/{world.done.key}")).text()
    assert html.count("<li data-event=") == TIMELINE_LIMIT
    assert "40 earlier event(s): show the 40 before these" in _text(html)
    assert "81/100" in _text(html)  # the reality signal, long out of the shown events
    assert "passed: 1 commit(s), 1 file(s)" in _text(html)
    first_shown = int(re.findall(r'<li data-event="(\d+)"', html)[0])
    older = await (await client.get(f"/tasks/{world.done.key}?before={first_shown}")).text()
    assert older.count("<li data-event=") == 40
    assert "task_created" in older
    assert "Back to the newest" in _text(older)
    assert "EventSource" not in older  # an older page is not live


@pytest.mark.parametrize(
    "path",
    ["/tasks?q=%00", "/tasks?repo=%00", "/tasks?page=%C2%B2", "/tasks?priority=%C2%B2",
     "/tasks?page=99999999999999999999999"],
)  # fmt: skip
async def test_odd_query_values_are_ignored_not_errors(
    aiohttp_client: AiohttpClient, db_dsn: str, world: World, path: str
) -> None:
    client = await aiohttp_client(create_app(db_dsn))
    response = await client.get(path)
    assert response.status == 200
    task_page = await client.get(f"/tasks/{world.done.key}?before=%C2%B2")
    assert task_page.status == 200
