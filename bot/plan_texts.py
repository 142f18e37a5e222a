"""What the plan review says: the plan itself, reminders, and answers to decisions."""

from __future__ import annotations

from bot.event_texts import clip
from bot.texts import esc
from storage.tasks import Task


def plan_message(task: Task) -> str:
    """The plan for review: summary, numbered steps, files, risks; one line per item, so a
    long plan splits cleanly over several messages."""
    plan = task.plan or {}
    head = (f"🧭 <b>{esc(task.key)}</b> {esc(clip(task.title, 200))}\n"
            f"<b>Plan, round {task.plan_round}</b>")  # fmt: skip
    if not plan.get("ok"):
        raw = str(plan.get("raw", "")).strip()
        lines = [
            head,
            f"⚠️ The plan could not be read: {esc(clip(str(plan.get('error', '?')), 300))}",
        ]
        if raw:
            lines += ["", "The agent wrote:", f"<i>{esc(clip(' '.join(raw.split()), 1500))}</i>"]
        return "\n".join([*lines, "", "Re-plan to try again, or reject."])
    lines = [head, esc(clip(str(plan.get("summary", "")), 1000))]
    if plan.get("approach"):
        lines += ["", f"<b>Approach</b>: {esc(clip(str(plan['approach']), 1000))}"]
    lines += ["", "<b>Steps</b>"]
    lines += [
        f"{n}. {esc(clip(str(step), 500))}" for n, step in enumerate(plan.get("steps", []), 1)
    ]
    lines += ["", "<b>Files it may change</b>"]
    lines += [f"• <code>{esc(clip(str(f), 200))}</code>" for f in plan.get("files_to_touch", [])]
    if plan.get("risks"):
        lines += ["", "<b>Risks</b>"]
        lines += [f"• {esc(clip(str(r), 300))}" for r in plan["risks"]]
    if plan.get("acceptance_check"):
        lines += ["", f"<b>Done when</b>: {esc(clip(str(plan['acceptance_check']), 600))}"]
    return "\n".join(lines)


def plan_reminder(task: Task) -> str:
    return (
        f"⏰ <b>{esc(task.key)}</b> {esc(clip(task.title, 200))}\nIts plan (round "
        f"{task.plan_round}) still waits for your decision."
    )


def plan_decided(task: Task, decision: str, by: str) -> str:
    """Appended to the plan message once decided (its buttons go)."""
    mark = {"approve": "✅ Approved", "reject": "⛔ Rejected", "revise": "✏️ Sent back"}[decision]
    return f"{mark} by {esc(by)}."


PLAN_STALE = "This plan was already decided, or a newer one replaced it."
PLAN_UNREADABLE = "This plan could not be read, so there is nothing to approve: Re-plan instead."
PLAN_ASK_FEEDBACK = (
    "✏️ What should change in the plan for <b>{key}</b>? Send it as your next message here."
)


def plan_revising(task: Task) -> str:
    return f"✏️ <b>{esc(task.key)}</b>: planning again with your feedback."
