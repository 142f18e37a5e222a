"""The secret guard itself (tests/secret_guard.py): it finds a secret wherever one is logged or
shown, fails a whole session that leaked one, and knows every value written in a test."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tests.conftest import GUARD
from tests.fakes.telegram import Call
from tests.secret_guard import SecretGuard
from tests.secrets import BOT_TOKEN, SECRETS, WRITTEN_IN_TESTS

ROOT = Path(__file__).resolve().parents[1]
SECRET = "guard-self-test-value-0f3e"  # noqa: S105  # known only to the guards made here


def test_every_value_written_in_a_test_is_still_there() -> None:
    for value, path in WRITTEN_IN_TESTS.items():
        assert value in (ROOT / path).read_text(), f"{path} no longer uses {value[:6]}…"
    assert len(set(SECRETS)) == len(SECRETS)


def test_the_session_guard_is_listening_on_the_root_logger() -> None:
    assert GUARD.handler in logging.getLogger().handlers
    assert BOT_TOKEN in GUARD.secrets


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("bot.app", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_log_records_are_searched_raw_in_message_extras_and_exceptions() -> None:
    guard = SecretGuard([SECRET])
    guard.scan_record(_record("fine"))
    guard.scan_record(_record("connect to %s failed", f"postgresql://u:{SECRET}@h/db"))
    guard.scan_record(_record("fine", url=f"https://api/bot{SECRET}/x"))
    try:
        raise RuntimeError(SECRET)
    except RuntimeError:
        failing = _record("failed")
        failing.exc_info = sys.exc_info()
    guard.scan_record(failing)
    assert len(guard.found) == 3
    access = logging.LogRecord("aiohttp.access", logging.INFO, __file__, 1,
                               "POST /bot%s/getUpdates", (SECRET,), None)  # fmt: skip
    guard.scan_record(access)  # a test server's request line: not the system's own log
    assert len(guard.found) == 3


def test_telegram_calls_are_searched_in_parameters_and_files() -> None:
    guard = SecretGuard([SECRET])
    guard.scan_calls([Call("sendMessage", {"chat_id": 1, "text": "hello"})])
    assert guard.found == []
    guard.scan_calls([Call("sendMessage", {"chat_id": 1, "text": f"token: {SECRET}"})])
    upload = {"document": ("x.mbox", f"+TOKEN={SECRET}\n".encode())}
    guard.scan_calls([Call("sendDocument", {"chat_id": 1, "document": "attach://document"},
                           files=upload)])  # fmt: skip
    assert [place.split(": ")[1] for place in guard.found] == [
        "Telegram call sendMessage", "Telegram call sendDocument"]  # fmt: skip


async def test_pages_and_streams_of_a_watched_app_are_searched(
    aiohttp_client: AiohttpClient,
) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=request.query.get("say", "nothing"))

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(f"data: {request.query.get('say', '')}\n\n".encode())
        return response

    guard = SecretGuard([SECRET])
    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/live", stream)
    guard.watch_app(app)
    client = await aiohttp_client(app)
    await (await client.get("/", params={"say": "hello"})).read()
    assert guard.found == []
    await (await client.get("/", params={"say": SECRET})).read()
    await (await client.get("/live", params={"say": SECRET})).read()
    assert [place.split(": ")[1] for place in guard.found] == ["page GET /", "page GET /live"]


def test_a_session_that_logs_a_secret_fails_naming_the_test(tmp_path: Path) -> None:
    leak = tmp_path / "test_leak.py"
    log = "logging.getLogger('bot.app').warning"
    leak.write_text(f"import logging\n\n\ndef test_leak():\n    {log}('token %s', {BOT_TOKEN!r})\n"
                    f"\n\ndef test_fine():\n    {log}('fine')\n")  # fmt: skip
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
               "tests.conftest", "--rootdir", str(tmp_path), str(leak)]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 passed" in run.stdout  # every test passed, and yet the session failed
    assert "A test secret (tests/secrets.py) was logged or shown:" in run.stdout
    assert "test_leak.py::test_leak: log record of bot.app (WARNING): 987654…" in run.stdout
    assert "test_fine" not in run.stdout.split("was logged or shown:")[1]
