"""The `workers` table: heartbeats upserted, read back by age, deleted, pruned."""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import asyncpg

from storage.workers import WorkerRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


async def _age(pool: Pool, worker_id: str, seconds: int) -> None:
    """Pretend the worker's last heartbeat was `seconds` ago."""
    await pool.execute(
        "UPDATE workers SET seen_at = now() - make_interval(secs => $2) WHERE id = $1",
        worker_id, float(seconds),
    )  # fmt: skip


async def test_a_beat_inserts_the_row_and_the_next_one_refreshes_it(pool: Pool) -> None:
    workers = WorkerRepo(pool)
    first = await workers.beat("host:10:aa", hostname="host", pid=10, concurrency=2, running=0)
    assert (first.id, first.hostname, first.pid, first.concurrency, first.running) == (
        "host:10:aa", "host", 10, 2, 0,
    )  # fmt: skip
    assert first.started_at == first.seen_at
    await asyncio.sleep(0.01)
    second = await workers.beat("host:10:aa", hostname="host", pid=10, concurrency=2, running=1)
    assert second.started_at == first.started_at
    assert second.seen_at > first.seen_at
    assert second.running == 1
    assert await workers.alive(60) == [second]


async def test_alive_lists_only_workers_seen_within_the_window_newest_first(pool: Pool) -> None:
    workers = WorkerRepo(pool)
    await workers.beat("a:1:aa", hostname="a", pid=1, concurrency=1, running=0)
    await workers.beat("b:2:bb", hostname="b", pid=2, concurrency=1, running=0)
    await workers.beat("c:3:cc", hostname="c", pid=3, concurrency=1, running=0)
    await _age(pool, "a:1:aa", 30)
    await _age(pool, "c:3:cc", 300)

    assert [w.id for w in await workers.alive(60)] == ["b:2:bb", "a:1:aa"]
    assert [w.id for w in await workers.alive(10)] == ["b:2:bb"]
    assert [w.id for w in await workers.alive(3600)] == ["b:2:bb", "a:1:aa", "c:3:cc"]


async def test_latest_seen_is_the_newest_heartbeat_or_none(pool: Pool) -> None:
    workers = WorkerRepo(pool)
    assert await workers.latest_seen() is None
    await workers.beat("a:1:aa", hostname="a", pid=1, concurrency=1, running=0)
    await _age(pool, "a:1:aa", 120)
    newest = await workers.beat("b:2:bb", hostname="b", pid=2, concurrency=1, running=0)
    assert await workers.latest_seen() == newest.seen_at


async def test_gone_deletes_only_that_worker(pool: Pool) -> None:
    workers = WorkerRepo(pool)
    await workers.beat("a:1:aa", hostname="a", pid=1, concurrency=1, running=0)
    await workers.beat("b:2:bb", hostname="b", pid=2, concurrency=1, running=0)
    await workers.gone("a:1:aa")
    await workers.gone("never:0:00")  # unknown: nothing to do
    assert [w.id for w in await workers.alive(60)] == ["b:2:bb"]


async def test_prune_deletes_workers_not_seen_for_long(pool: Pool) -> None:
    workers = WorkerRepo(pool)
    await workers.beat("crashed:1:aa", hostname="crashed", pid=1, concurrency=1, running=1)
    await workers.beat("quiet:2:bb", hostname="quiet", pid=2, concurrency=1, running=0)
    await workers.beat("fresh:3:cc", hostname="fresh", pid=3, concurrency=1, running=0)
    await _age(pool, "crashed:1:aa", 2 * 86400)
    await _age(pool, "quiet:2:bb", 3600)

    assert await workers.prune(86400) == 1
    assert await workers.prune(86400) == 0
    assert [w.id for w in await workers.alive(7200)] == ["fresh:3:cc", "quiet:2:bb"]
