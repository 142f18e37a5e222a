"""The reality signal: is this task about the repository as it is, and worth a run?

Four sources, asked concurrently, each answering a signal in [0, 1] and one line of
evidence:

- `repo_map` (0.40): how many of the identifiers and paths the task names exist in the
  repo map. A task about code that is not there is the commonest hopeless task.
- `recent_commits` (0.20): whether the files the task points to changed in the last 14
  days. Live code is a mild plus; code nobody touched lately is not a minus (0.5).
- `collision` (0.15): an open PR or an unmerged branch for the same task (another task's
  `agent/*` branch or any upstream branch whose name or last commit matches the title).
  Someone is already at it: 0.
- `memory` (0.25): how similar past tasks of the repo ended (worker/memory_recall.py).

A source with nothing to go on answers 0.5 and is not counted in the confidence. A source
that fails (error, timeout) is left out: its weight is shared among the others in
proportion, and the confidence drops by its weight. The score is the weighted mean, times 100.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.git import run_git
from worker.repo_map import Hits, RepoMap

log = logging.getLogger(__name__)

WEIGHTS: dict[str, float] = {
    "repo_map": 0.40, "recent_commits": 0.20, "collision": 0.15, "memory": 0.25,
}  # fmt: skip
RECENT_DAYS = 14
SOURCE_TIMEOUT = 15.0  # seconds for each source
NEUTRAL = 0.5
_COLLISION_SIMILARITY = 0.6  # word overlap (Jaccard) of a title with a branch or PR
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset({
    "a", "an", "and", "the", "of", "to", "in", "on", "for", "with", "from", "by", "is", "are",
    "be", "it", "its", "this", "that", "as", "at", "or", "not", "add", "fix", "make", "update",
    "use", "when", "into", "via", "should", "must",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Signal:
    value: float  # in [0, 1]; higher: more likely real and worth doing
    evidence: str  # one line
    informative: bool = True  # False: the source had nothing to go on (value is neutral)


@dataclass(frozen=True, slots=True)
class SourceResult:
    name: str
    weight: float  # the nominal weight
    signal: Signal | None  # None: the source failed
    error: str | None = None

    def line(self) -> str:
        if self.signal is None:
            return f"{self.name}: unavailable ({self.error})"
        return f"{self.name} {self.signal.value:.2f}: {self.signal.evidence}"


@dataclass(frozen=True, slots=True)
class Reality:
    score: int  # 0-100
    confidence: float  # 0-1: the share of the weight that answered with evidence
    sources: tuple[SourceResult, ...]

    def evidence(self) -> list[str]:
        return [source.line() for source in self.sources]

    def payload(self) -> dict[str, Any]:
        return {
            "score": self.score, "confidence": round(self.confidence, 2),
            "sources": [{"name": s.name, "weight": s.weight,
                         "signal": None if s.signal is None else round(s.signal.value, 3),
                         "evidence": None if s.signal is None else s.signal.evidence,
                         "informative": s.signal is not None and s.signal.informative,
                         "error": s.error} for s in self.sources],
        }  # fmt: skip

    def render(self) -> str:
        """For the agent's prompt: the score and why."""
        lines = [f"## Reality check: {self.score}/100 (confidence {self.confidence:.0%})"]
        lines += [f"- {line}" for line in self.evidence()]
        return "\n".join(lines)


Source = Callable[[], Awaitable[Signal]]


def combine(results: Sequence[SourceResult]) -> Reality:
    """The weighted score; failed sources' weight goes to the others in proportion."""
    answered = [r for r in results if r.signal is not None]
    total = sum(r.weight for r in answered)
    if total == 0:
        return Reality(score=50, confidence=0.0, sources=tuple(results))
    value = sum(r.weight * r.signal.value for r in answered if r.signal is not None) / total
    confidence = sum(r.weight for r in answered if r.signal is not None and r.signal.informative)
    return Reality(round(100 * value), min(1.0, confidence), tuple(results))


