"""Task memory for the agent: recall similar past tasks before a task, remember it after.

    recall(pool, embedder, task, k=5).render()   → the "what happened before" prompt block
    outcome_signal(recall.memories)              → similarity-weighted success rate + evidence
    remember(pool, embedder, task, outcome=..., summary=..., ...) after the task finished

A task never recalls its own memory (it has one when it is retried after finishing), and
remembering a task again replaces its memory (see storage/memory.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

import asyncpg

from storage.memory import Memory, MemoryRepo, NewMemory, Outcome
from storage.tasks import Task
from worker.embedder import Embedder

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

HEADING = "## What happened before in this repository"
DESCRIPTION_CHARS = 2000  # of the description embedded: its start says what the task is
MAX_FILES = 50  # stored per memory
_SHOWN_FILES = 6  # per memory in the prompt
_SUMMARY_CHARS = 240
_TITLE_CHARS = 100
_EVIDENCE_PER_OUTCOME = 3


def memory_text(title: str, description: str) -> str:
    """What is embedded for a task, both when it is remembered and when it recalls."""
    return f"{title.strip()}\n{description.strip()[:DESCRIPTION_CHARS]}".strip()


@dataclass(frozen=True, slots=True)
class Recall:
    memories: list[Memory]  # most similar first

    def render(self) -> str:
        """The prompt block: one entry per memory, successes and failures; "" when none."""
        if not self.memories:
            return ""
        lines = [
            HEADING,
            "Similar past tasks of this repository, most similar first. Reuse what worked; "
            "avoid what failed.",
        ]
        for memory in self.memories:
            lines.append(f"- {_header(memory)}")
            if memory.files:
                shown = ", ".join(memory.files[:_SHOWN_FILES])
                more = len(memory.files) - _SHOWN_FILES
                lines.append(f"  files: {shown}" + (f" (+{more} more)" if more > 0 else ""))
            if memory.summary.strip():
                lines.append(f"  summary: {_one_line(memory.summary, _SUMMARY_CHARS)}")
        return "\n".join(lines) + "\n"


async def recall(
    pool: Pool, embedder: Embedder, task: Task, *, k: int, min_similarity: float | None = None
) -> Recall:
    """The k memories of the task's repository most similar to it (not its own), optionally
    only those at least `min_similarity` similar. EmbedderError propagates."""
    if k <= 0:
        return Recall([])
    [vector] = await embedder.embed([memory_text(task.title, task.description)])
    # One transaction: MemoryRepo.similar's HNSW settings are transaction-local.
    async with pool.acquire() as conn, conn.transaction():
        memories = await MemoryRepo(conn).similar(
            task.repo_id, vector, k, exclude_task_id=task.id, embedder=embedder.name
        )
    if min_similarity is not None:
        memories = [m for m in memories if (m.similarity or 0.0) >= min_similarity]
    return Recall(memories)


async def remember(
    pool: Pool,
    embedder: Embedder,
    task: Task,
    *,
    outcome: Outcome | str,  # "success" or "failure"
    summary: str,
    files: Sequence[str] = (),
    error_class: str | None = None,
    attempts: int = 1,
    cost_usd: Decimal | None = None,
) -> Memory:
    """Store what happened in `task` (replacing its earlier memory). EmbedderError
    propagates."""
    [vector] = await embedder.embed([memory_text(task.title, task.description)])
    unique_files = tuple(dict.fromkeys(f for f in files if f))[:MAX_FILES]
    return await MemoryRepo(pool).add(
        NewMemory(
            repo_id=task.repo_id, task_id=task.id, task_key=task.key, outcome=Outcome(outcome),
            title=task.title, description=task.description, summary=summary.strip(),
            embedder=embedder.name, embedding=vector, files=unique_files,
            error_class=error_class or None, attempts=attempts, cost_usd=cost_usd,
        )
    )  # fmt: skip


def outcome_signal(memories: Sequence[Memory]) -> tuple[float, str] | None:
    """From similar past tasks: the similarity-weighted share that succeeded, in [0, 1], and
    a one-line evidence string. None without memories.

    Each memory weighs its similarity (at least 0; 1 when unknown). When no memory has a
    positive similarity, each weighs the same.
    """
    if not memories:
        return None
    weights = [_weight(m) for m in memories]
    if sum(weights) <= 0:
        weights = [1.0] * len(memories)
    won = sum(w for w, m in zip(weights, memories, strict=True) if m.outcome is Outcome.SUCCESS)
    signal = min(1.0, max(0.0, won / sum(weights)))
    succeeded = [m for m in memories if m.outcome is Outcome.SUCCESS]
    failed = [m for m in memories if m.outcome is Outcome.FAILURE]
    parts = []
    if succeeded:
        parts.append(f"{len(succeeded)} succeeded ({_evidence(succeeded)})")
    if failed:
        parts.append(f"{len(failed)} failed ({_evidence(failed)})")
    noun = "task" if len(memories) == 1 else "tasks"
    return signal, f"{len(memories)} similar past {noun}: " + ", ".join(parts)


def _weight(memory: Memory) -> float:
    return 1.0 if memory.similarity is None else max(0.0, memory.similarity)


def _evidence(memories: Sequence[Memory]) -> str:
    items = []
    for memory in memories[:_EVIDENCE_PER_OUTCOME]:
        item = _key(memory)
        if memory.similarity is not None:
            item += f" {memory.similarity:.2f}"
        if memory.outcome is Outcome.FAILURE and memory.error_class:
            item += f" {memory.error_class}"
        items.append(item)
    if len(memories) > _EVIDENCE_PER_OUTCOME:
        items.append("…")
    return ", ".join(items)


def _header(memory: Memory) -> str:
    verb = "succeeded" if memory.outcome is Outcome.SUCCESS else "failed"
    details = []
    if memory.similarity is not None:
        details.append(f"similarity {memory.similarity:.2f}")
    if memory.error_class:
        details.append(f"error {memory.error_class}")
    details.append("1 attempt" if memory.attempts == 1 else f"{memory.attempts} attempts")
    details.append("cost unknown" if memory.cost_usd is None else f"${memory.cost_usd:.2f}")
    title = _one_line(memory.title, _TITLE_CHARS)
    return f"{verb} {_key(memory)} “{title}” ({'; '.join(details)})"


def _key(memory: Memory) -> str:
    return memory.task_key or f"memory #{memory.id}"


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
