"""The fake Telegram server itself, driven by aiogram's real client and checked by the spec."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Command
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from pytest_aiohttp import AiohttpServer

from tests.bot.updates import as_update, callback_update, document_update, message_update
from tests.fakes.telegram import TEST_TOKEN, FakeTelegram
from tests.fakes.telegram_html import parse_html
from tests.fakes.telegram_spec import DEFAULT_SPEC, Spec, load_spec


def keyboard(callback_data: str) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(text="Go", callback_data=callback_data)
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


async def post(url: str, **data: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=data) as response:
        return response.status, await response.json()


async def test_send_message_round_trips_and_is_stored(bot: Bot, fake_tg: FakeTelegram) -> None:
    sent = await bot.send_message(
        7, "<b>Task</b> &lt;T-1&gt; done", parse_mode="HTML", reply_markup=keyboard("task:1")
    )
    second = await bot.send_message(7, "again", message_thread_id=3, disable_notification=True)

    assert (sent.message_id, second.message_id) == (1, 2)
    assert sent.text == "Task <T-1> done"
    assert sent.html_text == "<b>Task</b> &lt;T-1&gt; done"
    assert sent.from_user is not None
    assert sent.from_user.id == 42
    call = fake_tg.last("sendMessage")
    assert call.params == {"chat_id": 7, "text": "again", "message_thread_id": 3,
                           "disable_notification": True}  # fmt: skip
    assert fake_tg.calls_of("sendMessage")[0].params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Go", "callback_data": "task:1"}]]
    }
    stored = fake_tg.messages(7)
    assert [m["text"] for m in stored] == ["Task <T-1> done", "again"]
    assert stored[1]["message_thread_id"] == 3
    assert all(load_spec().check_object("Message", m) == [] for m in stored)
    assert fake_tg.messages(8) == []


async def test_edit_message_text_changes_stored_text(bot: Bot, fake_tg: FakeTelegram) -> None:
    sent = await bot.send_message(7, "Running", reply_markup=keyboard("cancel:1"))

    edited = await bot.edit_message_text("<i>Done</i>", chat_id=7, message_id=sent.message_id,
                                         parse_mode="HTML")  # fmt: skip

    assert isinstance(edited, Message)
    assert edited.text == "Done"
    [stored] = fake_tg.messages(7)
    assert stored["text"] == "Done"
    assert stored["entities"] == [{"type": "italic", "offset": 0, "length": 4}]
    assert "reply_markup" not in stored  # an edit without reply_markup drops the keyboard
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("<i>Done</i>", chat_id=7, message_id=1, parse_mode="HTML")
    await bot.edit_message_text("Plain", chat_id=7, message_id=1)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Plain", chat_id=7, message_id=1)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("Done", chat_id=7, message_id=99)
    assert [c.failed for c in fake_tg.calls_of("editMessageText")] == [0, 1, 0, 1, 1]
    assert fake_tg.violations == []  # Telegram's answers to legitimate calls, not violations


async def test_reply_markup_edit_and_delete(bot: Bot, fake_tg: FakeTelegram) -> None:
    sent = await bot.send_message(-1001234, "Plan ready", reply_markup=keyboard("plan:1"))
    assert sent.chat.type == "supergroup"

    await bot.edit_message_reply_markup(chat_id=-1001234, message_id=sent.message_id)
    assert "reply_markup" not in fake_tg.messages(-1001234)[0]
    assert await bot.delete_message(-1001234, sent.message_id)
    assert fake_tg.messages(-1001234) == []
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(-1001234, sent.message_id)


async def test_unknown_method_and_parameter_are_violations(
    tg_url: str, fake_tg: FakeTelegram
) -> None:
    status, body = await post(f"{tg_url}/bot{TEST_TOKEN}/sendmessage", chat_id="1", text="x")
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    status, body = await post(f"{tg_url}/bot{TEST_TOKEN}/sendMessage", chat_id="1", text="x",
                              colour="red")  # fmt: skip
    assert status == 400
    assert body["description"] == "Bad Request: unknown parameter 'colour'"
    status, body = await post(f"{tg_url}/bot{TEST_TOKEN}/sendMessage", chat_id="one")
    assert status == 400
    assert fake_tg.violations == [
        "sendmessage: unknown method",
        "sendMessage: unknown parameter 'colour'",
        "sendMessage: missing required parameter 'text'",
    ]
    assert all(call.failed for call in fake_tg.calls)
    fake_tg.violations.clear()


async def test_wrong_token_is_a_violation(tg_url: str, fake_tg: FakeTelegram) -> None:
    status, body = await post(f"{tg_url}/bot1:OTHER/getMe")
    assert (status, body["description"]) == (401, "Unauthorized")
    assert fake_tg.violations == ["getMe: wrong token '1:OTHER'"]
    fake_tg.violations.clear()


def test_spec_checks_nested_objects() -> None:
    spec = load_spec()
    markup = {"inline_keyboard": [[{"text": "Go", "colour": "red"}]]}
    assert spec.check_call("sendMessage", {"chat_id": 1, "text": "x", "reply_markup": markup}) == [
        "reply_markup.inline_keyboard[0][0] (InlineKeyboardButton): unknown field 'colour'"
    ]
    remove = {"remove_keyboard": True}
    assert (
        spec.check_call("sendMessage", {"chat_id": "@c", "text": "x", "reply_markup": remove}) == []
    )
    assert spec.check_object("BotCommand", {"command": "x", "description": 3}) == [
        "BotCommand.description: expected String, got 3"
    ]
    assert Spec.load(DEFAULT_SPEC).methods["sendMessage"]["text"].required


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("R&D", "Unsupported HTML entity '&D' at byte offset 1"),
        ("line<br>", 'Unsupported start tag "br" at byte offset 4'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b", "Unclosed start tag at byte offset 0"),
    ],
)
async def test_bad_html_is_rejected(
    bot: Bot, fake_tg: FakeTelegram, text: str, reason: str
) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as raised:
        await bot.send_message(7, text, parse_mode="HTML")

    assert raised.value.message == f"Bad Request: can't parse entities: {reason}"
    assert fake_tg.violations == [f"sendMessage: can't parse entities: {reason}"]
    assert fake_tg.messages(7) == []
    fake_tg.violations.clear()


def test_html_entities_use_utf16_offsets() -> None:
    text, entities = parse_html(
        '😀 <a href="https://x.test/?a=1&amp;b=2">link</a> <pre><code class="language-py">'
        'x = 1</code></pre><tg-spoiler></tg-spoiler><blockquote expandable>"q"</blockquote>'
        "&#x1F600;&quot;"
    )
    assert text == '😀 link x = 1"q"😀"'
    assert entities == [
        {"type": "text_link", "offset": 3, "length": 4, "url": "https://x.test/?a=1&b=2"},
        {"type": "pre", "offset": 8, "length": 5, "language": "py"},
        {"type": "expandable_blockquote", "offset": 13, "length": 3},
    ]


async def test_text_limit_counts_visible_characters(bot: Bot, fake_tg: FakeTelegram) -> None:
    await bot.send_message(7, "a" * 4096)
    await bot.send_message(7, "&lt;" * 4096, parse_mode="HTML")
    await bot.send_message(7, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    for text in ("a" * 4097, "&lt;" * 4097):
        with pytest.raises(TelegramBadRequest, match="message is too long"):
            await bot.send_message(7, text, parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(7, "<b> </b>", parse_mode="HTML")

    assert fake_tg.messages(7)[1]["text"] == "<" * 4096
    assert len(fake_tg.sent("sendMessage")) == 3
    assert len(fake_tg.violations) == 3
    fake_tg.violations.clear()


async def test_callback_data_and_answer_limits(bot: Bot, fake_tg: FakeTelegram) -> None:
    await bot.send_message(7, "ok", reply_markup=keyboard("a" * 64))
    for data in ("a" * 65, "é" * 33):  # 64 bytes is the limit, not 64 characters
        with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
            await bot.send_message(7, "too long", reply_markup=keyboard(data))
    await bot.answer_callback_query("q1", text="x" * 200)
    with pytest.raises(TelegramBadRequest, match="MESSAGE_TOO_LONG"):
        await bot.answer_callback_query("q1", text="x" * 201)

    assert len(fake_tg.violations) == 3
    fake_tg.violations.clear()


async def test_injected_failures(bot: Bot, fake_tg: FakeTelegram) -> None:
    fake_tg.fail_next("sendMessage", retry_after=7)
    fake_tg.fail_next("getMe", status=502, times=2)
    fake_tg.fail_next("sendDocument", status=403)

    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(7, "hi")
    assert raised.value.retry_after == 7
    assert "Original description: Too Many Requests: retry after 7" in raised.value.message
    await bot.send_message(7, "hi")
    for _ in range(2):
        with pytest.raises(TelegramServerError, match="Bad Gateway"):
            await bot.get_me()
    assert (await bot.get_me()).username == "devserver_test_bot"
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_document(7, "file-id")

    assert [c.failed for c in fake_tg.calls_of("sendMessage")] == [True, False]
    assert len(fake_tg.sent("sendMessage")) == 1
    assert [m["text"] for m in fake_tg.messages(7)] == ["hi"]


async def test_send_document_is_received_byte_exact(bot: Bot, fake_tg: FakeTelegram) -> None:
    data = bytes(range(256)) * 1000
    sent = await bot.send_document(7, BufferedInputFile(data, "T-1.patch"), caption="<b>T-1</b>",
                                   parse_mode="HTML")  # fmt: skip

    call = fake_tg.last("sendDocument")
    assert call.files == {"document": ("T-1.patch", data)}
    assert call.params["document"].startswith("attach://")
    assert sent.document is not None
    assert sent.document.file_size == len(data)
    assert sent.caption == "T-1"
    assert load_spec().check_object("Message", fake_tg.messages(7)[0]) == []


async def test_documents_over_50_mb_are_refused(bot: Bot, fake_tg: FakeTelegram) -> None:
    await bot.send_document(7, BufferedInputFile(b"x" * (50 * 1024 * 1024), "max.bin"))
    with pytest.raises(TelegramEntityTooLarge, match="Request Entity Too Large"):
        await bot.send_document(7, BufferedInputFile(b"x" * (50 * 1024 * 1024 + 1), "big.bin"))
    with pytest.raises(TelegramEntityTooLarge):  # beyond what the fake reads at all
        await bot.send_document(7, BufferedInputFile(b"x" * (52 * 1024 * 1024), "huge.bin"))

    assert fake_tg.violations == [
        "sendDocument: 'big.bin' is 52428801 bytes",
        "sendDocument: upload",
    ]
    fake_tg.violations.clear()


async def test_get_updates_long_polls_and_honours_offset(bot: Bot, fake_tg: FakeTelegram) -> None:
    first = fake_tg.push_update(message_update("/status", user_id=5))
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [first]

    asyncio.get_running_loop().call_later(0.1, fake_tg.push_update, message_update("hi", user_id=5))
    started = asyncio.get_running_loop().time()
    updates = await bot.get_updates(offset=first + 1, timeout=5)
    assert asyncio.get_running_loop().time() - started < 0.9  # early, not at the poll cap

    assert len(updates) == 1
    assert updates[0].message is not None
    assert updates[0].message.text == "hi"
    assert [u["update_id"] for u in fake_tg.updates] == [updates[0].update_id]
    fake_tg.push_update({"message": message_update("x", user_id=5)["message"]})
    assert len(await bot.get_updates(offset=updates[0].update_id + 1, limit=1)) == 1


async def test_long_poll_is_capped_and_ends_at_shutdown(aiohttp_server: AiohttpServer) -> None:
    fake = FakeTelegram(poll_cap=30)
    server = await aiohttp_server(fake.make_app())
    url = str(server.make_url(f"/bot{TEST_TOKEN}/getUpdates"))
    poll = asyncio.create_task(post(url, timeout="30"))
    await asyncio.sleep(0.1)

    async with asyncio.timeout(5):
        await server.close()
        assert await poll == (200, {"ok": True, "result": []})
    assert fake.violations == []


async def test_wait_for(bot: Bot, fake_tg: FakeTelegram) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.05)
        await bot.send_message(7, "one")
        await bot.send_message(8, "two")

    task = asyncio.create_task(send_later())
    calls = await fake_tg.wait_for("sendMessage", where=lambda c: c.params["chat_id"] == 8)
    await task
    assert [c.params["text"] for c in calls] == ["two"]
    with pytest.raises(AssertionError, match=r"matched 2; received:\n  sendMessage"):
        await fake_tg.wait_for("sendMessage", count=3, timeout=0.1)


async def test_commands_and_default_answers(bot: Bot, fake_tg: FakeTelegram) -> None:
    commands = [BotCommand(command="status", description="Queue and recent tasks")]
    assert await bot.set_my_commands(commands)
    assert [c.model_dump() for c in await bot.get_my_commands()] == [commands[0].model_dump()]
    assert await bot.send_chat_action(7, "typing")
    assert await bot.delete_webhook(drop_pending_updates=True)
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Status", description="x")])
    fake_tg.violations.clear()


def test_update_builders_match_the_spec() -> None:
    spec = load_spec()
    updates = [
        message_update("/approve T-1", user_id=5),
        message_update("hi", user_id=5, chat_id=-1001, thread_id=9, is_topic=True),
        callback_update("task:retry:7", user_id=5),
        document_update("spec.md", "text/markdown", user_id=5, file_size=120, caption="see"),
    ]
    for update in updates:
        assert spec.check_object("Update", update) == []
        as_update(update)
    assert updates[0]["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 8}]
    assert updates[1]["message"]["chat"]["is_forum"]


async def test_dispatcher_round_trip(bot: Bot, fake_tg: FakeTelegram) -> None:
    router = Router()

    @router.message(Command("status"))
    async def cmd_status(message: Message) -> None:
        await message.answer("<b>idle</b>", parse_mode="HTML", reply_markup=keyboard("refresh"))

    @router.callback_query(F.data == "refresh")
    async def cb_refresh(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.message.edit_text("still idle")
        await query.answer("Refreshed")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    await dispatcher.feed_update(bot, as_update(message_update("/status", user_id=5), bot))
    [shown] = fake_tg.messages(5)
    await dispatcher.feed_update(
        bot, as_update(callback_update("refresh", user_id=5, message=shown))
    )

    assert fake_tg.last("sendMessage").params["chat_id"] == 5
    assert fake_tg.messages(5)[0]["text"] == "still idle"
    assert fake_tg.last("answerCallbackQuery").params["text"] == "Refreshed"


async def test_aiogram_polling_against_the_fake(bot: Bot, fake_tg: FakeTelegram) -> None:
    router = Router()

    @router.message(Command("ping"))
    async def cmd_ping(message: Message) -> None:
        await message.answer("pong")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
    fake_tg.push_update(message_update("/ping", user_id=5))

    [reply] = await fake_tg.wait_for("sendMessage")
    await dispatcher.stop_polling()
    await polling
    assert reply.params == {"chat_id": 5, "text": "pong"}
    assert fake_tg.last("getUpdates").params["allowed_updates"] == ["message"]
