"""A patch series sent to the bot, through the real dispatcher and the fake Bot API (getFile,
file download): previewed, applied to a repository by a button, run by the worker; and files
that are no patch series, each refused with a clear answer and nothing stored."""

from __future__ import annotations

import io
import random
import shlex
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot

from bot.app import build_dispatcher
from bot.callbacks import ApplyAction
from bot.deps import BotDeps
from bot.outbox import Outbox
from bot.series import MAX_FILE_BYTES, MAX_UNPACKED_BYTES
from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.bot.updates import as_update, callback_update, document_update
from tests.bot.world import ALICE, MALLORY, Pool, add_repo, add_task, make_deps, settings
from tests.fakes.telegram import FakeTelegram, bot_user
from tests.gitrepos import git, make_repo
from tests.worker.running import worker_deps
from worker import jobs

AGENT = Path(__file__).resolve().parents[1] / "fakes" / "agents" / "pipeline_agent.py"
PY = shlex.quote(sys.executable)
JSON = dict[str, Any]


async def _send(bot: Bot, deps: BotDeps, document: JSON, user: int = ALICE, **kw: Any) -> None:
    update = document_update(document, user_id=user, **kw)
    await build_dispatcher(deps).feed_update(bot, as_update(update, bot))


async def _press(bot: Bot, deps: BotDeps, data: str, message: JSON) -> None:
    update = callback_update(data, user_id=ALICE, message=message)
    await build_dispatcher(deps).feed_update(bot, as_update(update, bot))


