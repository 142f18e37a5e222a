"""Browser fixtures: a real headless Chromium (tests/browser.py), one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext

from tests.browser import browser_context as new_browser_context
from tests.browser import chromium, record_page_errors


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def browser_context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh context that accepts downloads; fails the test if a page threw a JS error."""
    async with new_browser_context(browser) as context:
        errors = record_page_errors(context)
        yield context
    assert not errors, "uncaught JavaScript errors:\n" + "\n".join(errors)
