"""Issue 4's plan journey, for real: bot (polling, outbox) and worker against the fake Bot
API. Plan with three buttons → Revise with feedback → a new plan → Approve → implement under
the contract → a file outside the plan is sent back once → done, mbox delivered."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.callbacks import NewStep
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.bot.updates import callback_update, message_update
from tests.bot.world import ALICE, Pool, add_repo, bot_and_worker
from tests.fakes.telegram import Call, FakeTelegram
from tests.gitrepos import apply_mbox, make_repo
from tests.worker.running import Planner


def _plan(summary: str, files: list[str]) -> str:
    plan = {
        "summary": summary,
        "approach": "Small.",
        "steps": ["Write it", "Check it"],
        "files_to_touch": files,
        "risks": [],
        "acceptance_check": "hello.txt is there",
    }
    return f"Here is my plan:\n```json\n{json.dumps(plan)}\n```"


async def _press(fake: FakeTelegram, plan_message: Call, action: str) -> None:
    [button] = [b for row in plan_message.params["reply_markup"]["inline_keyboard"] for b in row
                if action in b["text"]]  # fmt: skip
    stored = next(m for m in fake.messages(ALICE) if m["text"].startswith("🧭"))
    fake.push_update(callback_update(button["callback_data"], user_id=ALICE, message=stored))


def _plans(fake: FakeTelegram) -> list[Call]:
    return fake.sent("sendMessage") and [
        c for c in fake.sent("sendMessage") if "Plan, round" in c.params["text"]
    ]


def _says(text: str) -> Callable[[Call], bool]:
    return lambda call: text in call.params["text"]


async def _new_interactive_task(fake: FakeTelegram) -> None:
    """The guided /new: (one repo, so no repo step) text → interactive → patch → confirm."""
    fake.push_update(message_update("/new", user_id=ALICE))
    await fake.wait_for("sendMessage", where=_says("Send the task"))
    fake.push_update(message_update("Greet people\nA greeting file, please.", user_id=ALICE))
    await fake.wait_for("sendMessage", where=_says("How should it run"))
    dialog = next(m for m in fake.messages(ALICE) if m["text"].startswith("How should it run"))
    for field, value, then in (("mode", "interactive", "What should happen"),
                               ("flow", "patch", "A budget for this task"), ("budget", "", "Mode:"),
                               ("confirm", "yes", "SHOP-1")):  # fmt: skip
        data = NewStep(field=field, value=value).pack()
        fake.push_update(callback_update(data, user_id=ALICE, message=dialog))
        await fake.wait_for("editMessageText", where=_says(then))


async def test_plan_revise_approve_scope_and_done_from_telegram(
    fake_tg: FakeTelegram, tg_url: str, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "up", {"README.md": "# Shop\n"})
    planner = Planner(
        tmp_path,
        plans=[_plan("Write a greeting", ["hello.txt"]),
               _plan("Write a greeting, logged", ["hello.txt", "log.txt"])],
        implement=[{"write": {"hello.txt": "hello\n", "log.txt": "log\n", "extra.txt": "x\n"}},
                   {"write": {"hello.txt": "hello\n"}, "delete": ["extra.txt"]}],
    )  # fmt: skip
    await add_repo(pool, "shop", str(upstream), agent_backend="command",
                   agent_command=planner.command, test_command="test -f hello.txt")  # fmt: skip
    async with bot_and_worker(tg_url, db_dsn, tmp_path / "home"):
        await fake_tg.wait_for("setMyCommands")
        await _new_interactive_task(fake_tg)
        await fake_tg.wait_for("sendMessage", timeout=30,
                               where=lambda c: "Plan, round 1" in c.params["text"])  # fmt: skip
        first = _plans(fake_tg)[0]
        buttons = [b["text"] for r in first.params["reply_markup"]["inline_keyboard"] for b in r]
        assert [b.split()[-1] for b in buttons] == ["Approve", "Revise", "Reject"]

        await _press(fake_tg, first, "Revise")
        await fake_tg.wait_for("sendMessage", where=lambda c: "What should change" in
                               c.params["text"])  # fmt: skip
        fake_tg.push_update(message_update("Please also log each greeting", user_id=ALICE))
        await fake_tg.wait_for("sendMessage", timeout=30,
                               where=lambda c: "Plan, round 2" in c.params["text"])  # fmt: skip
        second = _plans(fake_tg)[-1]
        assert "<code>log.txt</code>" in second.params["text"]
        assert "Please also log each greeting" in planner.calls("plan")[1]["prompt"]

        await _press(fake_tg, second, "Approve")
        document = (await fake_tg.wait_for("sendDocument", timeout=60))[0]

    task = await TaskRepo(pool).by_key("SHOP-1")
    assert task.status is TaskStatus.DONE
    assert task.plan_decided_by == "Ada Lovelace (1001)"
    implement: list[dict[str, Any]] = planner.calls("implement")
    assert len(implement) == 2  # sent back once for extra.txt
    assert "log.txt" in implement[0]["prompt"]  # the approved plan is the contract
    assert "extra.txt" in implement[1]["prompt"]
    clone = apply_mbox(upstream, document.files["document"][1], tmp_path / "mine")
    assert (clone / "hello.txt").read_text() == "hello\n"
    assert (clone / "log.txt").exists()
    assert not (clone / "extra.txt").exists()  # outside the plan: the agent had to remove it
