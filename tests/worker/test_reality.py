"""The reality signal: weights, a failing source's weight shared out, and each source."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from tests.gitrepos import commit_file, git, git_env, make_repo
from worker.reality import (
    WEIGHTS,
    OpenWork,
    Signal,
    Source,
    SourceResult,
    assess,
    branches,
    collision_signal,
    combine,
    map_signal,
    recent_signal,
)
from worker.repo_map import Hits


def fixed(value: float, evidence: str = "evidence", informative: bool = True) -> Source:
    async def source() -> Signal:
        return Signal(value, evidence, informative)

    return source


def all_sources(**values: float) -> dict[str, Source]:
    return {name: fixed(values.get(name, 1.0)) for name in WEIGHTS}


def test_the_weights_are_those_of_the_design() -> None:
    assert WEIGHTS == {"repo_map": 0.40, "recent_commits": 0.20, "collision": 0.15,
                       "memory": 0.25}  # fmt: skip
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


async def test_the_score_is_the_weighted_mean_of_the_four_signals() -> None:
    result = await assess(all_sources(repo_map=0.5, recent_commits=1.0, collision=0.0,
                                      memory=0.8))  # fmt: skip
    assert result.score == round(100 * (0.4 * 0.5 + 0.2 * 1.0 + 0.15 * 0.0 + 0.25 * 0.8))
    assert result.confidence == pytest.approx(1.0)
    assert len(result.evidence()) == 4


async def test_a_failed_source_gives_its_weight_to_the_others_and_lowers_the_confidence() -> None:
    async def broken() -> Signal:
        raise OSError("git is gone")

    sources = all_sources(repo_map=0.2, recent_commits=1.0, collision=1.0, memory=1.0)
    whole = await assess(sources)
    degraded = await assess({**sources, "memory": broken})

    # Without memory: (0.4*0.2 + 0.2 + 0.15) / 0.75, not the same sum over 1.0.
    assert degraded.score == round(100 * (0.4 * 0.2 + 0.2 + 0.15) / 0.75)
    assert degraded.score < whole.score  # the strong source that failed no longer lifts it
    assert degraded.confidence == pytest.approx(0.75)
    [failed] = [s for s in degraded.sources if s.name == "memory"]
    assert failed.signal is None
    assert failed.error == "OSError: git is gone"
    assert "memory: unavailable (OSError: git is gone)" in degraded.evidence()


async def test_a_source_that_hangs_is_cut_off_and_left_out() -> None:
    async def hangs() -> Signal:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    result = await assess({**all_sources(), "collision": hangs}, seconds=0.2)
    [late] = [s for s in result.sources if s.name == "collision"]
    assert late.error == "no answer within 0.2 s"
    assert result.score == 100
    assert result.confidence == pytest.approx(0.85)


def test_every_source_failing_gives_a_neutral_score_with_no_confidence() -> None:
    result = combine([SourceResult(name, weight, None, "down") for name, weight in WEIGHTS.items()])
    assert (result.score, result.confidence) == (50, 0.0)


async def test_uninformative_sources_count_in_the_score_but_not_the_confidence() -> None:
    sources = {**all_sources(), "memory": fixed(0.5, "no similar past tasks", False)}
    result = await assess(sources)
    assert result.score == round(100 * (0.75 + 0.25 * 0.5))
    assert result.confidence == pytest.approx(0.75)


def test_map_signal_is_the_share_of_names_found() -> None:
    signal = map_signal(Hits(found=("LoginForm",), missing=("Frob", "src/x.rs", "warm")))
    assert signal.value == pytest.approx(0.25)
    assert signal.evidence == "1 of 4 names found; missing: Frob, src/x.rs, warm"
    nothing = map_signal(Hits(found=(), missing=()))
    assert (nothing.value, nothing.informative) == (0.5, False)


def _commit_at(repo: Path, name: str, days_ago: int) -> None:
    when = f"@{int(time.time()) - days_ago * 86400} +0000"
    env = {**git_env(), "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    (repo / name).write_text(f"{name} {days_ago}\n")
    for args in (["add", name], ["commit", "-qm", f"touch {name}"]):
        subprocess.run(["git", "-C", str(repo), *args], env=env, check=True)


async def test_recent_signal_reads_the_last_fourteen_days_of_history(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"README.md": "x\n"})
    _commit_at(repo, "old.py", 40)
    _commit_at(repo, "new.py", 3)
    both = await recent_signal(repo, ["old.py", "new.py"])
    assert both.value == pytest.approx(0.75)
    assert both.evidence == "1 of 2 files changed in the last 14 days: new.py"
    stale = await recent_signal(repo, ["old.py"])
    assert (stale.value, stale.informative) == (0.5, False)
    assert (await recent_signal(repo, [])).informative is False


def test_collision_finds_another_branch_for_the_same_task_but_not_its_own() -> None:
    work = [OpenWork("branch agent/WEB-3", "WEB-3 WEB-3: Reject empty passwords in the login"),
            OpenWork("branch feature/cart", "cart Show cart totals")]  # fmt: skip
    same = collision_signal("Reject empty passwords in the login", "WEB-9", work)
    assert same.value == 0.0
    assert "branch agent/WEB-3 looks like the same task" in same.evidence
    own = collision_signal("Reject empty passwords in the login", "WEB-3", work)
    assert own.value == 1.0
    other = collision_signal("Add dark mode", "WEB-9", work)
    assert (other.value, other.evidence) == (1.0, "no open branch or PR looks like this task")


async def test_branches_lists_unmerged_branches_of_the_mirror(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "up", {"README.md": "x\n"})
    git(upstream, "checkout", "-qb", "fix-login")
    commit_file(upstream, "login.py", "pass\n", "Reject empty passwords")
    git(upstream, "checkout", "-qb", "merged-already", "main")
    git(upstream, "checkout", "-q", "main")
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(upstream), str(mirror))
    git(mirror, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
    git(mirror, "branch", "agent/WEB-2", "refs/remotes/origin/fix-login")
    git(mirror, "branch", "agent/WEB-5", "refs/remotes/origin/fix-login")

    found = await branches(mirror, "main", "agent/WEB-5")

    names = sorted(w.name for w in found)
    assert names == ["branch agent/WEB-2", "branch fix-login"]
    assert all("Reject empty passwords" in w.title for w in found)
