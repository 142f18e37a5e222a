"""The status page in a real headless Chromium: live events, downloads, the token wall."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from pytest_aiohttp import AiohttpServer

from storage.task_events import EventKind, TaskEventRepo
from tests.browser import download, open_page
from tests.web.seed import MBOX, PATCH, Pool, World, add_task, seed
from web.app import create_app
from web.keys import hub_key
from web.settings import WebSettings


@pytest.fixture
async def world(pool: Pool) -> World:
    return await seed(pool)


async def _live_page(
    aiohttp_server: AiohttpServer, context: BrowserContext, dsn: str, path: str
) -> Page:
    """The page at `path` of a running app, once its live stream is connected."""
    app = create_app(dsn)
    server = await aiohttp_server(app)
    await asyncio.wait_for(app[hub_key].connected.wait(), 5)
    page = await open_page(context, str(server.make_url(path)))
    await expect(page.locator("#live")).to_have_attribute("data-live", "connected")
    return page


async def test_an_event_written_to_the_database_appears_on_the_open_task_page(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext, db_dsn: str, pool: Pool,
    world: World,
) -> None:  # fmt: skip
    page = await _live_page(aiohttp_server, browser_context, db_dsn,
                            f"/tasks/{world.running.key}")  # fmt: skip
    await expect(page.locator("#status-value")).to_have_text("running")

    await TaskEventRepo(pool).add(world.running.id, EventKind.VERIFY_STARTED,
                                  {"attempt": 2, "steps": ["test", "<lint>"]})  # fmt: skip
    item = page.locator("#timeline li").last
    await expect(item).to_contain_text("checking: test, <lint>")  # shown as text, not markup
    await expect(page.locator("#timeline li")).to_have_count(
        len(await TaskEventRepo(pool).for_task(world.running.id))
    )


async def test_the_dashboard_follows_the_queue_live(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext, db_dsn: str, pool: Pool,
    world: World,
) -> None:  # fmt: skip
    page = await _live_page(aiohttp_server, browser_context, db_dsn, "/")
    await add_task(pool, world.api, "A brand new task from the chat", priority=2)
    await expect(page.get_by_text("A brand new task from the chat")).to_be_visible()


async def test_clicking_a_patch_downloads_its_bytes(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext, db_dsn: str, world: World
) -> None:
    server = await aiohttp_server(create_app(db_dsn))
    page = await open_page(browser_context, str(server.make_url(f"/tasks/{world.done.key}")))
    mbox = await download(page, page.get_by_role("link", name="combined.mbox"))
    assert (mbox.filename, mbox.data) == (f"{world.done.key}.mbox", MBOX)
    patch = await download(page, page.get_by_role("link", name="0001-Add.patch"))
    assert (patch.filename, patch.data) == ("0001-Add.patch", PATCH)


async def test_the_token_wall_in_the_browser(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext, db_dsn: str, world: World
) -> None:
    token = "browser-token-456"  # noqa: S105  # test value
    app = create_app(db_dsn, WebSettings(token=token))
    server = await aiohttp_server(app)
    page = await open_page(browser_context, str(server.make_url("/")), status=401)
    await expect(page.get_by_role("heading", name="Token needed")).to_be_visible()
    page = await open_page(browser_context, str(server.make_url(f"/?token={token}")))
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await expect(page.locator("#live")).to_have_attribute("data-live", "connected")  # SSE too
    task = await open_page(browser_context, str(server.make_url(f"/tasks/{world.done.key}")))
    mbox = await download(task, task.get_by_role("link", name="combined.mbox"))
    assert mbox.data == MBOX  # the cookie opens downloads too


async def test_without_javascript_the_pages_still_work(
    aiohttp_server: AiohttpServer, browser: Browser, db_dsn: str, pool: Pool, world: World
) -> None:
    server = await aiohttp_server(create_app(db_dsn))
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await open_page(context, str(server.make_url(f"/tasks/{world.done.key}")))
        await expect(page.get_by_role("link", name="Refresh")).to_be_visible()
        await expect(page.locator("#timeline li").first).to_contain_text("task_created")
        listing = await open_page(context, str(server.make_url("/tasks?repo=api")))
        await listing.get_by_label("search").fill("deploy")
        await listing.get_by_role("button", name="Show").click()  # a plain GET form
        await expect(listing.get_by_text("1 task(s)")).to_be_visible()
        await expect(listing.get_by_role("link", name=world.blocked.key)).to_be_visible()
    finally:
        await context.close()


async def test_the_ideas_tree_links_to_its_tasks(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext, db_dsn: str, pool: Pool,
    world: World,
) -> None:  # fmt: skip
    folder = await pool.fetchval(
        "INSERT INTO ideas (is_folder, title) VALUES (true, 'Backlog <2027>') RETURNING id"
    )
    await pool.execute(
        "INSERT INTO ideas (parent_id, title, body, task_id) VALUES ($1, $2, $3, $4)",
        folder, "Footer idea", "Body with <b>markup</b>", world.done.id,
    )  # fmt: skip
    server = await aiohttp_server(create_app(db_dsn))
    page = await open_page(browser_context, str(server.make_url("/ideas")))
    await expect(page.get_by_text("Backlog <2027>")).to_be_visible()
    await expect(page.get_by_text("Body with <b>markup</b>")).to_be_visible()  # escaped
    await page.get_by_role("link", name=world.done.key).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(world.done.key)
