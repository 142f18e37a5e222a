"""Texts and message shaping, without Telegram: escaping, limits, mbox figures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot import event_texts, texts
from bot.actions import UserError
from bot.mbox import mbox_stats
from bot.replies import chunks
from bot.routers.new import split_text
from tests.gitrepos import commit_file, git, make_repo


def test_esc_and_plain_round_trip_metacharacters() -> None:
    hostile = "<b>bold</b> & <script>x</script> \"q\" 'a' *md* _u_ `c` [l](u)"
    escaped = texts.esc(hostile)
    assert "<" not in escaped
    assert ">" not in escaped
    assert texts.plain(f"<b>{escaped}</b>") == hostile


def test_clip_marks_the_cut_and_keeps_short_text() -> None:
    assert event_texts.clip("abc", 3) == "abc"
    assert event_texts.clip("abcdef", 4) == "abc…"


def test_chunks_split_at_lines_and_fall_back_for_one_huge_line() -> None:
    lines = [f"<b>{i:04d}</b> " + "x" * 90 for i in range(100)]  # ~9,600 visible characters
    parts = chunks("\n".join(lines))
    assert parts is not None
    assert len(parts) == 3
    assert all(len(texts.plain(p, 10**9)) <= texts.MESSAGE_LIMIT for p in parts)
    assert "\n".join(parts) == "\n".join(lines)
    assert chunks("y" * 5000) is None


def test_split_text_title_and_description() -> None:
    assert split_text("  Fix login\n\nThe form breaks.\nOn Safari. ") == (
        "Fix login", "The form breaks.\nOn Safari."
    )  # fmt: skip
    long_title = "t" * 300
    title, description = split_text(long_title)
    assert len(title) == 200
    assert title.endswith("…")
    assert description == long_title  # nothing the user typed is lost
    with pytest.raises(UserError):
        split_text(" \n \n")


def test_mbox_stats_count_commits_files_and_lines(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"README": "hi\n"})
    base = git(repo, "rev-parse", "HEAD").strip()
    commit_file(repo, "a.txt", "one\n-- \ntwo\n", "Ünïcödé: add a.txt <b>&</b>")
    commit_file(repo, "b.txt", "x\n", "add b")
    mbox = subprocess.run(["git", "format-patch", "--stdout", base], cwd=repo, check=True,
                          capture_output=True).stdout  # fmt: skip
    stats = mbox_stats(mbox)
    assert (stats.commits, stats.files, stats.added, stats.removed) == (2, 2, 4, 0)
    assert stats.subjects == ("Ünïcödé: add a.txt <b>&</b>", "add b")
