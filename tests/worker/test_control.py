"""WorkerControl on its own: its LISTEN connection dies, and it comes back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from storage.tasks import TaskRepo
from storage.worker_state import WorkerStateRepo
from tests.gitrepos import make_repo
from tests.worker.running import Pool, add_repo, pipeline_agent, submit, wait_until
from worker.control import APPLICATION_NAME, WorkerControl

_TERMINATE = """
    SELECT count(pg_terminate_backend(pid))
      FROM pg_stat_activity
     WHERE application_name = $1 AND datname = current_database()  -- not other tests' workers
"""


async def test_control_reconnects_after_its_connection_dies(
    pool: Pool, db_dsn: str, tmp_path: Path
) -> None:
    repo = await add_repo(pool, make_repo(tmp_path / "up", {"a": "a\n"}), pipeline_agent("noop"))
    task = await submit(pool, repo)
    control = WorkerControl()
    assert control.paused  # until it has read the switch
    listener = asyncio.create_task(control.listen(db_dsn, recheck_seconds=0.2))
    try:

        async def resumed() -> bool:
            return not control.paused

        await wait_until(resumed, "the switch read", within=10)
        assert await pool.fetchval(_TERMINATE, APPLICATION_NAME) == 1
        with control.watch(task.id) as cancel:
            await TaskRepo(pool).request_cancel(task.id, "eve")
            await asyncio.wait_for(cancel.wait(), timeout=10)
        await WorkerStateRepo(pool).set_paused(True)

        async def paused() -> bool:
            return control.paused

        await wait_until(paused, "the pause seen", within=10)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
