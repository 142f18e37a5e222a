"""A fake Telegram Bot API server: checks every call against the spec, keeps messages per chat
and files (tests/fakes/telegram_files.py: getFile, and downloads from /file/bot<token>/<path>).

Calls that break the spec or one of Telegram's limits are answered as Telegram would (400, 404,
413) and recorded in `FakeTelegram.violations`; the `fake_tg` fixture fails a test that leaves
any there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from tests.fakes.telegram_files import FileMethods, FileStore
from tests.fakes.telegram_html import parse_html
from tests.fakes.telegram_spec import Spec, load_spec

JSON = dict[str, Any]
TEST_TOKEN = "42:TEST"  # noqa: S105  # not a secret: the fake accepts only this token
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are"
    " exactly the same as a current content and reply markup of the message"
)
_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    403: "Forbidden: bot was blocked by the user",
}


def bot_user(token: str = TEST_TOKEN) -> JSON:
    """The bot's User object: its id is the token's number before ':'."""
    return {"id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": "DevServer Test",
            "username": "devserver_test_bot", "can_join_groups": True,
            "can_read_all_group_messages": False, "supports_inline_queries": False}  # fmt: skip


@dataclass
class Call:
    method: str
    params: dict[str, Any]  # typed per the spec: ints, bools, decoded JSON; files as attach://
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # param -> (name, bytes)
    failed: bool = False
    error: str | None = None  # the description Telegram answered with, when failed

    def __str__(self) -> str:
        files = {name: (filename, len(data)) for name, (filename, data) in self.files.items()}
        status = f"FAILED ({self.error}) " if self.failed else ""
        return f"{status}{self.method} {self.params!r:.300}" + (f" files={files}" if files else "")


@dataclass(eq=False)
class TelegramError(Exception):
    """An error answer; `violation` is recorded too when the call broke the spec or a limit."""

    status: int
    description: str
    retry_after: int | None = None
    violation: str | None = None

    def response(self) -> web.Response:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


def _bad(description: str) -> TelegramError:
    """A 400 for a request the real server refuses; our tests treat it as a violation too."""
    return TelegramError(400, f"Bad Request: {description}", violation=description)


def _formatted(params: JSON, key: str) -> tuple[str, list[JSON]]:
    """Text (or caption) as the user sees it, and its entities."""
    text, mode = str(params.get(key, "")), params.get("parse_mode")
    if mode is None:
        return text, list(params.get("caption_entities" if key == "caption" else "entities", []))
    if mode == "HTML":
        try:
            return parse_html(text)
        except ValueError as error:
            raise _bad(f"can't parse entities: {error}") from None
    if mode in ("Markdown", "MarkdownV2"):
        return text, []  # the fake doesn't parse Markdown: counted as sent
    raise _bad("unsupported parse_mode")


def _chat(chat_id: int | str) -> JSON:
    if isinstance(chat_id, str):  # @channelusername
        return {"id": -(10**12) - zlib.crc32(chat_id.encode()), "type": "channel"}
    group = "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": chat_id, "type": "private" if chat_id > 0 else group}


def _buttons(markup: Any) -> list[JSON]:
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    return [b for row in rows if isinstance(row, list) for b in row if isinstance(b, dict)]


class FakeTelegram(FileMethods):
    def __init__(
        self, *, token: str = TEST_TOKEN, poll_cap: float = 1.0,
        max_upload_bytes: int = MAX_UPLOAD_BYTES, spec: Spec | None = None,
    ) -> None:  # fmt: skip
        self.token = token  # calls with any other token get 401 and are violations
        self.poll_cap = poll_cap  # longest a getUpdates long poll waits, whatever its timeout
        self.max_upload_bytes = max_upload_bytes
        self.spec = spec or load_spec()
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.updates: list[JSON] = []  # pushed, not yet confirmed by a getUpdates offset
        self.files = FileStore()  # uploaded by users (add_file) or sent by the bot
        self._chats: dict[int | str, dict[int, JSON]] = defaultdict(dict)
        self._last_message_id: dict[int | str, int] = defaultdict(int)
        self._failures: dict[str, deque[TelegramError]] = defaultdict(deque)
        self._last_update_id = 0
        self._changed = asyncio.Event()
        self._closing = False

    # --- for tests: setting up, then looking at what the bot did ---

    def make_app(self) -> web.Application:
        self._closing = False
        app = web.Application(client_max_size=self.max_upload_bytes + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.on_shutdown.append(self._on_shutdown)
        return app

    def push_update(self, update: JSON) -> int:
        """Queue a raw update for getUpdates; returns its update_id (assigned when absent)."""
        update = {"update_id": self._last_update_id + 1, **update}
        if problems := self.spec.check_object("Update", update):
            raise AssertionError(f"invalid update: {problems}")
        self._last_update_id = max(self._last_update_id, update["update_id"])
        self.updates.append(update)
        self._notify()
        return int(update["update_id"])

    def fail_next(
        self, method: str, *, status: int = 429, retry_after: int | None = None,
        description: str | None = None, times: int = 1,
    ) -> None:  # fmt: skip
        """The next `times` valid calls of `method` get this error instead of a result."""
        if status == 429:
            retry_after = retry_after or 1
            description = description or f"Too Many Requests: retry after {retry_after}"
        description = description or _DESCRIPTIONS.get(status) or HTTPStatus(status).phrase
        error = TelegramError(status, description, retry_after=retry_after)
        self._failures[method].extend([error] * times)

    def clear_failures(self) -> None:
        """Telegram is back: drop every failure still queued by `fail_next`."""
        self._failures.clear()

    def add_message(
        self, chat_id: int | str, text: str, *, reply_markup: JSON | None = None
    ) -> JSON:
        """Store a message as if the bot had sent it before (one with buttons, say)."""
        markup = {"reply_markup": reply_markup} if reply_markup else {}
        return self._store(chat_id, {"text": text, **markup})

    def messages(self, chat_id: int | str) -> list[JSON]:
        """The bot's messages in a chat that still exist, as they read now."""
        return list(self._chats.get(chat_id, {}).values())

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def sent(self, method: str) -> list[Call]:
        """Successful calls of `method`."""
        return [c for c in self.calls_of(method) if not c.failed]

    def last(self, method: str) -> Call:
        """The last successful call of `method`."""
        if sent := self.sent(method):
            return sent[-1]
        raise AssertionError(f"no successful {method} call; received:\n{self.summary()}")

    async def wait_for(
        self, method: str, count: int = 1, timeout: float = 10.0,  # noqa: ASYNC109
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:  # fmt: skip
        """Wait until at least `count` successful calls of `method` match `where`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(matched := [c for c in self.sent(method) if not where or where(c)]) < count:
            if loop.time() >= deadline:
                raise AssertionError(
                    f"expected {count} successful {method} call(s) in {timeout}s, matched "
                    f"{len(matched)}; received:\n{self.summary()}"
                )
            await self._wait_change(deadline - loop.time())
        return matched

    def summary(self) -> str:
        return "\n".join(f"  {call}" for call in self.calls) or "  (no calls)"

    # --- HTTP ---

    async def _handle(self, request: web.Request) -> web.Response:
        call = Call(request.match_info["method"], {})
        self.calls.append(call)
        try:
            await self._read(request, call)
            self._check_spec(request.match_info["token"], call)
            self._check_limits(call)
            if failures := self._failures.get(call.method):
                raise failures.popleft()
            reply = getattr(self, f"_api_{call.method}", None)
            result = await reply(call) if reply else True
        except TelegramError as error:
            call.failed, call.error = True, error.description
            if error.violation:
                self.violations.append(f"{call.method}: {error.violation}")
            return error.response()
        finally:
            self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _read(self, request: web.Request, call: Call) -> None:
        values: JSON = dict(request.query)
        uploads: dict[str, tuple[str, bytes]] = {}
        if request.content_type == "application/json":
            values.update(await request.json())
        elif request.method == "POST":
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise TelegramError(413, "Request Entity Too Large", violation="upload") from None
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    uploads[name] = (value.filename, value.file.read())
                else:
                    values[name] = value.decode() if isinstance(value, bytes) else value
        call.params = {name: self.spec.decode(call.method, name, v) for name, v in values.items()}
        for part, (filename, data) in uploads.items():
            if len(data) > self.max_upload_bytes:
                violation = f"{filename!r} is {len(data)} bytes"
                raise TelegramError(413, "Request Entity Too Large", violation=violation)
            reference = f"attach://{part}"
            param = next((k for k, v in call.params.items() if v == reference), None)
            if param is None and reference not in json.dumps(call.params):
                param = part  # uploaded under the parameter's own name, not through attach://
                call.params[part] = reference
            call.files[param or part] = (filename, data)

    def _check_spec(self, token: str, call: Call) -> None:
        if token != self.token:
            raise TelegramError(401, "Unauthorized", violation=f"wrong token {token!r}")
        problems = self.spec.check_call(call.method, call.params)
        problems += [
            f"{name}: {value} refers to no uploaded file part"
            for name, value in call.params.items()
            if isinstance(value, str) and value.startswith("attach://") and name not in call.files
        ]
        if call.method not in self.spec.methods:
            raise TelegramError(404, "Not Found", violation=problems[0])
        if problems:
            raise _bad("; ".join(problems))

    def _check_limits(self, call: Call) -> None:
        params = call.params
        if call.method == "answerCallbackQuery" and len(params.get("text", "")) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        if call.method in ("sendMessage", "editMessageText"):
            text, _ = _formatted(params, "text")
            if not text.strip():
                raise _bad("message text is empty")
            if len(text) > 4096:
                raise _bad("message is too long")
        if "caption" in params and len(_formatted(params, "caption")[0]) > 1024:
            raise _bad("message caption is too long")
        for button in _buttons(params.get("reply_markup")):
            if "callback_data" in button and not 1 <= len(button["callback_data"].encode()) <= 64:
                raise _bad("BUTTON_DATA_INVALID")
        for command in params.get("commands", []) if call.method == "setMyCommands" else []:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command["command"]):
                raise _bad("BOT_COMMAND_INVALID")

    def _error(self, status: int, description: str, *, violation: str | None = None) -> Exception:
        return TelegramError(status, description, violation=violation)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float) -> None:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing = True  # ends pending long polls, so the server stops promptly
        self._notify()

    # --- the message store ---

    def _store(self, chat_id: int | str, content: JSON) -> JSON:
        self._last_message_id[chat_id] += 1
        message_id = self._last_message_id[chat_id]
        message = {"message_id": message_id, "from": bot_user(self.token),
                   "date": int(time.time()), "chat": _chat(chat_id), **content}  # fmt: skip
        self._chats[chat_id][message_id] = message
        return message

    def _send(self, call: Call, content: JSON) -> JSON:
        params = call.params
        if "message_thread_id" in params:
            content["message_thread_id"] = params["message_thread_id"]
        if _buttons(params.get("reply_markup")):  # a Message carries inline keyboards only
            content["reply_markup"] = params["reply_markup"]
        if "caption" in params:
            content["caption"], entities = _formatted(params, "caption")
            if entities:
                content["caption_entities"] = entities
        return self._store(params["chat_id"], content)

    def _message(self, call: Call, action: str) -> JSON | None:
        """The stored message a call is about; None for inline messages, which aren't stored."""
        if "inline_message_id" in call.params:
            return None
        message = self._chats.get(call.params["chat_id"], {}).get(call.params["message_id"])
        if message is None:
            raise TelegramError(400, f"Bad Request: message to {action} not found")
        return message

    def _edit(self, message: JSON, changes: JSON) -> JSON:
        if all(message.get(key) == (value or None) for key, value in changes.items()):
            raise TelegramError(400, NOT_MODIFIED)
        for key, value in changes.items():
            message.pop(key, None)  # like Telegram, an edit without reply_markup drops it
            if value:
                message[key] = value
        message["edit_date"] = int(time.time())
        return message

    # --- replies: one per method the fake answers with more than `true` ---

    async def _api_getMe(self, call: Call) -> JSON:
        return bot_user(self.token)

    async def _api_sendMessage(self, call: Call) -> JSON:
        text, entities = _formatted(call.params, "text")
        return self._send(call, {"text": text} | ({"entities": entities} if entities else {}))

    async def _api_sendDocument(self, call: Call) -> JSON:
        if "document" not in call.files:  # a file_id or URL
            file_id = call.params["document"]
            return self._send(call, {"document": {"file_id": file_id, "file_unique_id": file_id}})
        filename, data = call.files["document"]  # kept: a forward of it can be downloaded
        return self._send(call, {"document": self.files.add(data, filename).document()})

    async def _api_editMessageText(self, call: Call) -> JSON | bool:
        if (message := self._message(call, "edit")) is None:
            return True
        if "text" not in message:
            raise TelegramError(400, "Bad Request: there is no text in the message to edit")
        text, entities = _formatted(call.params, "text")
        markup = call.params.get("reply_markup")
        return self._edit(message, {"text": text, "entities": entities, "reply_markup": markup})

    async def _api_editMessageReplyMarkup(self, call: Call) -> JSON | bool:
        if (message := self._message(call, "edit")) is None:
            return True
        return self._edit(message, {"reply_markup": call.params.get("reply_markup")})

    async def _api_deleteMessage(self, call: Call) -> bool:
        if self._message(call, "delete"):
            del self._chats[call.params["chat_id"]][call.params["message_id"]]
        return True

    async def _api_getMyCommands(self, call: Call) -> list[JSON]:
        """The commands last set, whatever their scope."""
        sent = self.sent("setMyCommands")
        return list(sent[-1].params["commands"]) if sent else []

    async def _api_getUpdates(self, call: Call) -> list[JSON]:
        offset, limit = call.params.get("offset", 0), call.params.get("limit", 100)
        if offset > 0:  # confirms every update before it
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(call.params.get("timeout", 0), self.poll_cap)
        while not self.updates and not self._closing and loop.time() < deadline:
            await self._wait_change(deadline - loop.time())
        return self.updates[:limit]
