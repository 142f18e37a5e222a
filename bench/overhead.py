"""Orchestration overhead: enqueue -> done for a task that costs nothing but the pipeline,
side by side with its physical floor, on repositories of 100, 10,000 and 50,000 files.

The task's agent changes one file at once (`sh -c 'echo ... > bench_change.txt'`) and its
repository has no build, test or lint command, so what is left is orchestration: the queue,
the mirror fetch, the worktree, the repo map, memory recall, the prompt, the preflight, the
commit, the patches, the events and the database. The floor is what a person would run by
hand for the same result, in a mirror of their own:

    git fetch (the mirror) ; git worktree add -b BRANCH PATH origin/main ; the same agent ;
    git add -A ; git commit ; git format-patch --stdout base..HEAD

The pipeline runs in a real `python -m devserver worker` process (WORKER_CONCURRENCY=1);
this process submits one task at a time (submit_task, as /new and the CLI do) and stops the
clock when the task_done NOTIFY arrives. Pipeline and floor runs alternate, so load on the
machine hits both alike; each floor waits until the worker holds no job (what a job does
after task_done, the memory write and parking the worktree, would run beside it). The first
task of each repository (mirror clone, cold repo map) is reported apart. The CPU time per
task of the worker, of the git and agent it runs, of PostgreSQL, and of the floor, comes
from /proc. Then `--explain` tasks run with GIT_TRACE2_EVENT set, to say where the
pipeline's time goes: the git commands it runs (each one's wall time from git itself), the
agent, and the rest (Python and PostgreSQL), phase by phase from the task's events.

    .venv/bin/python bench/overhead.py [--sizes 100,10000,50000] [--tasks 10] [--explain 3]
                                       [--dsn DSN] [--scratch DIR]

Uses --dsn (a server: a scratch database is created there and dropped at the end), else
DATABASE_URL, else the embedded PostgreSQL under $TMPDIR. Goal: pipeline <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from overhead_floor import AGENT, Floor, ReusedFloor, git, make_upstream
from overhead_trace import PHASES, cpu, git_seconds, phases, postgres_cpu

from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from storage.migrate import apply_all
from storage.repos import NewRepo, RepoRepo
from storage.task_events import CHANNEL
from storage.tasks import NewTask
from worker.queue import submit_task

DONE_KINDS = {"task_done", "task_failed", "task_blocked", "task_cancelled"}


# --- the pipeline ---------------------------------------------------------------------------


@dataclass
class Waiter:
    """Futures per task id, resolved by the task_events NOTIFY of the task's end."""

    ends: dict[int, asyncio.Future[str]] = field(default_factory=dict)

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        event = json.loads(str(payload))
        future = self.ends.get(int(event["task_id"]))
        if future is not None and not future.done() and event["kind"] in DONE_KINDS:
            future.set_result(event["kind"])


@asynccontextmanager
async def worker_process(
    dsn: str, home: Path, trace: Path | None, *, concurrency: int = 1
) -> AsyncIterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": dsn, "DEVSERVER_HOME": str(home),
           "WORKER_CONCURRENCY": str(concurrency), "DEVSERVER_LOG_LEVEL": "WARNING"}  # fmt: skip
    if trace is not None:
        env["GIT_TRACE2_EVENT"] = str(trace)
    proc = subprocess.Popen([sys.executable, "-m", "devserver", "worker"], env=env, cwd=ROOT)  # noqa: ASYNC220
    try:
        await asyncio.sleep(3)  # connect, migrate check, LISTEN
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)


async def run_task(
    pool: asyncpg.Pool, waiter: Waiter, repo_id: int, title: str
) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    async with pool.acquire() as conn:
        started = time.perf_counter()
        # As /new and the CLI submit (bot/actions.py create): its own transaction, no other.
        task = await submit_task(conn, NewTask(repo_id=repo_id, title=title, created_by="bench"))
        future = waiter.ends[task.id] = loop.create_future()
        # The end may have come before the future existed: look once.
        status = await conn.fetchval("SELECT status FROM tasks WHERE id = $1", task.id)
        if status in ("done", "failed", "blocked", "cancelled") and not future.done():
            future.set_result(f"task_{status}")
    kind = await asyncio.wait_for(future, 600)
    elapsed = time.perf_counter() - started
    if kind != "task_done":
        raise SystemExit(f"task {task.key} ended {kind}")
    return task.id, elapsed


