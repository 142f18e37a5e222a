"""The pull request's description: the task, its checks, cost, preflight; secrets withheld."""

from __future__ import annotations

import random
import string

from storage.repos import NewRepo, RepoRepo
from storage.tasks import NewTask
from tests.worker.running import Pool
from worker.pr_body import pr_body
from worker.preflight import Report
from worker.queue import submit_task


async def test_an_apply_task_names_the_checks_that_passed_and_withholds_a_secret(
    pool: Pool,
) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="shop", source="/x", default_branch="main"))
    rng = random.Random(3)
    token = "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    async with pool.acquire() as conn:
        task = await submit_task(conn, NewTask(repo_id=repo.id, title="Apply: 2 commits",
                                               kind="apply",
                                               description=f"see\nTOKEN={token}\nend"))  # fmt: skip
    body = pr_body(task, [], Report(2, ["a.py"]), checked=["test", "lint"])
    assert "### Verification\n\nPassed: test, lint." in body
    assert "passed: 2 commit(s), 1 file(s)" in body
    assert token not in body
    assert "_(a line withheld: it looks like a secret, github-classic-token)_" in body
    assert "see\n" in body
    assert "This repository has no checks configured." in pr_body(task, [], Report(2, []))
