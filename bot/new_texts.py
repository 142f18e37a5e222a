"""What the guided /new dialog says, step by step."""

from __future__ import annotations

from collections.abc import Sequence

from bot.event_texts import clip
from bot.texts import esc, repo_list
from storage.repos import Repo

NEW_PICK_REPO = "<b>New task</b> — which repository?"
NEW_ASK_TEXT = (
    "<b>New task</b> in <b>{repo}</b>.\nSend the task: the first line is the title, the "
    "rest is the description. /cancel stops here."
)
NEW_PICK_MODE = (
    "How should it run?\n<b>Autonomous</b>: straight to work. "
    "<b>Interactive</b>: a plan comes first, for you to approve."
)
FLOW_NAMES = ("patch", "pr", "direct")
FORGE_NAMES = {"gitea": "Gitea", "forgejo": "Forgejo", "github": "GitHub"}


def flow_line(flow: str, repo: Repo) -> str:
    if flow == "patch":
        return "<b>Patch</b>: the commits come back here as an mbox; nothing is pushed."
    if flow == "direct":
        return (f"<b>Direct</b>: rebased onto <code>{esc(repo.default_branch)}</code> and "
                "pushed there (never forced).")  # fmt: skip
    if repo.forge_kind in FORGE_NAMES:
        return (f"<b>PR</b>: a pull request on {FORGE_NAMES[repo.forge_kind]} "
                f"({esc(repo.forge_owner or '?')}/{esc(repo.forge_name or '?')}).")  # fmt: skip
    return "<b>PR</b>: the branch <code>agent/KEY</code> pushed to the repository (no forge)."


def new_flow(flows: Sequence[str], repo: Repo) -> str:
    lines = ["What should happen to the result? Each is checked first (secrets, file names "
             "and sizes).", *(flow_line(f, repo) for f in flows)]  # fmt: skip
    return "\n".join(lines)


NEW_PICK_BUDGET = (
    "A budget for this task? The agent stops at either limit and its work so far comes back; "
    "you can extend and resume. <i>Default</i>: the repository's limits."
)
NEW_CANCELLED = "New task cancelled."
NEW_EXPIRED = "That dialog is over; start again with /new."
NO_REPOS = repo_list([])
NEW_USAGE = (
    "Usage: <code>/new</code> for a guided dialog, or\n<code>/new REPO title</code> with the "
    "description on the following lines."
)


def new_summary(data: dict[str, str]) -> str:
    """The confirm card of /new, from the dialog's data."""
    description = data.get("description", "")
    body = f"\n{esc(clip(description, 600))}" if description else ""
    return (
        f"<b>New task</b> in <b>{esc(data['repo'])}</b>\n"
        f"<b>{esc(clip(data['title'], 200))}</b>{body}\n\n"
        f"Mode: {esc(data['mode'])} · Flow: {esc(data['flow'])} · "
        f"Budget: {esc(data.get('budget_label', 'default'))}"
    )
