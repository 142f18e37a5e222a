"""The fake Bot API's files: getFile checked by the spec, downloads from /file/bot<token>/<path>
as aiogram builds them, Telegram's 20 MB download limit, and documents users send."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from tests.bot.updates import as_update, document_update
from tests.fakes.telegram import TEST_TOKEN, FakeTelegram, bot_user
from tests.fakes.telegram_files import MAX_DOWNLOAD_BYTES
from tests.fakes.telegram_spec import load_spec


async def _get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read()


async def _post(url: str, **data: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=data) as response:
        return response.status, await response.json()


async def test_an_uploaded_file_is_got_and_downloaded_byte_exact(
    bot: Bot, fake_tg: FakeTelegram
) -> None:
    content = bytes(range(256)) * 1000
    document = fake_tg.add_file(content, "0001-Fix.patch")
    file = await bot.get_file(document["file_id"])
    assert load_spec().check_object("File", file.model_dump(exclude_none=True)) == []
    assert (file.file_id, file.file_size) == (document["file_id"], len(content))
    assert file.file_path is not None
    assert file.file_path.startswith("documents/file_")
    assert file.file_path.endswith(".patch")
    downloaded = await bot.download(document["file_id"])  # getFile, then the file URL
    assert isinstance(downloaded, io.BytesIO)
    assert downloaded.getvalue() == content
    assert fake_tg.files.downloads == [file.file_path]


async def test_a_document_the_bot_sent_can_be_downloaded_again(
    bot: Bot, fake_tg: FakeTelegram
) -> None:
    sent = await bot.send_document(7, BufferedInputFile(b"From x\n", "SHOP-1.mbox"))
    assert sent.document is not None
    downloaded = await bot.download(sent.document.file_id)
    assert isinstance(downloaded, io.BytesIO)
    assert downloaded.getvalue() == b"From x\n"


async def test_get_file_refuses_unknown_and_too_big_files(bot: Bot, fake_tg: FakeTelegram) -> None:
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("no-such-file")
    big = fake_tg.add_file(b"\0" * (MAX_DOWNLOAD_BYTES + 1), "dump.bin")
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(big["file_id"])
    assert fake_tg.violations == []  # Telegram's answers, not broken calls
    assert fake_tg.files.downloads == []


async def test_get_file_and_downloads_are_checked(tg_url: str, fake_tg: FakeTelegram) -> None:
    status, body = await _post(f"{tg_url}/bot{TEST_TOKEN}/getFile", file_ids="x")
    assert status == 400
    assert "missing required parameter 'file_id'" in body["description"]
    document = fake_tg.add_file(b"data", "a.mbox")
    status, body = await _post(f"{tg_url}/bot{TEST_TOKEN}/getFile", file_id=document["file_id"])
    path = body["result"]["file_path"]
    assert (status, await _get(f"{tg_url}/file/bot{TEST_TOKEN}/{path}")) == (200, (200, b"data"))
    assert (await _get(f"{tg_url}/file/bot1:OTHER/{path}"))[0] == 404
    assert (await _get(f"{tg_url}/file/bot{TEST_TOKEN}/documents/file_99.mbox"))[0] == 404
    assert fake_tg.violations == [
        "getFile: unknown parameter 'file_ids'; missing required parameter 'file_id'",
        "download: a wrong token",
        "download: 'documents/file_99.mbox', a path getFile did not hand out",
    ]
    fake_tg.violations.clear()


def test_document_updates_match_the_spec() -> None:
    fake = FakeTelegram()
    document = fake.add_file(b"From x\n", "series.mbox")
    for update in (
        document_update(document, user_id=5),
        document_update(document, user_id=5, forwarded_from=bot_user(), caption="as sent"),
        document_update("spec.md", "text/markdown", user_id=5, file_size=3),
    ):
        assert load_spec().check_object("Update", update) == []
        as_update(update)
    message = as_update(document_update(document, user_id=5)).message
    assert message is not None
    assert message.document is not None
    assert message.document.file_name == "series.mbox"
