"""Fixtures for bot tests: the fake Telegram server, and an aiogram Bot that talks to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from pytest_aiohttp import AiohttpServer

from tests.fakes.telegram import TEST_TOKEN, FakeTelegram


class _LocalSession(AiohttpSession):
    """AiohttpSession without the 250 ms close delay it keeps for TLS connections."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
def fake_tg() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    yield fake
    assert not fake.violations, "Bot API violations:\n" + "\n".join(fake.violations)


@pytest.fixture
async def tg_url(aiohttp_server: AiohttpServer, fake_tg: FakeTelegram) -> str:
    server = await aiohttp_server(fake_tg.make_app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def bot(tg_url: str) -> AsyncIterator[Bot]:
    bot = Bot(TEST_TOKEN, session=_LocalSession(api=TelegramAPIServer.from_base(tg_url)))
    yield bot
    await bot.session.close()
