"""Issue 4's budget journey, for real: bot and worker against the fake Bot API. A task whose
agent never stops hits its working-time limit: the 80% warning arrives with Extend
buttons, then the stop with its partial work as an mbox and Extend & resume; pressing it
raises the limit and the task finishes on the same branch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.bot.updates import callback_update, message_update
from tests.bot.world import ALICE, Pool, add_repo, bot_and_worker
from tests.fakes.telegram import Call, FakeTelegram
from tests.gitrepos import apply_mbox, make_repo
from tests.worker.running import Sequence


def _says(text: str) -> Callable[[Call], bool]:
    return lambda call: text in str(call.params.get("text") or call.params.get("caption"))


def _button(call: Call, label: str) -> str:
    rows = call.params["reply_markup"]["inline_keyboard"]
    return str(next(b["callback_data"] for row in rows for b in row if label in b["text"]))


async def test_a_task_stopped_by_its_budget_is_extended_and_resumed_from_telegram(
    fake_tg: FakeTelegram, tg_url: str, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "up", {"README.md": "# Shop\n"})
    agent = Sequence(tmp_path, [
        {"write": {"partial.txt": "partial work\n"}, "hang": True},  # never ends
        {"write": {"done.txt": "done\n"}},
    ])  # fmt: skip
    await add_repo(pool, "shop", str(upstream), agent_backend="command",
                   agent_command=agent.command, max_attempts=1, max_wall_seconds=3)  # fmt: skip
    async with bot_and_worker(tg_url, db_dsn, tmp_path / "home"):
        fake_tg.push_update(message_update("/new shop Never finishes alone", user_id=ALICE))
        [warning] = await fake_tg.wait_for(
            "sendMessage", timeout=30, where=_says("80% of its wall")
        )
        assert "Extend +50%" in str(warning.params["reply_markup"])
        [stopped] = await fake_tg.wait_for(
            "sendMessage", timeout=30, where=_says("Stopped at its budget")
        )
        [partial] = await fake_tg.wait_for("sendDocument", timeout=30)
        assert b"+partial work" in partial.files["document"][1]
        assert (await TaskRepo(pool).by_key("SHOP-1")).status is TaskStatus.BLOCKED

        message = next(m for m in fake_tg.messages(ALICE) if "Stopped at" in m["text"])
        data = _button(stopped, "Extend 100% & resume")
        fake_tg.push_update(callback_update(data, user_id=ALICE, message=message))
        await fake_tg.wait_for("sendMessage", timeout=30, where=_says("Done."))
        [_, final] = await fake_tg.wait_for("sendDocument", count=2, timeout=30)

    task = await TaskRepo(pool).by_key("SHOP-1")
    assert task.status is TaskStatus.DONE
    assert task.max_wall_seconds == 6  # the repo's 3 s, adopted, then doubled
    clone = apply_mbox(upstream, final.files["document"][1], tmp_path / "mine")
    assert (clone / "partial.txt").exists()  # the same branch went on
    assert (clone / "done.txt").exists()
