"""Two `devserver worker` processes on one database and one home, 200 tasks across 3 repos
whose max_parallel_tasks are 2, 3 and 1: every task runs exactly once, no repo ever runs more
tasks at once than it may, and no two running tasks share a worktree.

The agent (load_agent.sh) notes when it starts and ends, in which directory, under which
worker (its parent: CommandBackend runs it without a shell); overlaps are computed from that.
"""

from __future__ import annotations

import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from storage.tasks import NewTask
from tests.gitrepos import make_repo
from tests.reliability.conftest import HERE, add_repo, env_for, services, start
from tests.worker.running import Pool, wait_until
from worker.queue import submit_task

LIMITS = {"alpha": 2, "beta": 3, "gamma": 1}  # max_parallel_tasks per repo
TASKS = 200


@dataclass(frozen=True)
class Run:
    key: str
    worker: int  # the agent's parent: the worker process that ran it
    start: float
    end: float
    cwd: str

    @property
    def repo(self) -> str:
        return self.key.split("-")[0].lower()


def _runs(log: Path) -> list[Run]:
    starts: dict[str, list[str]] = {}
    runs = []
    for line in log.read_text().splitlines():
        what, key, _pid, worker, at, cwd = line.split()
        if what == "start":
            starts[key] = [worker, at, cwd]
        else:
            begun = starts.pop(key)
            runs.append(Run(key, int(begun[0]), float(begun[1]), float(at), begun[2]))
    assert not starts, f"agents that never ended: {sorted(starts)}"
    return runs


def _most_at_once(runs: list[Run]) -> int:
    """The largest number of runs in progress at one moment."""
    edges = sorted([(r.start, 1) for r in runs] + [(r.end, -1) for r in runs])
    now = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


async def test_two_workers_run_200_tasks_of_3_repos_each_once_within_the_repo_limits(
    pool: Pool, db_dsn: str, tmp_path: Path
) -> None:
    log = tmp_path / "agents.log"
    agent = f"/bin/sh {shlex.quote(str(HERE / 'load_agent.sh'))} {shlex.quote(str(log))}"
    keys = []
    repos = []
    for name, limit in LIMITS.items():
        upstream = make_repo(tmp_path / name, {"README.md": f"# {name}\n"})
        repo = await add_repo(pool, upstream, name, agent)
        await pool.execute("UPDATE repos SET max_parallel_tasks = $2 WHERE id = $1", repo.id, limit)
        repos.append(repo)
    async with pool.acquire() as conn:
        for n in range(TASKS):
            new = NewTask(repo_id=repos[n % len(repos)].id, title=f"Change {n}")
            keys.append((await submit_task(conn, new)).key)

    env = env_for(db_dsn, tmp_path / "home", WORKER_CONCURRENCY="4")
    workers = [start("worker", env, tmp_path / f"worker-{n}.log") for n in (1, 2)]
    with services(*workers):
        alive: set[str] = set()

        async def all_done() -> bool:
            alive.update(r["id"] for r in await pool.fetch("SELECT id FROM workers"))
            left = await pool.fetchval("SELECT count(*) FROM tasks WHERE status <> 'done'")
            return int(left) == 0 or any(w.process.poll() is not None for w in workers)

        await wait_until(all_done, f"{TASKS} tasks done", within=240)
        assert all(w.process.poll() is None for w in workers), workers[0].output()
        assert all(w.stop() == 0 for w in workers)
    assert len(alive) == 2  # two worker rows, both beating

    statuses = Counter(r["status"] for r in await pool.fetch("SELECT status FROM tasks"))
    assert statuses == {"done": TASKS}
    per_task = await pool.fetch(
        "SELECT t.key, count(r.id) AS runs FROM tasks t LEFT JOIN task_runs r ON r.task_id = t.id"
        " GROUP BY t.key"
    )
    assert {r["key"]: r["runs"] for r in per_task} == dict.fromkeys(keys, 1)
    assert not await pool.fetchval("SELECT count(*) FROM task_events WHERE kind = 'task_recovered'")

    runs = _runs(log)
    assert sorted(r.key for r in runs) == sorted(keys)  # each agent ran exactly once
    assert {r.worker for r in runs} == {w.pid for w in workers}  # both workers took tasks
    by_repo: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_repo[run.repo].append(run)
    most = {repo: _most_at_once(repo_runs) for repo, repo_runs in by_repo.items()}
    assert all(most[name] <= limit for name, limit in LIMITS.items()), most
    assert max(most.values()) > 1, most  # tasks of one repo did run side by side
    for run in runs:  # a worktree is never used by two runs at the same time
        overlapping = [o for o in runs if o is not run and o.start < run.end and run.start < o.end]
        assert run.cwd not in {o.cwd for o in overlapping}
        assert Path(run.cwd).name == run.key
