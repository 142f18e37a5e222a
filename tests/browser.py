"""A real headless Chromium for browser tests: Debian's `chromium`, driven by Playwright.

Playwright's own browser download is never used: `chromium()` launches the binary named by
`DEVSERVER_CHROMIUM`, or `/usr/bin/chromium` (`.ci/test` installs it with apt-get).

    async with chromium() as browser, browser_context(browser) as context:
        page = await open_page(context, url)
        await expect(page.get_by_text("done")).to_be_visible()
        patch = await download(page, page.get_by_role("link", name="patch"))
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    WebError,
    async_playwright,
    expect,
)

DEFAULT_EXECUTABLE = "/usr/bin/chromium"
DEFAULT_TIMEOUT_MS = 10_000

# Needed as root, with no screen and no network. The background-networking flags stop
# Chromium's own connections, which the closed network refuses. Playwright adds most of
# these itself; they are repeated so the list is complete on its own. The fresh, empty
# --user-data-dir is Playwright's: launch() makes a temporary profile for each browser and
# removes it on close (it rejects --user-data-dir in `args`).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass(frozen=True, slots=True)
class Downloaded:
    filename: str  # the server's Content-Disposition filename
    data: bytes


def executable_path() -> str:
    return os.environ.get("DEVSERVER_CHROMIUM") or DEFAULT_EXECUTABLE


@asynccontextmanager
async def chromium(*, timeout_ms: float = DEFAULT_TIMEOUT_MS) -> AsyncIterator[Browser]:
    """A headless Chromium with a fresh profile, closed (and its profile removed) on exit.

    `expect()` has a global timeout of its own (5 s by default); it is set to `timeout_ms`,
    the same as the pages' default timeout in `browser_context()`.
    """
    expect.set_options(timeout=timeout_ms)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable_path(),
            headless=True,
            chromium_sandbox=False,
            args=list(CHROMIUM_ARGS),
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def browser_context(
    browser: Browser, *, timeout_ms: float = DEFAULT_TIMEOUT_MS
) -> AsyncIterator[BrowserContext]:
    """A fresh context (cookies, storage) that accepts downloads; waits time out after 10 s."""
    context = await browser.new_context(accept_downloads=True)
    context.set_default_timeout(timeout_ms)
    context.set_default_navigation_timeout(timeout_ms)
    try:
        yield context
    finally:
        await context.close()


def record_page_errors(context: BrowserContext) -> list[str]:
    """Collect the uncaught JavaScript errors of every page in `context`, as they happen."""
    errors: list[str] = []

    def on_error(web_error: WebError) -> None:
        errors.append(f"{web_error.page.url if web_error.page else '?'}: {web_error.error}")

    context.on("weberror", on_error)
    return errors


async def open_page(context: BrowserContext, url: str, *, status: int = 200) -> Page:
    """A new page in `context`, loaded from `url`; fails unless the answer has `status`."""
    page = await context.new_page()
    response = await page.goto(url)
    got = response.status if response is not None else "no response"
    if got != status:
        msg = f"GET {url}: expected {status}, got {got}"
        raise AssertionError(msg)
    return page


async def download(page: Page, link: Locator) -> Downloaded:
    """Click `link`, wait for the download it starts, and return the file's name and bytes."""
    async with page.expect_download() as started:
        await link.click()
    downloaded = await started.value
    failure = await downloaded.failure()
    if failure is not None:
        msg = f"download from {downloaded.url} failed: {failure}"
        raise AssertionError(msg)
    data = await asyncio.to_thread(Path(await downloaded.path()).read_bytes)
    return Downloaded(downloaded.suggested_filename, data)
