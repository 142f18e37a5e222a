"""A whole run with every secret set (tests/secrets.py): the real bot (long polling, outbox)
with its own token, the real worker with an API key, a forge token and an embeddings key in
its environment, and the status page behind its token. A task goes from /new to done, its log
and card are asked for in Telegram, its pages are opened; then everything the run logged (at
DEBUG), every call Telegram received and every page served is searched for each secret. (The
session guard, tests/secret_guard.py, searches the same again for the whole test run.)"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient, AiohttpServer

from bot.app import run_bot
from tests.bot.updates import message_update
from tests.bot.world import ALICE, Pool, add_repo, settings
from tests.conftest import GUARD
from tests.fakes.telegram import FakeTelegram
from tests.gitrepos import make_repo
from tests.secret_guard import ACCESS_LOG, record_text
from tests.secrets import ANTHROPIC_KEY, BOT_TOKEN, EMBEDDINGS_KEY, FORGE_TOKEN, WEB_TOKEN
from tests.worker.delivery import agent
from web.app import create_app
from web.settings import WebSettings
from worker.app import run_worker
from worker.embedder import EmbedderSettings
from worker.settings import ClaudeSettings, WorkerSettings

SECRETS = (BOT_TOKEN, ANTHROPIC_KEY, FORGE_TOKEN, WEB_TOKEN, EMBEDDINGS_KEY)
# The agent shows its whole environment, so a leaked variable would be in the run's log.
SHOW_ENV = ("print('\\n'.join(f'{k}={v}' for k, v in sorted(os.environ.items())))\n"
            "pathlib.Path('hello.txt').write_text('hello\\n')\n")  # fmt: skip


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    """The fake Bot API, answering only this run's bot token."""
    fake = FakeTelegram(token=BOT_TOKEN)
    yield fake
    GUARD.scan_calls(fake.calls)  # the session guard looks too: it knows only fake_tg
    assert not fake.violations, "Bot API violations:\n" + "\n".join(fake.violations)


@pytest.fixture
async def running(
    *, telegram: FakeTelegram, aiohttp_server: AiohttpServer, db_dsn: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> AsyncIterator[None]:  # fmt: skip
    caplog.set_level(logging.DEBUG)  # from the start: everything the services log
    for name, value in (("TELEGRAM_BOT_TOKEN", BOT_TOKEN), ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
                        ("GITEA_TOKEN", FORGE_TOKEN), ("WEB_TOKEN", WEB_TOKEN),
                        ("MEMORY_EMBEDDINGS_API_KEY", EMBEDDINGS_KEY)):  # fmt: skip
        monkeypatch.setenv(name, value)
    url = str((await aiohttp_server(telegram.make_app())).make_url("")).rstrip("/")
    stop = asyncio.Event()
    services = [
        asyncio.create_task(run_bot(settings(bot_token=BOT_TOKEN, api_base_url=url), db_dsn,
                                    stop)),
        asyncio.create_task(run_worker(db_dsn, WorkerSettings(concurrency=1, recheck_seconds=0.5),
                                       ClaudeSettings(), tmp_path / "home", stop,
                                       memory=EmbedderSettings(),
                                       forge_env={"GITEA_TOKEN": FORGE_TOKEN})),
    ]  # fmt: skip
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*services), timeout=30)


async def _ask(fake: FakeTelegram, text: str) -> str:
    """Send a command as Alice; the text of the bot's next message (or document)."""
    before = len(fake.calls)
    fake.push_update(message_update(text, user_id=ALICE))
    while True:
        await fake.wait_for("getUpdates", where=lambda c: c in fake.calls[before:])
        answers = [c for c in fake.calls[before:] if not c.failed
                   and c.method in ("sendMessage", "sendDocument")]  # fmt: skip
        if answers:
            return json.dumps(answers[0].params, ensure_ascii=False)


async def test_a_whole_run_never_logs_or_shows_a_secret(
    *, running: None, telegram: FakeTelegram, aiohttp_client: AiohttpClient, db_dsn: str,
    pool: Pool, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    upstream = make_repo(tmp_path / "up", {"README.md": "# Shop\n"})
    await add_repo(pool, "shop", str(upstream), agent_backend="command",
                   agent_command=agent(tmp_path, SHOW_ENV),
                   test_command="env; test -f hello.txt")  # fmt: skip
    telegram.push_update(message_update("/new shop Greet everyone", user_id=ALICE))
    await telegram.wait_for("sendDocument", timeout=60)  # done: the patches came
    shown = [await _ask(telegram, text) for text in ("/log SHOP-1", "/task SHOP-1", "/status")]
    assert "HOME=" in shown[0]  # the log shows the agent's environment, without a secret

    client = await aiohttp_client(create_app(db_dsn, WebSettings(token=WEB_TOKEN)))
    bearer = {"Authorization": f"Bearer {WEB_TOKEN}"}
    pages = [await (await client.get(f"/?token={WEB_TOKEN}")).text()]
    for path in ("/tasks", "/tasks/SHOP-1", "/tasks/SHOP-1/files/combined.mbox", "/ideas",
                 "/healthz"):  # fmt: skip
        response = await client.get(path, headers=bearer)
        assert response.status == 200, path
        pages.append(await response.text())
    assert "Greet everyone" in pages[2]

    records = caplog.get_records("setup") + caplog.records  # the services started in setup
    logged = "\n".join(record_text(r) for r in records
                       if r.name != ACCESS_LOG)  # the test servers' request lines  # fmt: skip
    calls = [json.dumps(c.params, ensure_ascii=False) for c in telegram.calls]
    files = [data.decode("utf-8", "replace") for c in telegram.calls
             for _, data in c.files.values()]  # fmt: skip
    loggers = {r.name.split(".")[0] for r in records}
    assert loggers >= {"bot", "worker", "aiogram", "pgqueuer"}  # the whole run, at DEBUG
    for secret in SECRETS:
        for where, text in (("logs", logged), ("Telegram", "\n".join(calls + files)),
                            ("pages", "\n".join(pages))):  # fmt: skip
            assert secret not in text, f"{secret[:6]}… in {where}"
