"""/idea and /ideas through the real dispatcher (middleware, routers, FSM storage in
PostgreSQL) against the fake Bot API: buttons are pressed on the messages the bot sent, and
every step goes through a new dispatcher, as after a restart."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot

from bot.app import build_dispatcher, run_bot
from bot.callbacks import IdeaAction, IdeaConvert, TaskOpen
from bot.deps import BotDeps
from storage.ideas import IdeaRepo
from storage.task_events import record_move
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.bot.updates import as_update, callback_update, message_update
from tests.bot.world import ALICE, MALLORY, Pool, add_repo, make_deps, settings
from tests.fakes.telegram import Call, FakeTelegram

JSON = dict[str, Any]


async def _say(bot: Bot, deps: BotDeps, text: str, user: int = ALICE) -> None:
    await build_dispatcher(deps).feed_update(
        bot, as_update(message_update(text, user_id=user), bot)
    )


async def _press(bot: Bot, deps: BotDeps, data: str, message: JSON | None = None,
                 user: int = ALICE) -> None:  # fmt: skip
    update = callback_update(data, user_id=user, message=message)
    await build_dispatcher(deps).feed_update(bot, as_update(update, bot))


def _last(fake: FakeTelegram) -> JSON:
    return fake.messages(ALICE)[-1]


def _labels(message: JSON) -> list[str]:
    return [b["text"] for row in message.get("reply_markup", {}).get("inline_keyboard", [])
            for b in row]  # fmt: skip


def _button(message: JSON, label: str) -> str:
    """The callback data of the button whose text contains `label`."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    found = [b["callback_data"] for row in rows for b in row if label in b["text"]]
    assert len(found) == 1, f"{label!r} in {_labels(message)}"
    return str(found[0])


async def _tap(bot: Bot, deps: BotDeps, fake: FakeTelegram, label: str,
               message: JSON | None = None) -> JSON:  # fmt: skip
    """Press a button on `message` (the bot's last message) and return that message after."""
    message = message or _last(fake)
    await _press(bot, deps, _button(message, label), message)
    return next(m for m in fake.messages(ALICE) if m["message_id"] == message["message_id"])


def _alert(fake: FakeTelegram) -> str:
    return str(fake.last("answerCallbackQuery").params.get("text", ""))


