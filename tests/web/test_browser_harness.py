"""The browser harness itself: a real Chromium against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio

from aiohttp import web
from playwright.async_api import BrowserContext, expect
from pytest_aiohttp import AiohttpServer

from tests.browser import browser_context as new_browser_context
from tests.browser import chromium, download, open_page, record_page_errors

PATCH = b"From 0000 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n\xc3\xa9\x00\r\nend\n"

BUTTON_PAGE = """<!doctype html>
<title>button</title>
<button id="go">Start</button>
<script>
  document.getElementById("go").addEventListener("click", (event) => {
    event.target.textContent = "Clicked";
  });
</script>
"""

DOWNLOAD_PAGE = """<!doctype html>
<title>download</title>
<a href="/x.patch">patch</a>
"""

EVENTS_PAGE = """<!doctype html>
<title>events</title>
<p id="state">connecting</p>
<ul id="events"></ul>
<script>
  const source = new EventSource("/events");
  source.onopen = () => { document.getElementById("state").textContent = "connected"; };
  source.onmessage = (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    document.getElementById("events").append(item);
  };
</script>
"""


class Broadcast:
    """Server-Sent Events to every open /events stream."""

    def __init__(self) -> None:
        self._streams: set[asyncio.Queue[str | None]] = set()

    def publish(self, data: str) -> None:
        for stream in self._streams:
            stream.put_nowait(data)

    async def on_shutdown(self, _app: web.Application) -> None:
        for stream in self._streams:
            stream.put_nowait(None)

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        # aiohttp holds the headers back until the first write; EventSource opens on them.
        await response.write(b": open\n\n")
        stream: asyncio.Queue[str | None] = asyncio.Queue()
        self._streams.add(stream)
        try:
            while (data := await stream.get()) is not None:
                await response.write(f"data: {data}\n\n".encode())
        finally:
            self._streams.discard(stream)
        return response


def html(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/html")


def make_app(broadcast: Broadcast) -> web.Application:
    async def button(_request: web.Request) -> web.Response:
        return html(BUTTON_PAGE)

    async def download_page(_request: web.Request) -> web.Response:
        return html(DOWNLOAD_PAGE)

    async def patch(_request: web.Request) -> web.Response:
        return web.Response(
            body=PATCH,
            content_type="text/x-patch",
            headers={"Content-Disposition": 'attachment; filename="x.patch"'},
        )

    async def events_page(_request: web.Request) -> web.Response:
        return html(EVENTS_PAGE)

    app = web.Application()
    app.router.add_get("/button", button)
    app.router.add_get("/download", download_page)
    app.router.add_get("/x.patch", patch)
    app.router.add_get("/live", events_page)
    app.router.add_get("/events", broadcast.events)
    app.on_shutdown.append(broadcast.on_shutdown)
    return app


async def test_button_click_runs_javascript(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext
) -> None:
    server = await aiohttp_server(make_app(Broadcast()))
    page = await open_page(browser_context, str(server.make_url("/button")))
    await page.get_by_role("button", name="Start").click()
    await expect(page.locator("#go")).to_have_text("Clicked")


async def test_download_has_the_served_bytes(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext
) -> None:
    server = await aiohttp_server(make_app(Broadcast()))
    page = await open_page(browser_context, str(server.make_url("/download")))
    downloaded = await download(page, page.get_by_role("link", name="patch"))
    assert downloaded.filename == "x.patch"
    assert downloaded.data == PATCH


async def test_server_sent_event_reaches_the_page(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext
) -> None:
    broadcast = Broadcast()
    server = await aiohttp_server(make_app(broadcast))
    page = await open_page(browser_context, str(server.make_url("/live")))
    await expect(page.locator("#state")).to_have_text("connected")
    broadcast.publish("task DEV-1 is running")
    await expect(page.locator("#events li")).to_have_text(["task DEV-1 is running"])
    broadcast.publish("task DEV-1 is done")
    await expect(page.locator("#events li")).to_have_text(
        ["task DEV-1 is running", "task DEV-1 is done"]
    )


async def test_page_errors_are_recorded(aiohttp_server: AiohttpServer) -> None:
    app = web.Application()

    async def broken(_request: web.Request) -> web.Response:
        return html("<p>broken</p><script>undefinedFunction();</script>")

    app.router.add_get("/broken", broken)
    server = await aiohttp_server(app)
    async with chromium() as browser, new_browser_context(browser) as context:
        errors = record_page_errors(context)
        async with context.expect_event("weberror"):
            await open_page(context, str(server.make_url("/broken")))
    assert len(errors) == 1
    assert "undefinedFunction" in errors[0]


async def test_open_page_checks_the_status(
    aiohttp_server: AiohttpServer, browser_context: BrowserContext
) -> None:
    server = await aiohttp_server(web.Application())
    page = await open_page(browser_context, str(server.make_url("/missing")), status=404)
    await expect(page.locator("body")).to_contain_text("404")