async def _stored(pool: Pool) -> tuple[int, int, int]:
    """Tasks, artifacts and remembered series: what a refused file must not add to."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM artifacts),"
        " (SELECT count(*) FROM bot_dialogs WHERE destiny = 'patches')"
    )
    assert row is not None
    return (row[0], row[1], row[2])


def _series(tmp_path: Path, *, cover_letter: bool = False) -> list[tuple[str, bytes]]:
    """A real series, one file per commit (git format-patch), by two authors."""
    repo = make_repo(tmp_path / "series", {"README.md": "# Demo\n"})
    for name, author in (("a.txt", "Ada <ada@example.invalid>"),
                         ("b.txt", "Brian <brian@example.invalid>")):  # fmt: skip
        (repo / name).write_text(f"{name}\n")
        git(repo, "add", name)
        git(repo, "commit", "-q", f"--author={author}", "-m", f"Add {name}")
    out = tmp_path / "patches"
    args = ["format-patch", "-q", "-o", str(out), "HEAD~2"]
    git(repo, *([*args, "--cover-letter"] if cover_letter else args))
    return [(p.name, p.read_bytes()) for p in sorted(out.iterdir())]


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


async def test_a_forwarded_mbox_of_an_earlier_task_is_applied_to_a_second_repo(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path
) -> None:
    # An earlier task in "demo" ends with its mbox sent to the chat (the real outbox).
    demo_up = make_repo(tmp_path / "demo", {"README.md": "# Demo\n"})
    agent = f"{PY} {shlex.quote(str(AGENT))} {{prompt}} write"
    demo = await add_repo(pool, "demo", str(demo_up), agent_backend="command",
                          agent_command=agent, git_author_name="Agent",
                          git_author_email="agent@example.invalid")  # fmt: skip
    earlier = await add_task(pool, demo, "Say hello")
    workers = worker_deps(pool, tmp_path)
    await jobs.run_task(earlier.id, workers)
    assert (await TaskRepo(pool).by_id(earlier.id)).status is TaskStatus.DONE
    outbox = Outbox(bot, pool, settings())
    for _ in range(20):
        if fake_tg.sent("sendDocument"):
            break
        await outbox.deliver_due()
    sent = next(m for m in fake_tg.messages(ALICE) if "document" in m)
    assert sent["document"]["file_name"] == "DEMO-1.mbox"

    # Alice forwards it back; a second repository (other history, its own identity) exists.
    shop_up = make_repo(tmp_path / "shop", {"README.md": "# Demo\n", "shop.py": "PRICE = 1\n"})
    await add_repo(pool, "shop", str(shop_up), git_author_name="Shop Bot",
                   git_author_email="bot@shop.invalid",
                   test_command="test -f hello.txt")  # fmt: skip
    deps = make_deps(pool)
    await _send(bot, deps, sent["document"], forwarded_from=bot_user())
    assert fake_tg.files.downloads  # through getFile and the file URL, as from Telegram
    preview = fake_tg.messages(ALICE)[-1]
    text = preview["text"]
    assert "DEMO-1.mbox: 1 commit(s), 2 file(s) changed, +2 -0" in text
    assert "1. DEMO-1: Say hello — Agent <agent@example.invalid>" in text
    assert "Author(s): Agent <agent@example.invalid>" in text
    buttons = [b for row in preview["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["➡️ Apply to demo", "➡️ Apply to shop"]

    await _press(bot, deps, buttons[1]["callback_data"], preview)
    task = await TaskRepo(pool).by_key("SHOP-1")
    assert (task.kind, task.status, task.git_flow) == ("apply", TaskStatus.QUEUED, "pr")
    assert task.title == "Apply: DEMO-1: Say hello"
    assert task.created_by == "Ada Lovelace (1001)"
    [source] = await ArtifactRepo(pool).for_task(task.id)
    assert (source.kind, source.filename) == (ArtifactKind.SOURCE, "source.mbox")
    mbox = await ArtifactRepo(pool).content(task.id, "source.mbox")
    assert b"Subject: [PATCH] DEMO-1: Say hello" in mbox
    assert fake_tg.last("answerCallbackQuery").params["text"] == "Queued for shop as SHOP-1."
    card = next(m for m in fake_tg.messages(ALICE) if m["message_id"] == task.message_id)
    assert "SHOP-1" in card["text"]

    await _press(bot, deps, buttons[1]["callback_data"], preview)  # pressed twice
    assert "Already applied to shop as SHOP-1" in fake_tg.last("answerCallbackQuery").params["text"]
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE kind = 'apply'") == 1

    await jobs.run_task(task.id, workers)
    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert "branch agent/SHOP-1" in done.status_reason  # pr on a plain repository: pushed
    log = git(shop_up, "log", "--format=%an <%ae>|%cn <%ce>|%s", "main..agent/SHOP-1")
    assert log == "Agent <agent@example.invalid>|Shop Bot <bot@shop.invalid>|DEMO-1: Say hello"
    assert git(shop_up, "show", "agent/SHOP-1:hello.txt") == "hello from the agent"
    assert git(shop_up, "show", "agent/SHOP-1:shop.py") == "PRICE = 1"


async def test_a_zip_of_patches_is_previewed_without_its_cover_letter(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path
) -> None:
    await add_repo(pool, "shop")
    files = _series(tmp_path, cover_letter=True)
    assert files[0][0] == "0000-cover-letter.patch"
    zipped = _zip([(f"series/{name}", content) for name, content in reversed(files)])
    await _send(bot, make_deps(pool), fake_tg.add_file(zipped, "series.zip", "application/zip"))
    text = fake_tg.messages(ALICE)[-1]["text"]
    assert "series.zip: 2 commit(s), 2 file(s) changed, +2 -0" in text
    assert "1. Add a.txt — Ada <ada@example.invalid>" in text  # in file name order
    assert "2. Add b.txt — Brian <brian@example.invalid>" in text
    assert "1 cover letter(s) left out" in text
    assert await _stored(pool) == (0, 0, 1)  # only where the file is, until a button says


def _corrupt(tmp_path: Path) -> bytes:
    mbox = b"".join(content for _, content in _series(tmp_path))
    return mbox.replace(b"@@ -0,0 +1 @@\n+b.txt", b"@@ -0,0 +1,5 @@\n+b.txt")


def _bomb() -> bytes:
    """Small as sent, over the unpacked limit once read."""
    return _zip([("0001-big.patch", b"x" * (MAX_UNPACKED_BYTES + 1))])


REFUSED: list[tuple[str, str, Any, str]] = [
    ("corrupt", "series.mbox", _corrupt, "not a git patch series: the diff of message 2 (Add "
     "b.txt) is corrupt (corrupt patch at line"),
    ("truncated", "series.mbox", lambda tmp: b"".join(c for _, c in _series(tmp))[:-400],
     "is corrupt"),
    ("no diff", "note.patch", lambda _: b"From 0 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\n"
     b"Subject: [PATCH] hi\n\njust words\n", "message 1 (hi) has no diff"),
    ("plain diff", "fix.patch", lambda _: b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n"
     b"-a\n+b\n", "it is a plain diff"),
    ("text", "notes.mbox", lambda _: b"Dear team,\nplease apply.\n", "does not start like"),
    ("binary", "tool.patch", lambda _: random.Random(1).randbytes(4096),
     "this is a binary file, not a patch series"),
    ("empty", "empty.mbox", lambda _: b"", "the file is empty"),
    ("not a zip", "series.zip", lambda _: b"PK\x03\x04 not really", "not a readable zip file"),
    ("traversal", "series.zip", lambda tmp: _zip([("../evil.patch", _series(tmp)[0][1])]),
     "its entry ../evil.patch points outside the archive"),
    ("absolute", "series.zip", lambda tmp: _zip([("/etc/evil.patch", _series(tmp)[0][1])]),
     "its entry /etc/evil.patch points outside the archive"),
    ("bomb", "series.zip", lambda _: _bomb(), "unpacks to more than 20 MB"),
    ("other file", "series.zip", lambda tmp: _zip([("0001-a.patch", _series(tmp)[0][1]),
                                                  ("notes.pdf", b"%PDF")]),
     "notes.pdf in it is not a .patch or .mbox file"),
]  # fmt: skip


@pytest.mark.parametrize("case", REFUSED, ids=[case for case, *_ in REFUSED])
async def test_what_is_no_patch_series_is_refused_and_nothing_is_stored(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path, case: tuple[str, str, Any, str]
) -> None:
    _, name, content, says = case
    await add_repo(pool, "shop")
    await _send(bot, make_deps(pool), fake_tg.add_file(content(tmp_path), name))
    answer = fake_tg.last("sendMessage").params["text"]
    assert says in answer
    assert "Nothing was stored or applied." in answer
    assert "reply_markup" not in fake_tg.last("sendMessage").params
    assert await _stored(pool) == (0, 0, 0)


async def test_an_oversized_file_is_refused_before_it_is_downloaded(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    await add_repo(pool, "shop")
    big = fake_tg.add_file(b"x" * (MAX_FILE_BYTES + 1024 * 1024), "big.mbox")
    await _send(bot, make_deps(pool), big)
    assert "big.mbox: is 6.0 MB, over the 5 MB limit." in fake_tg.messages(ALICE)[-1]["text"]
    assert fake_tg.calls_of("getFile") == []
    assert fake_tg.files.downloads == []
    assert await _stored(pool) == (0, 0, 0)


async def test_other_files_are_not_read_and_strangers_get_nothing(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path
) -> None:
    await add_repo(pool, "shop")
    deps = make_deps(pool)
    mbox = _series(tmp_path)[0][1]
    await _send(bot, deps, fake_tg.add_file(mbox, "0001-a.patch"), user=MALLORY)
    assert fake_tg.calls == []
    await _send(bot, deps, fake_tg.add_file(b"\x89PNG\r\n", "screenshot.png"))
    assert fake_tg.messages(ALICE)[-1]["text"] == (
        "📎 To apply patches, send a .mbox or .patch file (from git format-patch), or a .zip "
        "of them.")  # fmt: skip
    assert fake_tg.calls_of("getFile") == []
    assert await _stored(pool) == (0, 0, 0)


async def test_a_stale_or_forged_button_creates_nothing(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    shop = await add_repo(pool, "shop")
    message = fake_tg.add_message(ALICE, "📨 an old preview")
    await _press(bot, make_deps(pool), ApplyAction(series="0" * 12, repo_id=shop.id).pack(),
                 message)  # fmt: skip
    assert "no longer at hand" in fake_tg.last("answerCallbackQuery").params["text"]
    assert await _stored(pool) == (0, 0, 0)
