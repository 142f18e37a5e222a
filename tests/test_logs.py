"""Log lines never carry a secret, wherever a library puts it (URLs, exception text)."""

from __future__ import annotations

import logging

import pytest

from devserver import logs
from devserver.settings import Settings

TOKEN = "123456:AAH-secret-bot-token"  # noqa: S105  # a test value to find in the output


def test_known_secrets_are_masked_in_messages_extras_and_tracebacks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("INFO", secrets=[TOKEN, "pw-of-db", "abc"])  # too short to mask safely
    log = logging.getLogger("tests.logs")
    log.error("Failed to fetch updates for http://api/bot%s/getUpdates", TOKEN)
    log.info("request", extra={"url": f"https://api.telegram.org/bot{TOKEN}/sendMessage"})
    try:
        raise RuntimeError(f"connect to postgresql://app:pw-of-db@db/app failed for {TOKEN}")
    except RuntimeError:
        log.exception("crashed")
    log.info("abc is not masked")
    err = capsys.readouterr().err
    assert TOKEN not in err
    assert "pw-of-db" not in err
    assert "http://api/bot***/getUpdates" in err
    assert "url=https://api.telegram.org/bot***/sendMessage" in err
    assert "postgresql://app:***@db/app failed for ***" in err
    assert "abc is not masked" in err  # values too short to mask safely are left alone


def test_settings_name_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-xyz")
    monkeypatch.setenv("WEB_TOKEN", "web-token-1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:s3cret-pw@db:5432/app")
    monkeypatch.setenv("GITEA_TOKEN", "0123456789abcdef0123")  # forge tokens: any *_TOKEN
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to mask safely
    monkeypatch.setenv("CODEX_API_KEY", "sk-codex-key-1")
    monkeypatch.setenv("DEVSERVER_AIDER_API_KEYS", "openai=sk-aider-o,anthropic=sk-ant-aider")
    assert sorted(Settings().secrets()) == sorted(
        [TOKEN, "sk-ant-api03-xyz", "web-token-1", "s3cret-pw", "0123456789abcdef0123",
         "sk-codex-key-1", "sk-aider-o", "sk-ant-aider",
         "openai=sk-aider-o,anthropic=sk-ant-aider"]
    )  # fmt: skip
