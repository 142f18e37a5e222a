"""The notification outbox against the fake Bot API: cards, alerts, patches, and failures."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiogram import Bot

from bot import notices as notices_module
from bot.outbox import Outbox, Pacer
from bot.replies import send_html
from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.notifications import NoticeKind, NotificationRepo
from storage.repos import Repo
from storage.task_events import EventKind, TaskEventRepo, record_move
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from tests.bot.world import ALICE, Pool, add_repo, add_task, settings
from tests.fakes.telegram import FakeTelegram
from tests.gitrepos import apply_mbox, commit_file, git, make_repo


async def _drain(box: Outbox, pool: Pool, rounds: int = 50) -> None:
    """Deliver until nothing is pending (each round sends every chat's next row)."""
    for _ in range(rounds):
        await box.deliver_due()
        if await NotificationRepo(pool).pending_count() == 0:
            return
    raise AssertionError("outbox did not drain")


@asynccontextmanager
async def _running(box: Outbox) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(box.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def _with_card(pool: Pool, fake: FakeTelegram, task: Task) -> Task:
    """The card the bot sent when the task was created."""
    card = fake.add_message(task.chat_id or ALICE, "🕓 Creating the task…")
    await TaskRepo(pool).set_message(task.id, int(card["message_id"]))
    return await TaskRepo(pool).by_id(task.id)


async def _finish(pool: Pool, task: Task, to: TaskStatus, reason: str = "") -> Task:
    async with pool.acquire() as conn, conn.transaction():
        for step in (TaskStatus.PREPARING, TaskStatus.RUNNING, TaskStatus.DELIVERING, to):
            task = await record_move(conn, task, step, reason=reason if step is to else "")
    return task


def _series(tmp_path: Path, commits: int = 2) -> tuple[Path, bytes, str]:
    """An upstream repo and a format-patch mbox of `commits` commits on top of it."""
    upstream = make_repo(tmp_path / "up", {"README.md": "hello\n"})
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(upstream), str(work)], check=True)
    base = git(work, "rev-parse", "HEAD").strip()
    for n in range(commits):
        commit_file(work, f"file{n}.txt", f"line {n}\n<b>&amp;</b>\n", f"Add file{n} <&>")
    mbox = subprocess.run(["git", "format-patch", "--stdout", base], cwd=work, check=True,
                          capture_output=True).stdout  # fmt: skip
    return upstream, mbox, base


async def _store_series(pool: Pool, task: Task, mbox: bytes, patches: dict[str, bytes]) -> None:
    artifacts = ArtifactRepo(pool)
    await artifacts.put(task.id, ArtifactKind.MBOX, "combined.mbox", mbox)
    for name, content in patches.items():
        await artifacts.put(task.id, ArtifactKind.PATCH, name, content)


