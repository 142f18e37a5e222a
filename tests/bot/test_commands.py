"""Commands and buttons through the real dispatcher (middleware, routers, DI, FSM storage),
against the fake Bot API, with a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiogram import Bot

from bot.app import build_dispatcher
from bot.callbacks import NewStep, TaskAction, TaskPage
from bot.deps import BotDeps
from bot.routers import tasks as tasks_router
from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.task_events import TaskEventRepo
from storage.task_runs import RunOutcome, TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from storage.worker_state import WorkerStateRepo
from tests.bot.updates import as_update, callback_update, message_update
from tests.bot.world import ALICE, MALLORY, Pool, add_repo, add_task, make_deps
from tests.fakes.telegram import FakeTelegram
from tests.gitrepos import commit_file, git, make_repo


async def _say(bot: Bot, deps: BotDeps, text: str, user: int = ALICE, **kw: object) -> None:
    update = message_update(text, user_id=user, **kw)  # type: ignore[arg-type]
    await build_dispatcher(deps).feed_update(bot, as_update(update, bot))


async def _press(bot: Bot, deps: BotDeps, data: str, user: int = ALICE,
                 message: dict[str, object] | None = None) -> None:  # fmt: skip
    update = callback_update(data, user_id=user, message=message)
    await build_dispatcher(deps).feed_update(bot, as_update(update, bot))


def _texts(fake: FakeTelegram) -> list[str]:
    return [str(c.params["text"]) for c in fake.sent("sendMessage")]


async def _counts(pool: Pool) -> tuple[int, int, int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM task_events),"
        " (SELECT count(*) FROM bot_dialogs), (SELECT count(*) FROM notifications)"
    )
    assert row is not None
    return (row[0], row[1], row[2], row[3])


async def test_a_stranger_gets_silence_and_changes_nothing(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool)
    task = await add_task(pool, repo)
    before = await _counts(pool)
    for text in ("/start", "/new shop steal things", "/new", f"/cancel {task.key}", "/pause",
                 f"/task {task.key}", "/tasks", "hello"):  # fmt: skip
        await _say(bot, deps, text, user=MALLORY)
    await _press(bot, deps, TaskAction(action="cancel", task_id=task.id).pack(), user=MALLORY)
    assert fake_tg.calls == []
    assert await _counts(pool) == before
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED
    assert not await WorkerStateRepo(pool).paused()


async def test_allowed_chats_also_fence_allowed_users(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool, allowed_chats=frozenset({-100}))
    await _say(bot, deps, "/start")  # Alice, but in her private chat: not an allowed chat
    assert fake_tg.calls == []
    await _say(bot, deps, "/start", chat_id=-100)
    assert "DevServer" in fake_tg.last("sendMessage").params["text"]


async def test_help_lists_every_command(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    await _say(bot, make_deps(pool), "/help")
    text = fake_tg.last("sendMessage").params["text"]
    for command in ("/new", "/tasks", "/task", "/cancel", "/retry", "/log", "/repos", "/status",
                    "/pause", "/resume"):  # fmt: skip
        assert command in text


async def test_one_line_new_creates_the_task_and_its_card(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    await add_repo(pool, "shop")
    title = "Fix <b>bold</b> & <i>'quotes'</i> *md* `tick`"
    description = "x" * 5000
    await _say(bot, make_deps(pool), f"/new shop {title}\n{description}")
    task = await TaskRepo(pool).by_key("SHOP-1")
    assert (task.title, task.description) == (title, description)
    assert (task.chat_id, task.created_by) == (ALICE, "Ada Lovelace (1001)")
    assert task.status is TaskStatus.QUEUED
    card = fake_tg.messages(ALICE)[-1]
    assert card["message_id"] == task.message_id
    assert title in card["text"]  # shown exactly as typed: escaped for HTML, not interpreted
    assert "SHOP-1" in card["text"]
    assert "queued" in card["text"]


async def test_one_line_new_with_an_unknown_repo_says_so(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    await add_repo(pool, "shop")
    await _say(bot, make_deps(pool), "/new nope <script> title")
    assert "No repository" in fake_tg.last("sendMessage").params["text"]
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0


async def test_guided_new_survives_a_bot_restart_between_steps(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    """Each step goes through a new dispatcher: the dialog lives in PostgreSQL."""
    deps = make_deps(pool)
    await add_repo(pool, "shop")
    api = await add_repo(pool, "api")
    await _say(bot, deps, "/new")
    pick = fake_tg.messages(ALICE)[-1]
    assert "which repository" in pick["text"]
    await _press(bot, deps, NewStep(field="repo", value=str(api.id)).pack(), message=pick)
    await _say(bot, deps, "Rate-limit the login\nFive tries a minute, then 429.")
    step = fake_tg.messages(ALICE)[-1]
    await _press(bot, deps, NewStep(field="mode", value="interactive").pack(), message=step)
    await _press(bot, deps, NewStep(field="flow", value="patch").pack(), message=step)
    await _press(bot, deps, NewStep(field="budget", value="m").pack(), message=step)
    assert "Budget: $5 · 1 h" in fake_tg.messages(ALICE)[-1]["text"]
    await _press(bot, deps, NewStep(field="confirm", value="yes").pack(), message=step)

    task = await TaskRepo(pool).by_key("API-1")
    assert (task.title, task.description) == ("Rate-limit the login",
                                              "Five tries a minute, then 429.")  # fmt: skip
    assert (task.mode, task.git_flow, str(task.max_cost_usd)) == ("interactive", "patch", "5.0000")
    assert task.max_wall_seconds == 3600
    assert task.message_id == step["message_id"]  # the dialog's message became the card
    assert "API-1" in fake_tg.messages(ALICE)[-1]["text"]
    assert await pool.fetchval("SELECT count(*) FROM bot_dialogs WHERE state IS NOT NULL") == 0
    # the dialog is over: its buttons are stale now
    await _press(bot, deps, NewStep(field="confirm", value="yes").pack(), message=step)
    assert "start again" in fake_tg.last("answerCallbackQuery").params["text"]
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1


async def test_plain_cancel_leaves_the_dialog(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    deps = make_deps(pool)
    await add_repo(pool, "shop")
    await _say(bot, deps, "/new")
    await _say(bot, deps, "/cancel")
    assert "cancelled" in fake_tg.last("sendMessage").params["text"]
    await _say(bot, deps, "Not a task any more")  # no dialog: plain text is ignored
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0


async def test_tasks_pages_back_with_a_button(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool)
    for n in range(1, 11):
        await add_task(pool, repo, f"task number {n}")
    await _say(bot, deps, "/tasks")
    first = fake_tg.last("sendMessage")
    assert "SHOP-10" in first.params["text"]
    assert "SHOP-3" in first.params["text"]
    assert "SHOP-2" not in first.params["text"]
    older = first.params["reply_markup"]["inline_keyboard"][-1][0]["callback_data"]
    assert TaskPage.unpack(older).before > 0
    await _press(bot, deps, older)
    second = fake_tg.last("sendMessage").params["text"]
    assert "SHOP-2" in second
    assert "SHOP-1" in second
    assert "SHOP-3" not in second
    await _say(bot, deps, "/tasks done")
    assert "No tasks (done)" in fake_tg.last("sendMessage").params["text"]
    await _say(bot, deps, "/tasks bogus")
    assert "Unknown status" in fake_tg.last("sendMessage").params["text"]


async def test_task_card_shows_state_and_buttons(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool)
    task = await add_task(pool, repo, status=TaskStatus.FAILED)
    await _say(bot, deps, f"/task {task.key.lower()}")
    sent = fake_tg.last("sendMessage")
    assert "failed" in sent.params["text"]
    assert "Attempts: 0" in sent.params["text"]
    buttons = [b["text"] for row in sent.params["reply_markup"]["inline_keyboard"] for b in row]
    assert any("Retry" in b for b in buttons)
    assert any("Log" in b for b in buttons)
    await _say(bot, deps, "/task NOPE-9")
    assert "No task" in fake_tg.last("sendMessage").params["text"]
    await _say(bot, deps, "/task")
    assert "Usage" in fake_tg.last("sendMessage").params["text"]


async def test_cancel_of_a_queued_task_is_immediate_and_recorded(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool)
    by_command = await add_task(pool, repo)
    by_button = await add_task(pool, repo)
    await _say(bot, deps, f"/cancel {by_command.key}")
    assert "cancelled" in fake_tg.last("sendMessage").params["text"]
    card = fake_tg.add_message(ALICE, "card")
    await _press(bot, deps, TaskAction(action="cancel", task_id=by_button.id).pack(), message=card)
    assert "cancelled" in fake_tg.last("answerCallbackQuery").params["text"]
    assert "cancelled" in fake_tg.messages(ALICE)[-1]["text"]  # the card was refreshed
    for task, via in ((by_command, "command"), (by_button, "button")):
        assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.CANCELLED
        events = await TaskEventRepo(pool).for_task(task.id)
        action = next(e for e in events if e.kind.value == "operator_action")
        assert action.payload == {"action": "cancel", "via": via, "user_id": ALICE,
                                  "name": "Ada Lovelace"}  # fmt: skip
        assert events[-1].kind.value == "task_cancelled"
    await _say(bot, deps, f"/cancel {by_command.key}")  # twice: politely refused
    assert "cannot be cancelled" in fake_tg.last("sendMessage").params["text"]


async def test_cancel_of_a_running_task_asks_the_worker(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    task = await add_task(pool, await add_repo(pool), status=TaskStatus.RUNNING)
    heard: asyncio.Queue[str] = asyncio.Queue()

    def listen(*args: object) -> None:
        heard.put_nowait(str(args[3]))

    async with pool.acquire() as conn:
        await conn.add_listener("task_cancel", listen)
        await _say(bot, deps, f"/cancel {task.key}")
        assert await asyncio.wait_for(heard.get(), timeout=5) == str(task.id)
        await conn.remove_listener("task_cancel", listen)
    moved = await TaskRepo(pool).by_id(task.id)
    assert moved.status is TaskStatus.RUNNING
    assert moved.cancel_requested_at is not None
    assert moved.cancel_requested_by == "Ada Lovelace (1001)"
    assert "Stopping" in fake_tg.last("sendMessage").params["text"]


async def test_retry_requeues_a_failed_task_and_refuses_a_queued_one(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool)
    failed = await add_task(pool, repo, status=TaskStatus.FAILED)
    queued = await add_task(pool, repo)
    await _say(bot, deps, f"/retry {failed.key}")
    assert "queued again" in fake_tg.last("sendMessage").params["text"]
    assert (await TaskRepo(pool).by_id(failed.id)).status is TaskStatus.QUEUED
    await _press(bot, deps, TaskAction(action="retry", task_id=queued.id).pack())
    answer = fake_tg.last("answerCallbackQuery").params
    assert "cannot be retried" in answer["text"]
    assert answer["show_alert"] is True
    jobs = await pool.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'queued'")
    assert jobs == 3  # the two originals and the retry


def _outcome(output: str) -> RunOutcome:
    return RunOutcome(ok=False, exit_code=1, session_id=None, cost_usd=None, turns=None,
                      duration_seconds=1.0, error_class="agent_error", error_message="",
                      output_tail=output)  # fmt: skip


async def test_log_is_inline_when_short_and_a_file_when_long(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    task = await add_task(pool, await add_repo(pool), status=TaskStatus.RUNNING)
    runs = TaskRunRepo(pool)
    run_id = await runs.start(task.id, phase="attempt", attempt=1, backend="command", model=None)
    await runs.finish(run_id, _outcome("<boom> & bust"))
    await _say(bot, deps, f"/log {task.key}")
    text = fake_tg.last("sendMessage").params["text"]
    assert text.startswith("<pre>")
    assert "&lt;boom&gt; &amp; bust" in text
    long_run = await runs.start(task.id, phase="attempt", attempt=2, backend="command", model=None)
    await runs.finish(long_run, _outcome("line\n" * 2000))
    await _press(bot, deps, TaskAction(action="log", task_id=task.id).pack(),
                 message=fake_tg.add_message(ALICE, "card"))  # fmt: skip
    document = fake_tg.last("sendDocument")
    name, content = document.files["document"]
    assert name == f"{task.key}-log.txt"
    assert content.count(b"line") == 2000


async def test_status_pause_resume_and_repos(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool, "shop", test_command="pytest -q")
    await add_task(pool, repo, status=TaskStatus.RUNNING)
    await add_task(pool, repo)
    await add_task(pool, repo, status=TaskStatus.DONE)
    await _say(bot, deps, "/status")
    text = fake_tg.last("sendMessage").params["text"]
    assert "Active: 1 · Queued: 1" in text
    assert "1 done" in text
    assert "SHOP-1" in text
    await _say(bot, deps, "/pause")
    assert await WorkerStateRepo(pool).paused()
    await _say(bot, deps, "/status")
    assert "Paused" in fake_tg.last("sendMessage").params["text"]
    await _say(bot, deps, "/resume")
    assert not await WorkerStateRepo(pool).paused()
    await _say(bot, deps, "/repos")
    assert "shop" in fake_tg.last("sendMessage").params["text"]
    assert "test" in fake_tg.last("sendMessage").params["text"]


async def test_a_button_for_a_task_that_is_gone_is_answered_politely(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    await _press(bot, make_deps(pool), TaskAction(action="retry", task_id=99999).pack())
    assert "out of date" in fake_tg.last("answerCallbackQuery").params["text"]


async def test_patches_button_sends_the_series_as_the_end_of_the_task_did(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool)
    done = await add_task(pool, repo, status=TaskStatus.DONE)
    upstream = make_repo(tmp_path / "up", {"README.md": "hello\n"})
    commit_file(upstream, "a.txt", "one\n", "Add a")
    commit_file(upstream, "b.txt", "two\n", "Add b")
    mbox = git(upstream, "format-patch", "--stdout", "HEAD~2").encode()
    artifacts = ArtifactRepo(pool)
    await artifacts.put(done.id, ArtifactKind.MBOX, "combined.mbox", mbox)
    await artifacts.put(done.id, ArtifactKind.PATCH, "0002-second.patch", b"two\n")
    await artifacts.put(done.id, ArtifactKind.PATCH, "0001-first.patch", b"one\n")
    card = fake_tg.add_message(ALICE, "card")
    await _press(bot, deps, TaskAction(action="patches", task_id=done.id).pack(), message=card)
    (whole,) = fake_tg.sent("sendDocument")
    assert whole.files["document"] == (f"{done.key}.mbox", mbox)
    caption = whole.params["caption"]
    assert "2 commit(s), 2 file(s) changed, +2 -0" in caption
    assert f"git am --3way {done.key}.mbox" in caption

    monkeypatch.setattr(tasks_router, "DOCUMENT_LIMIT", len(mbox) - 1)  # over Telegram's limit
    await _press(bot, deps, TaskAction(action="patches", task_id=done.id).pack(), message=card)
    per_commit = fake_tg.sent("sendDocument")[1:]
    assert [c.files["document"] for c in per_commit] == [
        ("0001-first.patch", b"one\n"),
        ("0002-second.patch", b"two\n"),
    ]
    assert "patch 1 of 2" in per_commit[0].params["caption"]

    monkeypatch.setattr(tasks_router, "DOCUMENT_LIMIT", 3)  # even one commit is too big
    await _press(bot, deps, TaskAction(action="patches", task_id=done.id).pack(), message=card)
    assert len(fake_tg.sent("sendDocument")) == 3  # nothing more was sent as a file
    assert f"devserver task mbox {done.key}" in fake_tg.last("sendMessage").params["text"]
    failed = await add_task(pool, repo, status=TaskStatus.FAILED)
    await _press(bot, deps, TaskAction(action="patches", task_id=failed.id).pack(), message=card)
    assert "has no patches" in fake_tg.last("sendMessage").params["text"]


async def test_guided_new_offers_pr_and_direct_and_refuses_a_forged_flow(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    shop = await add_repo(pool, "shop")
    await _say(bot, deps, "/new")
    pick = fake_tg.messages(ALICE)[-1]
    await _press(bot, deps, NewStep(field="repo", value=str(shop.id)).pack(), message=pick)
    await _say(bot, deps, "Add a health endpoint")
    step = fake_tg.messages(ALICE)[-1]
    await _press(bot, deps, NewStep(field="mode", value="autonomous").pack(), message=step)
    shown = fake_tg.messages(ALICE)[-1]
    assert "PR: the branch agent/KEY pushed to the repository (no forge)." in shown["text"]
    assert "Direct: rebased onto main and pushed there (never forced)." in shown["text"]
    rows = shown["reply_markup"]["inline_keyboard"]
    steps = [NewStep.unpack(b["callback_data"]) for row in rows for b in row]
    assert [s.value for s in steps if s.field == "flow"] == ["patch", "pr", "direct"]
    await _press(bot, deps, NewStep(field="flow", value="force").pack(), message=step)
    assert fake_tg.last("answerCallbackQuery").params["text"] == "Unknown choice."
    await _press(bot, deps, NewStep(field="flow", value="pr").pack(), message=step)
    await _press(bot, deps, NewStep(field="budget", value="none").pack(), message=step)
    await _press(bot, deps, NewStep(field="confirm", value="yes").pack(), message=step)
    task = await TaskRepo(pool).by_key("SHOP-1")
    assert task.git_flow == "pr"
