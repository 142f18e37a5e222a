"""Queue throughput: N instant tasks through real worker processes, with 1, 2, 4 and 8
slots (WORKER_CONCURRENCY) in one worker, and with two workers of 4 slots each.

Each task is the whole pipeline on a 100-file repository whose agent changes one file at
once and which has no checks (as in bench/overhead.py). All N tasks are submitted in one
go (submit_task, in one transaction each); the clock runs from the first submit to the last
task's end. Then the bench checks that nothing was lost or run twice: every task done, one
agent run per task in `task_runs`, and the agent itself (which appends its worktree to a
log) ran exactly once per task, each in a worktree of its own. The repository's
`max_parallel_tasks` is raised to 16 so that the slots, not the per-repo limit, bound it.

    .venv/bin/python bench/queue_throughput.py [--tasks 1000] [--slots 1,2,4,8] [--two 4]
                                               [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from overhead import Waiter, worker_process
from overhead_floor import make_upstream
from web_status import machine

from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from storage.migrate import apply_all
from storage.repos import NewRepo, RepoRepo
from storage.task_events import CHANNEL
from storage.tasks import NewTask
from worker.queue import submit_task

FILES = 100
ENDED = """
    SELECT id
      FROM tasks
     WHERE id = ANY($1::bigint[]) AND status IN ('done', 'failed', 'blocked', 'cancelled')
"""
RUNS = """
    SELECT task_id, count(*) AS n
      FROM task_runs
     WHERE task_id = ANY($1::bigint[])
     GROUP BY task_id
"""


@dataclass(frozen=True, slots=True)
class Result:
    label: str
    slots: list[int]
    tasks: int
    seconds: float
    statuses: dict[str, int]
    runs_not_one: int  # tasks without exactly one agent run in task_runs
    agent_runs: int  # times the agent program itself ran
    agent_twice: int  # worktrees the agent ran in more than once

    @property
    def per_second(self) -> float:
        return self.tasks / self.seconds


def agent_command(log: Path) -> str:
    script = f'echo "changed" > bench_change.txt; echo "$0" >> {shlex.quote(str(log))}'
    return shlex.join(("sh", "-c", script)) + " {workdir}"


async def one_config(dsn: str, scratch: Path, label: str, slots: list[int], tasks: int) -> Result:
    """Submit `tasks` at once to workers with `slots` each; wait for all; check them."""
    name = f"q{uuid.uuid4().hex[:6]}"
    upstream = scratch / f"upstream-{name}"
    make_upstream(upstream, FILES)
    log = scratch / f"agent-{name}.log"
    pool = await create_pool(dsn, max_size=4)
    listener = await asyncpg.connect(dsn)
    waiter = Waiter()
    await listener.add_listener(CHANNEL, waiter.on_notify)
    try:
        repo = await RepoRepo(pool).add(NewRepo(
            name=name, source=str(upstream), default_branch="main",
            agent_backend="command", agent_command=agent_command(log)))  # fmt: skip
        await pool.execute("UPDATE repos SET max_parallel_tasks = 16 WHERE id = $1", repo.id)
        async with contextlib.AsyncExitStack() as stack:
            for number, size in enumerate(slots):
                home = scratch / f"home-{name}-{number}"
                await stack.enter_async_context(worker_process(dsn, home, None, concurrency=size))
            # The first task makes the mirror: run it alone, outside the clock.
            loop = asyncio.get_running_loop()
            ids = await _submit(pool, repo.id, ["Warm-up"])
            waiter.ends[ids[0]] = loop.create_future()
            await _settled(pool, waiter, ids)
            ids = []
            started = time.perf_counter()
            ids = await _submit(pool, repo.id, [f"Task {n}" for n in range(tasks)], waiter)
            await _settled(pool, waiter, ids)
            elapsed = time.perf_counter() - started
        statuses = Counter(await pool.fetchval(
            "SELECT array_agg(status) FROM tasks WHERE id = ANY($1::bigint[])", ids))  # fmt: skip
        runs = await pool.fetch(RUNS, ids)
        lines = log.read_text().split()
        agent_runs = Counter(lines)
        return Result(
            label=label, slots=slots, tasks=tasks, seconds=elapsed, statuses=dict(statuses),
            runs_not_one=sum(1 for r in runs if r["n"] != 1) + tasks - len(runs),
            agent_runs=len(lines) - 1,  # minus the warm-up
            agent_twice=sum(1 for n in agent_runs.values() if n > 1),
        )  # fmt: skip
    finally:
        await listener.close()
        await pool.close()


async def _submit(
    pool: asyncpg.Pool, repo_id: int, titles: list[str], waiter: Waiter | None = None
) -> list[int]:
    ids = []
    loop = asyncio.get_running_loop()
    async with pool.acquire() as conn:
        for title in titles:
            new = NewTask(repo_id=repo_id, title=title, created_by="bench")
            task = await submit_task(conn, new)  # in a transaction of its own, as /new does
            ids.append(task.id)
            if waiter is not None:
                waiter.ends[task.id] = loop.create_future()
    return ids


async def _settled(pool: asyncpg.Pool, waiter: Waiter, ids: list[int]) -> None:
    """Until every task ended: by its NOTIFY, or found ended by a look at the table (an end
    may come before its future existed)."""
    pending = set(ids)
    while pending:
        futures = [waiter.ends[i] for i in pending if i in waiter.ends]
        if futures:
            await asyncio.wait(futures, timeout=5)  # (wait_for would cancel them)
        pending = {i for i in pending if not (i in waiter.ends and waiter.ends[i].done())}
        ended = await pool.fetch(ENDED, list(pending))
        pending -= {r["id"] for r in ended}


def report(results: list[Result]) -> None:
    print(f"\n# {time.strftime('%Y-%m-%d %H:%M')} · {machine()}\n")
    print("| workers x slots | tasks | seconds | tasks/s | vs 1 slot | statuses | runs != 1 | "
          "agent runs | agent ran twice |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    base = next((r.per_second for r in results if r.slots == [1]), None)
    for r in results:
        scale = f"{r.per_second / base:.2f}x" if base else "-"
        print(f"| {r.label} | {r.tasks} | {r.seconds:.1f} | {r.per_second:.1f} | {scale} | "
              f"{r.statuses} | {r.runs_not_one} | {r.agent_runs} | {r.agent_twice} |")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--slots", default="1,2,4,8")
    parser.add_argument("--two", type=int, default=4, help="slots of each of two workers (0: skip)")
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    embedded = Path(tempfile.gettempdir()) / f"devserver-bench-pg-{os.getuid()}"
    base = args.dsn or start_embedded(embedded)
    name = f"bench_queue_{uuid.uuid4().hex[:8]}"
    await admin_execute(base, f'CREATE DATABASE "{name}"')
    dsn = with_db(base, name)
    scratch = Path(tempfile.mkdtemp(prefix="devserver-queue-"))
    configs = [(f"1 x {n}", [n]) for n in (int(s) for s in args.slots.split(","))]
    if args.two:
        configs.append((f"2 x {args.two}", [args.two, args.two]))
    results = []
    try:
        await apply_all(dsn)
        for label, slots in configs:
            print(f"== {label}", flush=True)
            result = await one_config(dsn, scratch, label, slots, args.tasks)
            results.append(result)
            print(f"   {result.seconds:.1f} s, {result.per_second:.1f} tasks/s, {result.statuses}",
                  flush=True)  # fmt: skip
    finally:
        await admin_execute(base, f'DROP DATABASE "{name}" WITH (FORCE)')
    report(results)


if __name__ == "__main__":
    asyncio.run(main())
