"""What the bot says about a patch series sent to it (bot/routers/patches.py, bot/series.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.event_texts import clip
from bot.texts import esc
from storage.repos import Repo

if TYPE_CHECKING:  # bot/series.py raises with these texts
    from bot.series import Series

SHOWN_COMMITS = 15  # lines of commits in the preview; the rest are counted
TITLE_LIMIT = 200

KINDS = "a <code>.mbox</code> or <code>.patch</code> file (from <code>git format-patch</code>), " \
    "or a <code>.zip</code> of them"  # fmt: skip
WRONG_KIND = f"📎 To apply patches, send {KINDS}."
NO_REPOS = (
    "There is no active repository to apply it to: add one with <code>devserver repo add</code>."
)
STALE = "That series is no longer at hand: send the file again."
CHANGED = "The file changed since it was shown: send it again."
CREATING = "🕓 Creating the apply task…"
NOTHING_STORED = "Nothing was stored or applied."


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def _problem(name: str, text: str) -> str:
    return f"❌ <b>{esc(clip(name or 'The file', 120))}</b>: {text}\n{NOTHING_STORED}"


def too_big(name: str, size: int | None, limit: int) -> str:
    what = f"is {_mb(size)}, over" if size is not None else "is over"
    return _problem(name, f"{what} the {limit // 1024 // 1024} MB limit.")


def unpacks_too_big(name: str, limit: int) -> str:
    return _problem(name, f"unpacks to more than {limit // 1024 // 1024} MB, the limit.")


def empty(name: str) -> str:
    return _problem(name, "the file is empty.")


def binary(name: str) -> str:
    return _problem(name, f"this is a binary file, not a patch series. Send {KINDS}.")


def not_a_series(name: str, why: str) -> str:
    return _problem(name, f"not a git patch series: {esc(why)}. Send {KINDS}.")


def bad_zip(name: str, why: str) -> str:
    return _problem(name, f"{esc(why)}.")


def download_failed(name: str, why: str) -> str:
    return _problem(name, f"could not download it from Telegram ({esc(why)}).")


def title(series: Series) -> str:
    """The apply task's title: the first commit's subject, and how many there are."""
    first = series.commits[0].subject
    count = len(series.commits)
    more = f" (+{count - 1} more)" if count > 1 else ""
    return "Apply: " + clip(first, TITLE_LIMIT - len("Apply: ") - len(more)) + more


def description(series: Series) -> str:
    """Plain text for the task: what the series holds."""
    lines = [f"Apply the patch series {series.name} with git am --3way: "
             f"{len(series.commits)} commit(s), {series.files} file(s), "
             f"+{series.added} -{series.removed}. The commits keep their authors.", ""]  # fmt: skip
    lines += [f"{n}. {c.subject} ({c.author})" for n, c in enumerate(series.commits, 1)]
    return clip("\n".join(lines), 8000)


def preview(series: Series, repos: Sequence[Repo]) -> str:
    """Commits, authors and the diffstat, then where it can go."""
    count = len(series.commits)
    head = (f"📨 <b>{esc(clip(series.name, 120))}</b>: {count} commit(s), "
            f"{series.files} file(s) changed, +{series.added} -{series.removed}")  # fmt: skip
    lines = [head, ""]
    for number, commit in enumerate(series.commits[:SHOWN_COMMITS], 1):
        lines.append(f"{number}. {esc(clip(commit.subject, 100))} "
                     f"<i>— {esc(clip(commit.author, 60))}</i>")  # fmt: skip
    if count > SHOWN_COMMITS:
        lines.append(f"… and {count - SHOWN_COMMITS} more")
    authors = ", ".join(esc(clip(a, 60)) for a in series.authors[:10])
    more = f" and {len(series.authors) - 10} more" if len(series.authors) > 10 else ""
    lines += ["", f"Author(s): {authors}{more}"]
    if series.covers:
        lines.append(f"({series.covers} cover letter(s) left out: they hold no change.)")
    lines.append("")
    if not repos:
        lines.append(NO_REPOS)
    else:
        lines.append("Apply to which repository? It becomes a task: <code>git am --3way</code> "
                     "on a new branch, the repo's checks, the preflight, then a pull request "
                     "(on a plain repository: the pushed branch).")  # fmt: skip
    return "\n".join(lines)


def applied_already(repo: Repo, key: str) -> str:
    return f"Already applied to {repo.name} as {key}."


def queued(repo: Repo, key: str) -> str:
    return f"Queued for {repo.name} as {key}."
