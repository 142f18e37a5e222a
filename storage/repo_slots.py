"""SQL of a repo's parallel-task limit (repos.max_parallel_tasks), for the worker's jobs.

A task holds one of its repo's slots while it is active (preparing to delivering). Taking a
slot is a count and a status move in one transaction, under a transaction-scoped advisory
lock per repo, so two workers never both take the last one. (The advisory lock, not a row
lock on `repos`: nothing else that updates the repo's row has to wait for it.)
"""

from __future__ import annotations

from collections.abc import Iterable

from storage.db import Executor
from storage.task_status import TaskStatus

LOCK_CLASS = 7301  # the advisory lock key's first half: "repo slots"

_LOCK = "SELECT pg_advisory_xact_lock($1, $2::integer)"
# Whether repo $1 has a slot free: fewer tasks in one of the statuses $2, other than task
# $3, than its max_parallel_tasks (read now, so a changed limit counts at once).
_FREE = """
    SELECT (SELECT count(*)
              FROM tasks
             WHERE repo_id = $1
               AND status = ANY($2::text[])
               AND id <> $3) < max_parallel_tasks
      FROM repos
     WHERE id = $1
"""


class RepoSlotRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def lock(self, repo_id: int) -> None:
        """Wait for the repo's slot lock; inside a transaction (released at its end)."""
        await self._db.execute(_LOCK, LOCK_CLASS, repo_id)

    async def free(self, repo_id: int, task_id: int, holding: Iterable[TaskStatus]) -> bool:
        """Whether the repo has a slot for `task_id`: fewer other tasks in `holding` than its
        max_parallel_tasks (read now, so a changed limit counts at once)."""
        return bool(await self._db.fetchval(_FREE, repo_id, sorted(holding), task_id))