async def worker_idle(pool: asyncpg.Pool) -> None:
    """Wait until the worker holds no job: after task_done its job still writes the memory
    and parks the worktree, which must not run beside the floor that comes next."""
    while await pool.fetchval("SELECT EXISTS (SELECT 1 FROM pgqueuer WHERE status = 'picked')"):
        await asyncio.sleep(0.005)


async def database_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """Rows written so far to the tables a task writes most (pg_stat_database's counters lag
    by up to 10 s per backend, too long to read per run)."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM task_events) AS events, "
        "(SELECT count(*) FROM notifications) AS notifications, "
        "(SELECT count(*) FROM task_runs) AS agent_runs"
    )
    assert row is not None
    return dict(row)


# --- the run --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_size(
    dsn: str, scratch: Path, files: int, tasks: int, explain: int
) -> dict[str, object]:
    upstream = scratch / f"upstream-{files}"
    started = time.perf_counter()
    make_upstream(upstream, files)
    made = time.perf_counter() - started
    pool = await create_pool(dsn, max_size=3)
    listener = await asyncpg.connect(dsn)
    waiter = Waiter()
    await listener.add_listener(CHANNEL, waiter.on_notify)
    result: dict[str, object] = {"files": files, "made_s": made}
    try:
        repo = await RepoRepo(pool).add(NewRepo(
            name=f"ovh{files}", source=str(upstream), default_branch="main",
            agent_backend="command", agent_command=shlex.join(AGENT) + " {prompt}",
        ))  # fmt: skip
        floor = Floor(upstream, scratch / f"floor-{files}")
        reused = ReusedFloor(upstream, scratch / f"reused-floor-{files}")
        home = scratch / f"home-{files}"
        async with worker_process(dsn, home, None) as worker:
            _, first = await run_task(pool, waiter, repo.id, "First task: clone and cold map")
            pipeline, floors, reused_floors = [], [], []
            reused.run()  # its worktree made and warm, as the pipeline's spare is
            before = await database_counts(pool)
            cpu_before, floor_cpu = (*cpu(worker.pid), postgres_cpu()), 0.0
            for number in range(tasks):
                pipeline.append((await run_task(pool, waiter, repo.id, f"Task {number}"))[1])
                await worker_idle(pool)
                mine = cpu(os.getpid())[1]  # the floor's git and agent are our children
                floors.append(floor.run())
                floor_cpu += cpu(os.getpid())[1] - mine
                reused_floors.append(reused.run())
            cpu_after = (*cpu(worker.pid), postgres_cpu())
            after = await database_counts(pool)
        result["db_per_task"] = {k: (after[k] - before[k]) / tasks for k in after}
        # CPU per task; the worker and PostgreSQL idle while the floors run.
        spent = [(a - b) / tasks for a, b in zip(cpu_after, cpu_before, strict=True)]
        result["cpu_per_task"] = {"worker": spent[0], "worker_children": spent[1],
                                  "postgres": spent[2], "floor": floor_cpu / tasks}  # fmt: skip
        trace = scratch / f"trace-{files}.json"
        floor_trace = scratch / f"floor-trace-{files}.json"
        explained: list[dict[str, float]] = []
        async with worker_process(dsn, home, trace):
            explained_walls = []
            for number in range(explain):
                task_id, wall = await run_task(pool, waiter, repo.id, f"Explained {number}")
                await worker_idle(pool)  # the next task starts with the worker idle, as above
                explained.append(await phases(pool, task_id))
                explained_walls.append(wall)
        for _ in range(explain):
            floor.run({**os.environ, "GIT_TRACE2_EVENT": str(floor_trace)})
        result.update(first_s=first, pipeline=pipeline, floor=floors, reused=reused_floors,
                      explained_wall=explained_walls, phases=explained,
                      git=git_seconds(trace), floor_git=git_seconds(floor_trace))  # fmt: skip
    finally:
        await listener.close()
        await pool.close()
    return result


def report(results: list[dict[str, object]], tasks: int, explain: int) -> None:
    print(f"\n# {time.strftime('%Y-%m-%d %H:%M')} · {platform.node()} · {os.cpu_count()} cores · "
          f"Python {platform.python_version()} · {git('--version', cwd=ROOT).strip()}")  # fmt: skip
    print(f"\n{tasks} tasks per size, pipeline and floor alternating; seconds.\n")
    print("| files | first task | pipeline p50 | p95 | floor p50 | p95 | ratio p50 (goal <= 1.5x) "
          "| reused-worktree floor p50 | ratio p50 |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        pipe, floor, reused = r["pipeline"], r["floor"], r["reused"]
        assert isinstance(pipe, list)
        assert isinstance(floor, list)
        assert isinstance(reused, list)
        ratio = statistics.median(pipe) / statistics.median(floor)
        strict = statistics.median(pipe) / statistics.median(reused)
        print(f"| {r['files']:,} | {r['first_s']:.2f} | {statistics.median(pipe):.3f} | "
              f"{pct(pipe, 0.95):.3f} | {statistics.median(floor):.3f} | {pct(floor, 0.95):.3f} "
              f"| {ratio:.2f}x | {statistics.median(reused):.3f} | {strict:.2f}x |")  # fmt: skip
    for r in results:
        counts = r["db_per_task"]
        assert isinstance(counts, dict)
        print(f"- {r['files']:,} files, rows per task: " + ", ".join(
            f"{name} {value:.0f}" for name, value in counts.items()))  # fmt: skip
        spent = r["cpu_per_task"]
        assert isinstance(spent, dict)
        print(f"  CPU per task, ms: the worker {spent['worker'] * 1000:.0f} and the git and "
              f"agent it ran {spent['worker_children'] * 1000:.0f}, PostgreSQL "
              f"{spent['postgres'] * 1000:.0f}; the floor's git and agent "
              f"{spent['floor'] * 1000:.0f}")  # fmt: skip
    if not explain:
        return
    print(f"\nWhere the pipeline's time goes ({explain} traced tasks per size; medians, s):\n")
    for r in results:
        phase_rows = r["phases"]
        assert isinstance(phase_rows, list)
        labels = [label for label, _ in PHASES]
        cells = [statistics.median([p.get(label, 0.0) for p in phase_rows]) for label in labels]
        print(f"- {r['files']:,} files: " + "; ".join(
            f"{label} {cell:.3f}" for label, cell in zip(labels, cells, strict=True)))  # fmt: skip
        for name, key in (("pipeline", "git"), ("floor", "floor_git")):
            spent = r[key]
            assert isinstance(spent, dict)
            total = sum(spent.values()) / explain
            top = sorted(spent.items(), key=lambda kv: -kv[1])[:8]
            print(f"  - git in the {name}: {total:.3f} s per task: " + ", ".join(
                f"{n} {s / explain:.3f}" for n, s in top))  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,10000,50000")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--explain", type=int, default=3)
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="where the repositories, worktrees and the worker's home go "
                             "(default: $TMPDIR); see RESULTS.md on this VM's disk")  # fmt: skip
    args = parser.parse_args()
    base = args.dsn or start_embedded(
        Path(tempfile.gettempdir()) / f"devserver-bench-pg-{os.getuid()}"
    )
    name = f"bench_overhead_{uuid.uuid4().hex[:8]}"
    await admin_execute(base, f'CREATE DATABASE "{name}"')
    dsn = with_db(base, name)
    scratch = Path(tempfile.mkdtemp(prefix="devserver-overhead-", dir=args.scratch))
    results = []
    try:
        await apply_all(dsn)
        for files in (int(s) for s in args.sizes.split(",")):
            print(f"== {files:,} files", flush=True)
            results.append(await bench_size(dsn, scratch, files, args.tasks, args.explain))
    finally:
        await admin_execute(base, f'DROP DATABASE "{name}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)
    report(results, args.tasks, args.explain)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    asyncio.run(main())
