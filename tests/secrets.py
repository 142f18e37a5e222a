"""Every secret value the tests hand to the system: bot tokens, forge tokens, API keys, web
tokens, passwords. The session guard (tests/secret_guard.py, wired in tests/conftest.py)
fails the run when one shows up in a log record, a page the status page served, or a call
the fake Bot API received.

The fakes' own tokens are imported from the fakes. Values written inside single tests are
repeated here with the file that uses them; tests/test_secret_guard.py checks each is still
there, so a changed value cannot drop out of the guard unnoticed. Not here, on purpose:
tests/test_logs.py logs its values raw to prove that the log formatter masks them.
"""

from __future__ import annotations

from tests.fakes.gitea import TEST_TOKEN as GITEA_TOKEN
from tests.fakes.github import TEST_TOKEN as GITHUB_TOKEN
from tests.fakes.telegram import TEST_TOKEN as TELEGRAM_TOKEN

# A full run with these in settings and environment: tests/bot/test_no_secrets.py.
BOT_TOKEN = "987654321:AAF-never-shown-bot-token-0123456789ab"  # noqa: S105  # test values
ANTHROPIC_KEY = "sk-ant-api03-never-shown-key-0123456789abcdefABCDEF"
FORGE_TOKEN = "forge-token-never-shown-5e1d7c"  # noqa: S105
WEB_TOKEN = "web-token-never-shown-77aa"  # noqa: S105
EMBEDDINGS_KEY = "sk-embeddings-never-shown-0042"

WRITTEN_IN_TESTS: dict[str, str] = {  # the value: a test file that uses it
    "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9": "tests/worker/test_delivery_forges.py",
    "sk-ant-api03-testkey-never-to-be-seen-0123456789abcdefABCDEF":
        "tests/worker/test_delivery_forges.py",
    "web-secret-token-123": "tests/web/test_pages.py",
    "browser-token-456": "tests/web/test_browser.py",
    "123:telegram-secret": "tests/worker/test_claude_backend.py",
    "gitea-secret": "tests/worker/test_claude_backend.py",
    "db-secret": "tests/worker/test_command_agent.py",
}  # fmt: skip

SECRETS: tuple[str, ...] = (
    TELEGRAM_TOKEN, GITEA_TOKEN, GITHUB_TOKEN, BOT_TOKEN, ANTHROPIC_KEY, FORGE_TOKEN, WEB_TOKEN,
    EMBEDDINGS_KEY, *WRITTEN_IN_TESTS,
)  # fmt: skip