async def assess(sources: Mapping[str, Source], seconds: float = SOURCE_TIMEOUT) -> Reality:
    """Ask every source at once; each that fails or overruns `seconds` is left out."""

    async def ask(name: str, source: Source) -> SourceResult:
        weight = WEIGHTS.get(name, 0.0)
        try:
            async with asyncio.timeout(seconds):
                signal = await source()
        except TimeoutError:
            return SourceResult(name, weight, None, f"no answer within {seconds:g} s")
        except Exception as exc:  # a source's failure must not fail the task
            log.warning("reality source failed", extra={"source": name, "error": repr(exc)})
            return SourceResult(name, weight, None, _short(exc))
        clamped = Signal(min(1.0, max(0.0, signal.value)), signal.evidence, signal.informative)
        return SourceResult(name, weight, clamped)

    results = await asyncio.gather(*(ask(name, source) for name, source in sources.items()))
    return combine(results)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


# -- the four sources ------------------------------------------------------------------------


def map_signal(found: Hits) -> Signal:
    """The share of the task's identifiers and paths that the repo map knows."""
    rate = found.rate
    if rate is None:
        return Signal(NEUTRAL, "the task names no identifiers or paths", informative=False)
    total = len(found.found) + len(found.missing)
    evidence = f"{len(found.found)} of {total} names found"
    if found.missing:
        evidence += f"; missing: {_listing(found.missing)}"
    return Signal(rate, evidence)


async def recent_signal(worktree: Path, files: Sequence[str], days: int = RECENT_DAYS) -> Signal:
    """Whether the files the task points to changed in the last `days` days."""
    if not files:
        return Signal(NEUTRAL, "the task points to no files", informative=False)
    log_ = await run_git("log", f"--since={days}.days", "--name-only", "--format=", "HEAD",
                         cwd=worktree, time_limit=SOURCE_TIMEOUT)  # fmt: skip
    changed = {line.strip() for line in log_.text.splitlines() if line.strip()}
    touched = [f for f in files if f in changed]
    if not touched:
        return Signal(NEUTRAL, f"none of {_listing(files)} changed in the last {days} days",
                      informative=False)  # fmt: skip
    share = len(touched) / len(files)
    return Signal(NEUTRAL + NEUTRAL * share, f"{len(touched)} of {len(files)} files changed "
                  f"in the last {days} days: {_listing(touched)}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class OpenWork:
    """A branch or pull request that may already do the task."""

    name: str  # "branch agent/WEB-3", "PR #12"
    title: str  # the PR's title, or the branch's last commit subject


async def branches(mirror: Path, default_branch: str, own_branch: str) -> list[OpenWork]:
    """Unmerged branches of the mirror: other tasks' `agent/*` and upstream's branches."""
    refs = await run_git(
        "for-each-ref", "--format=%(refname)%00%(contents:subject)",
        f"--no-merged=refs/remotes/origin/{default_branch}", "refs/heads/agent/",
        "refs/remotes/origin/", cwd=mirror, time_limit=SOURCE_TIMEOUT,
    )  # fmt: skip
    found = []
    for line in refs.text.splitlines():
        ref, _, subject = line.partition("\0")
        name = ref.removeprefix("refs/heads/").removeprefix("refs/remotes/origin/")
        if name in (own_branch, default_branch, "HEAD"):
            continue
        found.append(OpenWork(f"branch {name}", f"{name.rsplit('/', 1)[-1]} {subject}"))
    return found


def collision_signal(title: str, task_key: str, open_work: Iterable[OpenWork]) -> Signal:
    """0 when another branch or PR looks like the same task, else 1."""
    words = _words(title)
    best: tuple[float, OpenWork] | None = None
    for work in open_work:
        if task_key in work.title:  # the task's own earlier work (e.g. its own PR)
            continue
        other = _words(work.title)
        if not words or not other:
            continue
        similarity = len(words & other) / len(words | other)
        if best is None or similarity > best[0]:
            best = (similarity, work)
    if best is not None and best[0] >= _COLLISION_SIMILARITY:
        return Signal(0.0, f"{best[1].name} looks like the same task: {best[1].title[:120]!r}")
    return Signal(1.0, "no open branch or PR looks like this task")


def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1)


def _listing(items: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def task_files(repo_map: RepoMap, found: Hits) -> list[str]:
    """The tracked files a task points to: paths it names, and files defining names it uses."""
    paths = repo_map.paths()
    files: list[str] = []
    names = set()
    for item in found.found:
        matches = [p for p in paths if p == item or p.endswith("/" + item)]
        if matches:
            files += sorted(matches)[:3]
        else:
            names.add(item.rsplit(".", 1)[-1])
    if names:
        for entry in repo_map.files:
            if any(symbol.name in names for symbol in entry.symbols):
                files.append(entry.path)
    return list(dict.fromkeys(files))[:20]
