"""The session-wide secret guard: no test secret (tests/secrets.py) in anything the system
logged or showed during the whole test run.

Three things are searched, raw (the production log formatter masks known secrets; this looks
before any mask, so a secret that only a mask hides still counts):
- every log record that reaches the root logger: its message, extra fields, exception and
  stack (records a logger's level filters out are never made, so what a test does not log at
  its level is not seen: levels are left as tests set them);
- every response body of the status page served through `aiohttp_client` or `aiohttp_server`
  (pages, downloads, and what the live streams wrote);
- every call the `fake_tg` fake Bot API received: parameters and uploaded files. The URL path
  carries the bot token by protocol (/bot<token>/method), so paths are not searched.
Left out, and why: aiohttp's access log (logger "aiohttp.access"). Only test servers write it
(the fakes, and pytest-aiohttp's server for the status page): the status page itself runs with
access_log=None (web/app.py run_web), and neither the bot nor the worker serves HTTP. Its
request lines hold what clients sent (a bot token in the path, ?token= of the status page).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from web.keys import env_key

ACCESS_LOG = "aiohttp.access"  # test servers only: see above
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class SecretGuard:
    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = tuple(s for s in secrets if s)
        self.found: list[str] = []  # "test: where: which secret (first characters)"
        self.test = "(outside a test)"
        self.handler = _RecordHandler(self)

    def scan(self, where: str, text: str) -> None:
        for secret in self.secrets:
            if secret in text:
                self.found.append(f"{self.test}: {where}: {secret[:6]}…")

    def scan_record(self, record: logging.LogRecord) -> None:
        if record.name != ACCESS_LOG:
            self.scan(f"log record of {record.name} ({record.levelname})", record_text(record))

    def scan_calls(self, calls: Sequence[Any]) -> None:
        """Calls of tests.fakes.telegram.FakeTelegram: their parameters and files."""
        for call in calls:
            files = [f"{name} {data.decode('utf-8', 'replace')}"
                     for name, data in call.files.values()]  # fmt: skip
            params = json.dumps(call.params, ensure_ascii=False, default=str)
            self.scan(f"Telegram call {call.method}", "\n".join([params, *files]))

    def watch_app(self, app: web.Application) -> None:
        """Search what `app` answers: whole bodies, and what streamed responses write."""

        async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
            where = f"page {request.method} {request.path}"
            if isinstance(response, web.Response) and isinstance(response.body, bytes):
                self.scan(where, response.body.decode("utf-8", "replace"))
            elif not isinstance(response, web.Response):
                write = response.write

                async def scanned(data: bytes | bytearray | memoryview) -> None:
                    self.scan(where, bytes(data).decode("utf-8", "replace"))
                    await write(data)

                response.write = scanned  # type: ignore[method-assign]

        app.on_response_prepare.append(on_prepare)

    def report(self) -> str:
        return "A test secret (tests/secrets.py) was logged or shown:\n" + "\n".join(
            f"  {place}" for place in dict.fromkeys(self.found)
        )


def record_text(record: logging.LogRecord) -> str:
    """Everything a formatter could print of a record, unmasked."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = f"{record.msg} {record.args}"
    extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    parts = [message, *(f"{k}={v}" for k, v in extras.items())]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


class _RecordHandler(logging.Handler):
    def __init__(self, guard: SecretGuard) -> None:
        super().__init__(logging.DEBUG)
        self.guard = guard

    def emit(self, record: logging.LogRecord) -> None:
        self.guard.scan_record(record)


def watching(
    guard: SecretGuard, factory: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """pytest-aiohttp's aiohttp_client or aiohttp_server factory, watching the status page
    (web/app.py; the fakes' apps are not ours)."""

    async def make(target: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(target, web.Application) and env_key in target:
            guard.watch_app(target)
        return await factory(target, *args, **kwargs)

    return make
