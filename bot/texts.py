"""Every user-facing string. All text from users, repos or agents goes through `esc`.

Messages use Telegram's HTML parse mode. Renderers clip user text *before* escaping, so an
escape sequence is never cut in half and a message never outgrows Telegram's limits.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from bot.event_texts import clip, clock, describe_event
from bot.mbox import MboxStats
from storage.repos import Repo
from storage.task_events import TaskEvent
from storage.task_runs import TaskRun
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskCounts

MESSAGE_LIMIT = 4096  # characters of visible text in one message
CAPTION_LIMIT = 1024

COMMANDS: tuple[tuple[str, str], ...] = (
    ("new", "Start a task: /new or /new REPO title"),
    ("tasks", "Recent tasks, optionally by status"),
    ("task", "A task's card: /task KEY"),
    ("cancel", "Stop a task: /cancel KEY"),
    ("retry", "Queue a failed task again: /retry KEY"),
    ("log", "The tail of a task's log: /log KEY"),
    ("repos", "Repositories tasks can run in"),
    ("budget", "A task's cost, time and turn limits: /budget KEY"),
    ("idea", "Save an idea: /idea title, the body on the next lines"),
    ("ideas", "Browse ideas and folders; make an idea a task"),
    ("status", "Running, queued, today's results and cost"),
    ("night", "Work through the backlog overnight: /night until 06:30, stop, status"),
    ("pause", "Stop taking new tasks (running ones finish)"),
    ("resume", "Take new tasks again"),
    ("help", "What this bot does"),
)

ICONS: dict[TaskStatus, str] = {
    TaskStatus.PENDING: "⏳",
    TaskStatus.QUEUED: "🕓",
    TaskStatus.PREPARING: "⚙️",
    TaskStatus.PLANNING: "🧭",
    TaskStatus.AWAITING_APPROVAL: "✋",
    TaskStatus.RUNNING: "🤖",
    TaskStatus.VERIFYING: "🧪",
    TaskStatus.DELIVERING: "📦",
    TaskStatus.DONE: "✅",
    TaskStatus.FAILED: "❌",
    TaskStatus.BLOCKED: "⛔",
    TaskStatus.CANCELLED: "🚫",
}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def plain(markup: str, limit: int = MESSAGE_LIMIT) -> str:
    """Our HTML as plain text, for places without parse mode (button answers)."""
    return clip(html.unescape(re.sub(r"<[^>]+>", "", markup)), limit)


def elapsed(task: Task, now: datetime | None = None) -> str:
    if task.started_at is None:
        return "not started"
    end = task.finished_at or now or datetime.now(UTC)
    seconds = int((end - task.started_at).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def money(amount: Decimal | float | None) -> str:
    return "$0.00" if amount is None else f"${Decimal(amount):.2f}"


def spent(task: Task) -> str:
    """What the task cost; with a subscription the agent reports no cost, so say so."""
    if task.cost_unknown:
        return "unknown (subscription)"
    return money(task.spent_cost_usd)


# -- help --------------------------------------------------------------------------------

HELP = (
    "<b>DevServer</b> runs coding tasks in your repositories with an AI agent, checks the "
    "result (build, tests, lint) and sends the commits back here as a patch series.\n\n"
    + "\n".join(f"/{name} — {esc(text)}" for name, text in COMMANDS)
    + "\n\nA task's card updates itself while it runs; you get a separate message when it "
    "is done, failed or needs you. Send <code>git am combined.mbox</code> in your "
    "checkout to apply a result."
)


# -- tasks ---------------------------------------------------------------------------------


def card(task: Task, repo: Repo, last: TaskEvent | None, attempts: int) -> str:
    """The status card: one message per task, edited in place while it runs."""
    lines = [
        f"{ICONS[task.status]} <b>{esc(task.key)}</b> · {esc(clip(task.title, 200))}",
        f"<i>{esc(repo.name)}</i> · {esc(task.mode)} · flow {esc(task.git_flow)}",
        "",
        f"Status: <b>{esc(task.status.value.replace('_', ' '))}</b>",
    ]
    if task.status_reason:
        lines.append(f"Reason: {esc(clip(task.status_reason, 400))}")
    budget = (
        f" of {money(task.max_cost_usd)}" if task.max_cost_usd and not task.cost_unknown else ""
    )
    lines += [
        f"Attempts: {attempts} · Cost: {spent(task)}{budget} · Elapsed: {elapsed(task)}",
        f"Last: {esc(describe_event(last))}",
    ]
    if task.status is TaskStatus.AWAITING_APPROVAL:
        lines.append(f"Waiting for your decision on its plan (round {task.plan_round}).")
    if task.cancel_requested_at and task.status is not TaskStatus.CANCELLED:
        lines.append(f"Cancel requested by {esc(task.cancel_requested_by or '?')}")
    return "\n".join(lines)


def task_line(task: Task) -> str:
    return (
        f"{ICONS[task.status]} <b>{esc(task.key)}</b> {esc(clip(task.title, 60))} "
        f"<i>({esc(task.status.value.replace('_', ' '))})</i>"
    )


def task_list(tasks: Sequence[Task], status: str | None) -> str:
    which = f" ({esc(status)})" if status else ""
    if not tasks:
        return f"No tasks{which}."
    return f"<b>Tasks{which}</b>\n" + "\n".join(task_line(t) for t in tasks)


def alert(task: Task, event: TaskEvent) -> str:
    """A loud message: the task ended, or needs someone."""
    head = f"{ICONS[task.status]} <b>{esc(task.key)}</b> {esc(clip(task.title, 200))}"
    p = event.payload
    reason = esc(clip(str(p.get("reason") or task.status_reason or ""), 1500))
    match event.kind.value:
        case "task_done":
            body = f"Done. {reason}" if reason else "Done."
        case "task_failed":
            body = f"Failed: {reason}"
        case "task_blocked" if "budget_exceeded" in p:
            body = f"Stopped at its budget: {reason}\nThe work so far is on branch " + (
                f"<code>{esc(task.branch or '?')}</code>; extend to go on from there.")  # fmt: skip
        case "task_blocked" if p.get("violations"):
            body = "Blocked by the preflight; nothing was pushed or sent:\n" + "\n".join(
                f"• {esc(clip(str(v.get('path', '?')), 120))}"
                + (f":{v['line']}" if v.get("line") else "")
                + f" ({esc(str(v.get('check', '?')))}): {esc(clip(str(v.get('detail', '')), 200))}"
                for v in p["violations"][:10]
            ) + (f"\n… and {int(p.get('count', 0)) - 10} more" if int(p.get("count", 0)) > 10
                 else "")  # fmt: skip
        case "task_blocked":
            body = f"Blocked: {reason}"
        case "task_cancelled":
            body = f"{reason[:1].upper()}{reason[1:]}." if reason else "Cancelled."
            if task.branch:
                body += f"\nPartial work is on branch <code>{esc(task.branch)}</code>."
        case "plan_pending":
            body = "A plan is waiting for your review."
        case "budget_warning":
            body = f"80% of its {esc(p.get('limit', 'budget'))} limit is used.\n" + budget(
                task).split("\n", 1)[1]  # fmt: skip
        case "rate_limit_backoff":
            body = (f"The model API refused the run ({esc(p.get('kind', 'rate limit'))}). "
                    f"It runs again at {esc(clock(p.get('resume_at')))} (in "
                    f"{_minutes(float(p.get('seconds') or 0))}); no attempt is used.")  # fmt: skip
        case _:
            body = esc(event.kind.value.replace("_", " "))
    cost = f"Cost {spent(task)} · {elapsed(task)}"
    return f"{head}\n{body}\n{cost}"


BUDGET_USAGE = (
    "Usage: <code>/budget KEY</code> to see it, or <code>/budget KEY cost 5</code>, "
    "<code>/budget KEY wall 45m</code>, <code>/budget KEY turns 80</code> "
    "(<code>off</code> removes the task's own limit)."
)


def _limit(name: str, spent: str, limit: str | None) -> str:
    return f"{name}: {spent} of {limit}" if limit else f"{name}: {spent} (no limit of its own)"


def _minutes(seconds: float) -> str:
    return f"{int(seconds) // 60}m {int(seconds) % 60:02d}s"


def budget(task: Task) -> str:
    """Spent against limits."""
    cost = money(task.max_cost_usd) if task.max_cost_usd else None
    wall = _minutes(task.max_wall_seconds) if task.max_wall_seconds else None
    turns = str(task.max_turns) if task.max_turns else None
    return "\n".join([
        f"💰 <b>{esc(task.key)}</b> {esc(clip(task.title, 200))}",
        _limit("Cost", spent(task), cost),
        _limit("Wall time", _minutes(task.spent_wall_seconds), wall),
        _limit("Turns", str(task.spent_turns), turns),
    ])  # fmt: skip


def budget_extended(task: Task) -> str:
    return f"💰 <b>{esc(task.key)}</b>: limits raised.\n" + budget(task).split("\n", 1)[1]


def mbox_caption(task: Task, stats: MboxStats, filename: str) -> str:
    subjects = "\n".join(f"• {esc(clip(s, 120))}" for s in stats.subjects[:5])
    more = f"\n… and {len(stats.subjects) - 5} more" if len(stats.subjects) > 5 else ""
    text = (
        f"<b>{esc(task.key)}</b>: {stats.commits} commit(s), {stats.files} file(s) changed, "
        f"+{stats.added} -{stats.removed}\n{subjects}{more}\n\n"
        f"Apply in your checkout:\n<code>git am --3way {esc(filename)}</code>"
    )
    if len(text) <= CAPTION_LIMIT:
        return text
    return (
        f"<b>{esc(task.key)}</b>: {stats.commits} commit(s), {stats.files} file(s), "
        f"+{stats.added} -{stats.removed}\n<code>git am --3way {esc(filename)}</code>"
    )


def split_patch_caption(task: Task, number: int, total: int) -> str:
    note = (
        " The whole series is over Telegram's 50 MB limit, so it comes per commit."
        if (number == 1)
        else ""
    )
    return (
        f"<b>{esc(task.key)}</b> patch {number} of {total}.{note} Apply them in order "
        f"with <code>git am --3way *.patch</code>."
    )


def too_big(task: Task, size: int, status_page_url: str | None) -> str:
    where = (
        f'Download it from the <a href="{esc(status_page_url.rstrip("/"))}/tasks/'
        f'{esc(task.key)}">status page</a> or run'
        if status_page_url
        else "Get it on the server with"
    )
    return (
        f"📦 <b>{esc(task.key)}</b>: the patch series is {size / 1_000_000:.1f} MB, over "
        f"Telegram's 50 MB limit for bots. {where} "
        f"<code>devserver task mbox {esc(task.key)}</code>."
    )


def no_patches(task: Task) -> str:
    return f"<b>{esc(task.key)}</b> has no patches."


def log_text(task: Task, runs: Sequence[TaskRun], events: Iterable[TaskEvent]) -> str:
    """Plain text (not HTML): the run summaries and the last output; sent as <pre> or file."""
    lines = [f"{task.key} · {task.title}", f"status: {task.status.value}"]
    for event in events:
        lines.append(f"{event.created_at:%H:%M:%S} {describe_event(event)}")
    for run in runs:
        lines.append(
            f"--- {run.phase} attempt {run.attempt} · {run.backend}"
            f" · exit {run.exit_code} · {run.error_class or 'ok'}"
        )
        if run.output_tail:
            lines.append(run.output_tail.rstrip())
        if run.error_message:
            lines.append(f"error: {run.error_message}")
    return "\n".join(lines)


def pre(text: str, limit: int = MESSAGE_LIMIT - 20) -> str:
    """`text` in a <pre> block, keeping its end (a log's tail matters most)."""
    if len(text) > limit:
        text = "…" + text[-(limit - 1) :]
    return f"<pre>{esc(text)}</pre>"


# -- repos and status ----------------------------------------------------------------------


def repo_list(repos: Sequence[Repo]) -> str:
    if not repos:
        return (
            "No repositories yet. Add one on the server:\n<code>devserver repo add NAME URL</code>"
        )
    lines = ["<b>Repositories</b>"]
    for r in repos:
        checks = ", ".join(
            n for n, c in (("build", r.build_command), ("test", r.test_command),
                           ("lint", r.lint_command)) if c
        ) or "no checks"  # fmt: skip
        lines.append(
            f"• <b>{esc(r.name)}</b> ({esc(r.key_prefix)}) · {esc(r.default_branch)} · "
            f"{esc(r.agent_backend)} · {esc(checks)}"
        )
    return "\n".join(lines)


def status(counts: TaskCounts, paused: bool, running: Sequence[Task]) -> str:
    lines = [
        "⏸ <b>Paused</b>: no new tasks start until /resume" if paused else "▶️ <b>Running</b>",
        f"Active: {counts.active} · Queued: {counts.queued} · Awaiting you: {counts.awaiting}",
        f"Today (UTC): ✅ {counts.done} done · ❌ {counts.failed} failed · "
        f"⛔ {counts.blocked} blocked · {money(counts.cost)}",
    ]
    if running:
        lines.append("")
        lines += [f"{task_line(t)} · {elapsed(t)}" for t in running]
    return "\n".join(lines)


PAUSED = "⏸ Paused. Running tasks finish; no new task starts until /resume."
RESUMED = "▶️ Resumed. Queued tasks start again."


# -- errors --------------------------------------------------------------------------------

APOLOGY = "Sorry, something went wrong on our side. It has been logged."
STALE_BUTTON = "That button is out of date."
NUL_REFUSED = (
    "That holds a NUL character (\\0), which cannot be stored. Please send it without one."
)


def unknown_task(key: str) -> str:
    return f"No task <code>{esc(clip(key, 40))}</code>."


def unknown_repo(name: str) -> str:
    return f"No repository <code>{esc(clip(name, 60))}</code>. See /repos."


def usage(command: str, args: str) -> str:
    return f"Usage: <code>/{command} {esc(args)}</code>"


def cannot(task: Task, verb: str) -> str:
    state = task.status.value.replace("_", " ")
    return f"<b>{esc(task.key)}</b> is {esc(state)}: it cannot be {esc(verb)}."


def cancel_requested(task: Task) -> str:
    return f"Stopping <b>{esc(task.key)}</b>… its partial work is kept on its branch."


def cancelled(task: Task) -> str:
    return f"🚫 <b>{esc(task.key)}</b> cancelled."


def retried(task: Task) -> str:
    return f"🕓 <b>{esc(task.key)}</b> queued again."
