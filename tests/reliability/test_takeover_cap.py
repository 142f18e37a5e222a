"""A task whose agent takes its worker down every time (as one that exhausts memory does, when
the OOM killer picks the worker) is not run without limit: each new worker takes the stale job
over and counts it, and after MAX_RECOVERIES takeovers the task fails, saying why."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

from storage.task_status import TaskStatus
from storage.tasks import NewTask, TaskRepo
from tests.gitrepos import make_repo
from tests.reliability.conftest import (
    Service,
    add_repo,
    agent_command,
    env_for,
    services,
    start,
    status_of,
    takeovers,
)
from tests.worker.running import Pool, wait_until
from worker.queue import submit_task
from worker.recovery import LOST_RUN, MAX_RECOVERIES, takeover_reason


async def test_a_task_that_kills_its_worker_every_time_fails_after_max_recoveries(
    pool: Pool, db_dsn: str, tmp_path: Path, holds: Path
) -> None:
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})
    agents = tmp_path / "agents.log"
    repo = await add_repo(pool, upstream, "demo", agent_command(agents, holds))
    async with pool.acquire() as conn:
        task = await submit_task(conn, NewTask(repo_id=repo.id, title="Eat all the memory"))
    (holds / "kill-worker").touch()  # agent.py SIGKILLs the worker that started it
    env = env_for(db_dsn, tmp_path / "home", WORKER_HEARTBEAT_SECONDS="2",
                  WORKER_CONCURRENCY="1")  # fmt: skip

    started: list[Service] = []
    with contextlib.ExitStack() as stack:
        for number in range(1, MAX_RECOVERIES + 3):  # one more than it may take
            worker = start("worker", env, tmp_path / f"worker-{number}.log")
            started.append(worker)
            stack.enter_context(services(worker))

            async def over(worker: Service = worker) -> bool:
                return worker.process.poll() is not None or (
                    await status_of(pool, task.key) == "failed"
                )

            await wait_until(over, f"worker {number} killed, or the task failed", within=60)
            if await status_of(pool, task.key) == "failed":
                break
        last = started[-1]
        assert last.process.poll() is None, last.output()  # the one that failed it lives on
        assert last.stop() == 0, last.output()

    killed = started[:-1]
    assert len(killed) == MAX_RECOVERIES + 1
    assert all(w.process.returncode == -signal.SIGKILL for w in killed)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status_reason == takeover_reason(TaskStatus.RUNNING, MAX_RECOVERIES)
    assert failed.status_reason.startswith(
        "the worker running it stopped (crashed or host lost) 3 times, the last time while it "
        "was running; it was started again twice already"
    )
    assert [t["recovery"] for t in await takeovers(pool, task.id)] == [1, 2]
    starts = [line for line in agents.read_text().splitlines() if line.startswith("start ")]
    assert len(starts) == MAX_RECOVERIES + 1  # at most MAX_RECOVERIES + 1 runs
    runs = await pool.fetch("SELECT error_class, finished_at FROM task_runs ORDER BY id")
    assert [r["error_class"] for r in runs] == [LOST_RUN] * (MAX_RECOVERIES + 1)