async def test_an_idea_becomes_a_task_with_defaults_and_its_card_follows_the_task(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    await add_repo(pool, "shop")
    await add_repo(pool, "api")
    await _say(bot, deps, "/idea Dark <mode> & more\nUse `prefers-color-scheme`.\n\n- toggle")
    card = _last(fake_tg)
    assert card["text"].startswith("💡 Saved.")
    assert "Dark <mode> & more" in card["text"]  # escaped for HTML, shown as typed
    assert "- toggle" in card["text"]
    assert "📂 Ideas" in card["text"]

    card = await _tap(bot, deps, fake_tg, "Convert to task", card)
    assert "Which repository?" in card["text"]
    assert _labels(card)[:2] == ["api", "shop"]
    card = await _tap(bot, deps, fake_tg, "shop", card)
    assert "a task in shop" in card["text"]
    assert _labels(card)[0] == "✅ Create with defaults"
    assert "✓ 🤖 Autonomous" in _labels(card)
    assert "✓ 📦 Patch" in _labels(card)
    card = await _tap(bot, deps, fake_tg, "Create with defaults", card)

    task = await TaskRepo(pool).by_key("SHOP-1")
    idea = (await IdeaRepo(pool).all())[0]
    assert task.title == "Dark <mode> & more"
    assert task.description == "Use `prefers-color-scheme`.\n\n- toggle"
    assert (task.mode, task.git_flow, task.status) == ("autonomous", "patch", TaskStatus.QUEUED)
    assert (task.idea_id, idea.task_id) == (idea.id, task.id)
    assert (task.created_by, task.chat_id) == ("Ada Lovelace (1001)", ALICE)
    assert await pool.fetchval("SELECT count(*) FROM pgqueuer WHERE entrypoint = 'run_task'") == 1
    assert _alert(fake_tg) == "SHOP-1 queued"
    assert "Task SHOP-1 created and queued" in card["text"]
    assert "Task: 🕓 SHOP-1 · queued" in card["text"]
    assert TaskOpen(task_id=task.id).pack() == _button(card, "Task SHOP-1")

    for step in (TaskStatus.PREPARING, TaskStatus.RUNNING):
        await TaskRepo(pool).move(task.id, step)
    card = await _tap(bot, deps, fake_tg, "Refresh", card)
    assert "Task: 🤖 SHOP-1 · running" in card["text"]
    assert "Convert" not in " ".join(_labels(card))

    # the old Create button again: no second task
    again = IdeaConvert(idea_id=idea.id, repo_id=task.repo_id, go=True).pack()
    await _press(bot, deps, again, card)
    assert "already task SHOP-1" in _alert(fake_tg)
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1


async def test_the_running_bot_sends_the_task_card_and_the_idea_card_follows_the_task(
    fake_tg: FakeTelegram, tg_url: str, db_dsn: str, pool: Pool
) -> None:
    """The real bot (long polling, outbox): the task card comes from the outbox, and the
    idea card shows the task as it is when refreshed."""
    await add_repo(pool, "shop")
    stop = asyncio.Event()
    service = asyncio.create_task(run_bot(settings(api_base_url=tg_url), db_dsn, stop))

    async def tap(label: str, message: JSON) -> None:
        """Press and wait until the bot has edited that message."""

        def edits_it(call: Call) -> bool:
            return bool(call.params.get("message_id") == message["message_id"])

        count = len([c for c in fake_tg.sent("editMessageText") if edits_it(c)])
        fake_tg.push_update(callback_update(_button(message, label), user_id=ALICE,
                                            message=message))  # fmt: skip
        await fake_tg.wait_for("editMessageText", count + 1, where=edits_it)

    try:
        fake_tg.push_update(message_update("/idea Footer links\nAdd the imprint.", user_id=ALICE))
        await fake_tg.wait_for("sendMessage", where=lambda c: "Saved" in c.params["text"])
        card = _last(fake_tg)
        await tap("Convert to task", card)
        await tap("Create with defaults", _last(fake_tg))
        cards = await fake_tg.wait_for("sendMessage", where=lambda c: "Status" in c.params["text"])
        assert "SHOP-1" in cards[0].params["text"]
        assert cards[0].params["disable_notification"] is True
        task = await TaskRepo(pool).by_key("SHOP-1")
        for step in (TaskStatus.PREPARING, TaskStatus.RUNNING, TaskStatus.DELIVERING,
                     TaskStatus.DONE):  # fmt: skip
            async with pool.acquire() as conn, conn.transaction():
                task = await record_move(conn, task, step)
        await fake_tg.wait_for("sendMessage", where=lambda c: "Done" in c.params["text"])
        await tap("Refresh", card)
    finally:
        stop.set()
        await asyncio.wait_for(service, timeout=30)
    card = next(m for m in fake_tg.messages(ALICE) if m["message_id"] == card["message_id"])
    assert "Task: ✅ SHOP-1 · done" in card["text"]
    assert "Footer links" in card["text"]


async def test_convert_with_one_repo_skips_the_pick_and_takes_the_choices(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    await add_repo(pool, "shop")
    await _say(bot, deps, "/idea Rate-limit the login")
    card = await _tap(bot, deps, fake_tg, "Convert to task")
    assert "a task in shop" in card["text"]
    assert "Other repository" not in " ".join(_labels(card))
    card = await _tap(bot, deps, fake_tg, "Interactive", card)
    card = await _tap(bot, deps, fake_tg, "PR", card)
    assert "✓ 🧭 Interactive" in _labels(card)
    assert _labels(card)[0] == "✅ Create: interactive · pr"
    await _tap(bot, deps, fake_tg, "Create:", card)
    task = await TaskRepo(pool).by_key("SHOP-1")
    assert (task.mode, task.git_flow, task.title) == ("interactive", "pr", "Rate-limit the login")


async def test_folders_new_open_up_and_idea_saved_in_the_current_folder(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    await _say(bot, deps, "/ideas")
    root = _last(fake_tg)
    assert "Empty" in root["text"]
    await _tap(bot, deps, fake_tg, "New folder", root)
    assert "Send its name" in _last(fake_tg)["text"]
    await _say(bot, deps, "Back<log>")
    listing = _last(fake_tg)
    assert "Back<log> created" in listing["text"]
    assert "📁 Back<log>" in _labels(listing)

    await _tap(bot, deps, fake_tg, "New folder", listing)
    await _say(bot, deps, "back<LOG>")
    assert "already a folder" in _last(fake_tg)["text"]  # the prompt stays
    await _say(bot, deps, "/cancel")
    assert _last(fake_tg)["text"] == "No new folder."
    await _say(bot, deps, "Not a folder any more")  # no prompt: plain text is ignored
    assert len(await IdeaRepo(pool).all()) == 1

    listing = await _tap(bot, deps, fake_tg, "📁 Back<log>", listing)
    assert "📂 Ideas / Back<log>" in listing["text"]
    await _tap(bot, deps, fake_tg, "New folder", listing)
    await _say(bot, deps, "  web\n front  ")  # one line: whitespace folds
    assert "📁 web front" in _labels(_last(fake_tg))
    await _say(bot, deps, "/idea Saved where I looked last")  # the current folder is Back<log>
    card = _last(fake_tg)
    assert "📂 Ideas / Back<log>" in card["text"]

    listing = await _tap(bot, deps, fake_tg, "Back<log>", card)  # back to its folder
    assert "1 folder(s) · 1 idea(s)" in listing["text"]
    listing = await _tap(bot, deps, fake_tg, "Up", listing)
    assert "Back<log>" not in listing["text"]
    await _say(bot, deps, "/idea At the root now")
    newest = max(await IdeaRepo(pool).all(), key=lambda i: i.id)
    assert (newest.title, newest.parent_id) == ("At the root now", None)


async def test_long_folders_page(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    deps = make_deps(pool)
    ideas = IdeaRepo(pool)
    for n in range(25):
        await ideas.add(None, f"idea {n:02d}")
    await _say(bot, deps, "/ideas")
    listing = _last(fake_tg)
    assert "page 1 of 2" in listing["text"]
    assert "💡 idea 19" in _labels(listing)
    listing = await _tap(bot, deps, fake_tg, "Next", listing)
    assert "page 2 of 2" in listing["text"]
    assert "💡 idea 24" in _labels(listing)
    assert "💡 idea 19" not in _labels(listing)


async def test_move_an_idea_and_a_folder_but_never_into_itself(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    ideas = IdeaRepo(pool)
    backlog = await ideas.add_folder(None, "Backlog")
    web = await ideas.add_folder(backlog.id, "Web")
    later = await ideas.add_folder(None, "Later")
    idea = await ideas.add(None, "Footer")

    await _press(bot, deps, IdeaAction(action="show", idea_id=idea.id).pack(),
                 fake_tg.add_message(ALICE, "…"))  # fmt: skip
    picker = await _tap(bot, deps, fake_tg, "Move")
    assert "Move 💡 Footer" in picker["text"]
    assert {"📁 Backlog", "📁 Later"} <= set(_labels(picker))
    picker = await _tap(bot, deps, fake_tg, "📁 Backlog", picker)
    picker = await _tap(bot, deps, fake_tg, "📁 Web", picker)
    assert "Showing: 📂 Ideas / Backlog / Web" in picker["text"]
    card = await _tap(bot, deps, fake_tg, "Move here", picker)
    assert "Moved to 📂 Ideas / Backlog / Web" in card["text"]
    assert (await ideas.by_id(idea.id)).parent_id == web.id

    await _say(bot, deps, "/ideas")  # the root (no folder opened yet)
    listing = await _tap(bot, deps, fake_tg, "📁 Backlog")
    picker = await _tap(bot, deps, fake_tg, "Move", listing)
    assert "📁 Backlog" not in _labels(picker)  # it cannot go into itself
    picker = await _tap(bot, deps, fake_tg, "📁 Later", picker)
    listing = await _tap(bot, deps, fake_tg, "Move here", picker)
    assert "📂 Ideas / Later / Backlog" in listing["text"]
    assert (await ideas.by_id(backlog.id)).parent_id == later.id

    forged = IdeaAction(action="mvto", idea_id=backlog.id, arg=web.id).pack()  # into its child
    await _press(bot, deps, forged, listing)
    assert _alert(fake_tg) == "A folder cannot go inside itself or a folder below it."
    assert (await ideas.by_id(backlog.id)).parent_id == later.id


async def test_delete_asks_first_and_refuses_a_folder_with_things_in_it(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    ideas = IdeaRepo(pool)
    folder = await ideas.add_folder(None, "Backlog")
    idea = await ideas.add(folder.id, "Footer")
    await ideas.add_folder(folder.id, "Sub")

    await _press(bot, deps, IdeaAction(action="ls", idea_id=folder.id).pack(),
                 fake_tg.add_message(ALICE, "…"))  # fmt: skip
    listing = await _tap(bot, deps, fake_tg, "Delete")
    alert = fake_tg.last("answerCallbackQuery").params
    assert alert["show_alert"] is True
    assert alert["text"].startswith("📁 Backlog is not empty: 1 folder(s), 1 idea(s) (Sub, Footer)")
    assert "Delete" in " ".join(_labels(listing))  # the listing is unchanged

    card = await _tap(bot, deps, fake_tg, "Footer", listing)
    question = await _tap(bot, deps, fake_tg, "Delete", card)
    assert "Delete the idea Footer?" in question["text"]
    card = await _tap(bot, deps, fake_tg, "Keep it", question)
    assert card["text"].startswith("💡 Footer")
    question = await _tap(bot, deps, fake_tg, "Delete", card)
    listing = await _tap(bot, deps, fake_tg, "Yes, delete", question)
    assert "Deleted Footer" in listing["text"]
    assert "📂 Ideas / Backlog" in listing["text"]

    forged = IdeaAction(action="rm", idea_id=folder.id).pack()  # past the question: refused too
    await _press(bot, deps, forged, listing)
    assert "is not empty" in _alert(fake_tg)
    sub = await _tap(bot, deps, fake_tg, "📁 Sub", listing)
    question = await _tap(bot, deps, fake_tg, "Delete", sub)
    assert "Delete the empty folder Sub?" in question["text"]
    listing = await _tap(bot, deps, fake_tg, "Yes, delete", question)
    assert "Deleted Sub" in listing["text"]
    assert [i.title for i in await ideas.all()] == ["Backlog"]
    await _press(bot, deps, IdeaAction(action="rm", idea_id=idea.id).pack(), listing)
    assert _alert(fake_tg) == "That idea is gone."


async def test_stale_and_forged_buttons_are_answered_and_change_nothing(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool, "shop")
    ideas = IdeaRepo(pool)
    idea = await ideas.add(None, "Footer")
    folder = await ideas.add_folder(None, "Backlog")
    message = fake_tg.add_message(ALICE, "…")
    cases = {
        IdeaAction(action="show", idea_id=999).pack(): "That idea is gone.",
        IdeaAction(action="show", idea_id=folder.id).pack(): "That idea is gone.",
        IdeaAction(action="ls", idea_id=idea.id).pack(): "That folder is gone.",
        IdeaAction(action="mv", idea_id=idea.id, arg=999).pack(): "That folder is gone.",
        IdeaAction(action="mvto", idea_id=idea.id, arg=idea.id).pack(): "That folder is gone.",
        IdeaAction(action="del", idea_id=999).pack(): "That idea is gone.",
        IdeaAction(action="new", idea_id=999).pack(): "That folder is gone.",
        IdeaConvert(idea_id=999, repo_id=repo.id, go=True).pack(): "That idea is gone.",
        IdeaConvert(idea_id=folder.id, repo_id=repo.id, go=True).pack(): "That idea is gone.",
        IdeaConvert(idea_id=idea.id, repo_id=999, go=True).pack(): "That repository is gone",
        "i:show:abc:0:0": "That button is out of date.",
        "i:zap:1:0:0": "That button is out of date.",
        f"ic:{idea.id}:{repo.id}:evil:patch:1": "That button is out of date.",
        "i:show:99999999999999999999:0:0": "That button is out of date.",
    }
    for data, answer in cases.items():
        await _press(bot, deps, data, message)
        assert _alert(fake_tg).startswith(answer), data
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
    assert [(i.title, i.parent_id) for i in await ideas.all()] == [("Backlog", None),
                                                                   ("Footer", None)]  # fmt: skip
    assert not fake_tg.sent("sendMessage")  # only answers: no apology, no stray message


async def test_bad_input_is_explained(bot: Bot, fake_tg: FakeTelegram, pool: Pool) -> None:
    deps = make_deps(pool)
    for text in ("/idea", "/idea   ", "/idea\n\n"):
        await _say(bot, deps, text)
        assert _last(fake_tg)["text"].startswith("Usage: /idea title")
    assert await IdeaRepo(pool).all() == []
    title = "word " * 60
    await _say(bot, deps, f"/idea {title}\nthe body")
    idea = (await IdeaRepo(pool).all())[0]
    assert len(idea.title) == 200
    assert idea.title.endswith("…")
    assert idea.body == f"{title.strip()}\n\nthe body"
    assert "clipped" in _last(fake_tg)["text"]
    await _press(bot, deps, IdeaConvert(idea_id=idea.id).pack(), _last(fake_tg))
    assert "No repositories yet" in _alert(fake_tg)  # nothing to convert into


async def test_a_stranger_gets_silence_and_changes_nothing(
    bot: Bot, fake_tg: FakeTelegram, pool: Pool
) -> None:
    deps = make_deps(pool)
    repo = await add_repo(pool, "shop")
    idea = await IdeaRepo(pool).add(None, "Mine")
    for text in ("/idea steal", "/ideas", "/idea"):
        await _say(bot, deps, text, user=MALLORY)
    for data in (IdeaAction(action="rm", idea_id=idea.id).pack(),
                 IdeaConvert(idea_id=idea.id, repo_id=repo.id, go=True).pack(),
                 IdeaAction(action="new", idea_id=0).pack()):  # fmt: skip
        await _press(bot, deps, data, user=MALLORY)
    assert fake_tg.calls == []
    assert [i.title for i in await IdeaRepo(pool).all()] == ["Mine"]
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
    assert await pool.fetchval("SELECT count(*) FROM bot_dialogs") == 0