async def test_progress_edits_one_card_silently_and_the_end_is_loud(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    repo = await add_repo(pool)
    task = await _with_card(pool, fake_tg, await add_task(pool, repo, "Fix <the> & build"))
    box = Outbox(bot, pool, settings())
    await _drain(box, pool)  # the creation events: one edit turns the placeholder into the card
    assert len(fake_tg.sent("editMessageText")) == 1
    events = TaskEventRepo(pool)
    for attempt in (1, 2, 3):
        await events.add(task.id, EventKind.AGENT_STARTED, {"attempt": attempt})
    await _drain(box, pool)
    edits = fake_tg.sent("editMessageText")
    assert len(edits) == 2  # three progress events, one edit: cards coalesce
    card = fake_tg.messages(ALICE)[0]
    assert "Fix <the> & build" in card["text"]
    assert "attempt 3 started" in card["text"]
    assert fake_tg.sent("sendMessage") == []  # progress never makes a new (loud) message

    await _finish(pool, task, TaskStatus.FAILED, reason="check test failed <exit 1>")
    await _drain(box, pool)
    alert = fake_tg.last("sendMessage")
    assert "disable_notification" not in alert.params  # loud
    assert alert.params["chat_id"] == ALICE
    assert "Failed: check test failed &lt;exit 1&gt;" in alert.params["text"]
    assert "failed" in fake_tg.messages(ALICE)[0]["text"]  # and the card says so too
    assert fake_tg.sent("sendDocument") == []  # no commits: no mbox


async def test_done_sends_the_mbox_and_git_am_applies_it(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path
) -> None:
    upstream, mbox, _ = _series(tmp_path)
    task = await _with_card(pool, fake_tg, await add_task(pool, await add_repo(pool)))
    await _store_series(pool, task, mbox, {})
    await _finish(pool, task, TaskStatus.DONE, reason="2 commit(s) ready as patches")
    async with _running(Outbox(bot, pool, settings())):
        document = (await fake_tg.wait_for("sendDocument"))[0]
    name, content = document.files["document"]
    assert (name, content) == (f"{task.key}.mbox", mbox)
    caption = document.params["caption"]
    assert "2 commit(s), 2 file(s) changed, +4 -0" in caption
    assert f"git am --3way {task.key}.mbox" in caption
    assert "Add file0 &lt;&amp;&gt;" in caption
    order = [c.method for c in fake_tg.calls if c.method in ("sendMessage", "sendDocument")]
    assert order == ["sendMessage", "sendDocument"]  # "Done." first, then its patches

    clone = apply_mbox(upstream, content, tmp_path / "apply")
    assert (clone / "file1.txt").read_text() == "line 1\n<b>&amp;</b>\n"


async def test_429_waits_retry_after_and_delivers_once(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    task = await _with_card(pool, fake_tg, await add_task(pool, await add_repo(pool)))
    await _finish(pool, task, TaskStatus.FAILED, reason="no luck")
    fake_tg.fail_next("sendMessage", retry_after=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with _running(Outbox(bot, pool, settings())):
        await fake_tg.wait_for("sendMessage")
        waited = loop.time() - started
        await asyncio.sleep(0.3)  # any second delivery would happen now
    assert [c.failed for c in fake_tg.calls_of("sendMessage")] == [True, False]
    assert waited >= 0.9  # the retry_after of 1 s was honoured
    row = await pool.fetchrow("SELECT attempts, last_error FROM notifications WHERE kind='alert'")
    assert row is not None
    assert row["attempts"] == 2
    assert "429" in row["last_error"]


async def test_a_restart_delivers_what_was_left_and_nothing_twice(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    repo = await add_repo(pool)
    first = await _with_card(pool, fake_tg, await add_task(pool, repo, "first"))
    second = await _with_card(pool, fake_tg, await add_task(pool, repo, "second", chat_id=-100))
    await _finish(pool, first, TaskStatus.FAILED, reason="one")
    await _finish(pool, second, TaskStatus.FAILED, reason="two")
    fake_tg.fail_next("editMessageText", status=502, times=10)
    await Outbox(bot, pool, settings()).deliver_due()  # Telegram is down; then the bot dies
    assert fake_tg.sent("editMessageText") == []
    await pool.execute("UPDATE notifications SET next_attempt_at = now()")  # skip the back-off
    fake_tg.clear_failures()  # Telegram is back
    await _drain(Outbox(bot, pool, settings()), pool)  # the restarted bot
    await _drain(Outbox(bot, pool, settings()), pool)  # and once more: nothing left to send
    alerts = [c.params["text"] for c in fake_tg.sent("sendMessage")]
    assert len(alerts) == 2
    assert {("one" in a) + ("two" in a) for a in alerts} == {1}
    assert {c.params["chat_id"] for c in fake_tg.sent("sendMessage")} == {ALICE, -100}


async def test_a_blocked_chat_is_given_up_without_holding_others(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    repo = await add_repo(pool)
    task = await _with_card(pool, fake_tg, await add_task(pool, repo))
    fake_tg.fail_next("editMessageText", status=403)
    await _finish(pool, task, TaskStatus.FAILED, reason="x")
    await _drain(Outbox(bot, pool, settings()), pool)
    given_up = await pool.fetch(
        "SELECT last_error FROM notifications WHERE given_up_at IS NOT NULL"
    )
    assert len(given_up) == 1
    assert "Forbidden" in given_up[0]["last_error"]
    assert len(fake_tg.sent("sendMessage")) == 1  # the alert behind it still went out


async def test_a_deleted_card_is_sent_again_in_the_forum_topic(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    task = await add_task(pool, await add_repo(pool), chat_id=-100, thread_id=7)
    await TaskRepo(pool).set_message(task.id, 424242)  # a card someone deleted
    await TaskEventRepo(pool).add(task.id, EventKind.AGENT_STARTED, {"attempt": 1})
    await _drain(Outbox(bot, pool, settings()), pool)
    card = fake_tg.last("sendMessage")
    assert card.params["message_thread_id"] == 7
    assert card.params["disable_notification"] is True
    moved = await TaskRepo(pool).by_id(task.id)
    assert moved.message_id == fake_tg.messages(-100)[-1]["message_id"]


async def test_a_series_over_the_limit_goes_per_commit_or_as_a_link(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, mbox, _ = _series(tmp_path)
    half = len(mbox) // 2 + 200
    monkeypatch.setattr(notices_module, "DOCUMENT_LIMIT", half)
    repo: Repo = await add_repo(pool)
    task = await _with_card(pool, fake_tg, await add_task(pool, repo))
    patches = {"0001-a.patch": b"first patch\n", "0002-b.patch": b"second patch\n"}
    await _store_series(pool, task, mbox, patches)
    await _finish(pool, task, TaskStatus.DONE)
    await _drain(Outbox(bot, pool, settings()), pool)
    sent = [c.files["document"] for c in fake_tg.sent("sendDocument")]
    assert sent == list(patches.items())
    assert "1 of 2" in fake_tg.sent("sendDocument")[0].params["caption"]

    big = await _with_card(pool, fake_tg, await add_task(pool, repo))
    await _store_series(pool, big, mbox, {"0001-huge.patch": b"x" * (half + 1)})
    await _finish(pool, big, TaskStatus.DONE)
    await _drain(Outbox(bot, pool, settings(status_page_url="https://ds.example")), pool)
    link = fake_tg.last("sendMessage").params["text"]
    assert "50 MB" in link
    assert f"https://ds.example/tasks/{big.key}" in link
    assert f"devserver task mbox {big.key}" in link


def test_pacer_spaces_messages_per_chat_and_more_in_groups() -> None:
    now = [100.0]
    pacer = Pacer(settings(private_chat_interval=1.0, group_chat_interval=3.0), lambda: now[0])
    assert pacer.wait(ALICE) == 0
    pacer.sent(ALICE)
    pacer.sent(-100)
    assert (pacer.wait(ALICE), pacer.wait(-100), pacer.wait(7)) == (1.0, 3.0, 0)
    now[0] += 1.5
    assert (pacer.wait(ALICE), pacer.wait(-100)) == (0, 1.5)


async def test_a_paced_chat_waits_while_other_chats_go_on(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    repo = await add_repo(pool)
    slow = await _with_card(pool, fake_tg, await add_task(pool, repo, "one", chat_id=-100))
    other = await _with_card(pool, fake_tg, await add_task(pool, repo, "two"))
    await TaskEventRepo(pool).add(slow.id, EventKind.TASK_FAILED, {"reason": "a"})
    await TaskEventRepo(pool).add(slow.id, EventKind.TASK_BLOCKED, {"reason": "b"})
    await TaskEventRepo(pool).add(other.id, EventKind.TASK_FAILED, {"reason": "c"})
    box = Outbox(bot, pool, settings(group_chat_interval=60.0))
    for _ in range(5):
        pause = await box.deliver_due()
    group = [c for c in fake_tg.calls if c.params.get("chat_id") == -100]
    assert len(group) == 1  # one message, then the group waits its turn …
    assert 0 < pause <= 60
    alice = [c.method for c in fake_tg.calls if c.params.get("chat_id") == ALICE]
    assert alice == ["editMessageText", "sendMessage"]  # … others go on: the card, the alert


async def test_an_alert_too_long_for_a_message_arrives_as_a_file(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    await send_html(bot, ALICE, None, "<b>head</b>\n" + "y" * 5000, filename="SHOP-1.txt")
    name, content = fake_tg.last("sendDocument").files["document"]
    assert name == "SHOP-1.txt"
    assert content == ("head\n" + "y" * 5000).encode()
    await send_html(bot, ALICE, None, "\n".join(f"<i>{n}</i> " + "z" * 99 for n in range(60)))
    assert len(fake_tg.sent("sendMessage")) == 2  # 6,000 characters in lines: split in two


async def test_a_rate_limit_wait_tells_the_chat_when_the_task_runs_again(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    repo = await add_repo(pool)
    task = await _with_card(pool, fake_tg, await add_task(pool, repo, "Add a health endpoint"))
    box = Outbox(bot, pool, settings())
    await _drain(box, pool)
    await TaskEventRepo(pool).add(task.id, EventKind.RATE_LIMIT_BACKOFF, {
        "kind": "rate_limit", "phase": "attempt", "resume_at": "2026-11-25T14:05:00+00:00",
        "seconds": 300, "wait": 1, "max_waits": 8, "job_id": 1, "message": "API Error: 429",
    })  # fmt: skip
    await _drain(box, pool)

    alert = fake_tg.last("sendMessage")
    assert "disable_notification" not in alert.params  # loud: the person may be waiting
    assert "The model API refused the run (rate_limit)" in alert.params["text"]
    assert "It runs again at 14:05 UTC (in 5m 00s); no attempt is used." in alert.params["text"]
    card = fake_tg.messages(ALICE)[0]["text"]
    assert "waiting for the model API (rate_limit) until 14:05 UTC; no attempt used" in card


async def test_the_card_names_the_failure_class_and_the_reality_score(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    repo = await add_repo(pool)
    task = await _with_card(pool, fake_tg, await add_task(pool, repo))
    box = Outbox(bot, pool, settings())
    events = TaskEventRepo(pool)
    await events.add(task.id, EventKind.REALITY_SIGNAL, {"score": 72, "confidence": 0.75})
    await _drain(box, pool)
    assert "Last: reality score 72/100" in fake_tg.messages(ALICE)[0]["text"]
    await events.add(task.id, EventKind.ERROR_CLASSIFIED, {
        "key": "pytest.failures", "hint": "Read the assertion <and> fix the code"})  # fmt: skip
    await _drain(box, pool)
    card = fake_tg.messages(ALICE)[0]["text"]
    assert "Last: failure class pytest.failures: Read the assertion <and> fix the code" in card


async def test_a_preflight_block_lists_the_findings_masked_and_a_pr_shows_on_the_card(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    repo = await add_repo(pool)
    task = await _with_card(pool, fake_tg, await add_task(pool, repo, "Add a deploy script"))
    box = Outbox(bot, pool, settings())
    await _drain(box, pool)
    await TaskEventRepo(pool).add(task.id, EventKind.PR_OPENED, {
        "number": 7, "url": "https://git.example.com/me/web/pulls/7", "forge": "gitea",
        "created": True, "head": "agent/SHOP-1", "base": "main"})  # fmt: skip
    await _drain(box, pool)
    card = fake_tg.messages(ALICE)[0]["text"]
    assert "PR #7 opened: https://git.example.com/me/web/pulls/7" in card

    violations = [
        {"check": "secret", "path": "deploy/<run>.sh", "line": 3,
         "detail": "github-classic-token: ghp_…(40 chars)…9xQ2", "rule": "github-classic-token"},
        {"check": "forbidden_file", "path": ".env", "detail": "a file of this name holds "
         "credentials"},
    ]  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        for step in (TaskStatus.PREPARING, TaskStatus.RUNNING, TaskStatus.DELIVERING):
            task = await record_move(conn, task, step)
        await record_move(conn, task, TaskStatus.BLOCKED, reason="preflight found 2 problem(s)",
                          violations=violations, count=2)  # fmt: skip
    await _drain(box, pool)
    alert = fake_tg.last("sendMessage").params["text"]
    assert "Blocked by the preflight; nothing was pushed or sent:" in alert
    assert "• deploy/&lt;run&gt;.sh:3 (secret): github-classic-token: ghp_…(40 chars)…9xQ2" in alert
    assert "• .env (forbidden_file): a file of this name holds credentials" in alert


async def test_a_chat_message_is_sent_as_written_once(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    rows = NotificationRepo(pool)
    html = '<b>Night summary</b>\nDone: 2 · Failed: 1\n<a href="https://x/y">SHOP-1</a>'
    assert await rows.add(ALICE, NoticeKind.MESSAGE, "night:1", payload={"html": html})
    assert await rows.add(ALICE, NoticeKind.MESSAGE, "night:1", payload={"html": html}) is None
    await _drain(Outbox(bot, pool, settings()), pool)
    [sent] = fake_tg.sent("sendMessage")
    assert sent.params["text"] == html
    assert sent.params["parse_mode"] == "HTML"
