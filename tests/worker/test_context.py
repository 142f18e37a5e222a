"""Evidence before the first edit, and targeted retries after a failure, through real jobs:
the timeline, what the agent is told, the reality threshold, and the retry policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storage.memory import MemoryRepo
from storage.notifications import NoticeKind
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from tests.gitrepos import make_repo
from tests.worker.budgets import budget_repo, claude_deps, submit_task_with, task_events
from tests.worker.running import Pool, Sequence
from worker import jobs
from worker.deps import WorkerDeps
from worker.queue import submit_task

LOGIN = """class LoginForm:
    def check_password(self, password):
        return password == "secret"
"""


def login_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "login-upstream", {"README.md": "# Shop\n", "app/login.py": LOGIN,
                                                   "app/cart.py": "def total(items):\n"
                                                   "    return sum(items)\n"})  # fmt: skip


async def add_repo(pool: Pool, upstream: Path, agent: Sequence, **options: Any) -> Repo:
    new = NewRepo(name="shop", source=str(upstream), default_branch="main",
                  agent_backend="command", agent_command=agent.command,
                  git_author_name="Agent", git_author_email="agent@example.invalid",
                  **options)  # fmt: skip
    return await RepoRepo(pool).add(new)


async def submit(pool: Pool, repo: Repo, title: str, description: str = "") -> Task:
    async with pool.acquire() as conn:
        new = NewTask(repo_id=repo.id, title=title, description=description, chat_id=7)
        return await submit_task(conn, new)


async def test_a_task_starts_with_the_map_what_happened_before_and_its_reality_score(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"app/login.py": LOGIN + "# fixed\n"}}])
    repo = await add_repo(pool, login_repo(tmp_path), agent)
    first = await submit(pool, repo, "Reject empty passwords in LoginForm.check_password",
                         "app/login.py accepts an empty password.")  # fmt: skip
    await jobs.run_task(first.id, deps)
    assert (await TaskRepo(pool).by_id(first.id)).status is TaskStatus.DONE
    memory = await MemoryRepo(pool).for_task(first.id)
    assert memory is not None
    assert (memory.outcome, list(memory.files)) == ("success", ["app/login.py"])

    second = await submit(pool, repo, "Reject whitespace passwords in LoginForm.check_password",
                          "app/login.py accepts a password of only spaces.")  # fmt: skip
    await jobs.run_task(second.id, deps)

    kinds = [e.kind for e in await task_events(pool, second)]
    ready = kinds.index(EventKind.WORKSPACE_READY)
    started = kinds.index(EventKind.AGENT_STARTED)
    for kind in (EventKind.REPO_MAP_BUILT, EventKind.REALITY_SIGNAL):
        assert ready < kinds.index(kind) < started, kind  # all before the first edit
    # The recall needs no worktree: it runs while the workspace is made.
    assert kinds.index(EventKind.MEMORY_RECALL) < started
    assert kinds[-1] is EventKind.MEMORY_WRITTEN
    [built] = await task_events(pool, second, EventKind.REPO_MAP_BUILT)
    assert built.payload["ok"] is True
    assert built.payload["cached"] is True  # the same tree as the first task's
    assert built.payload["files"] == 3
    [recalled] = await task_events(pool, second, EventKind.MEMORY_RECALL)
    assert [m["key"] for m in recalled.payload["memories"]] == [first.key]
    [signal] = await task_events(pool, second, EventKind.REALITY_SIGNAL)
    sources = {s["name"]: s for s in signal.payload["sources"]}
    assert set(sources) == {"repo_map", "recent_commits", "collision", "memory"}
    assert sources["repo_map"]["signal"] == 1.0
    assert "2 of 2 names found" in sources["repo_map"]["evidence"]
    assert "1 similar past task" in sources["memory"]["evidence"]
    assert signal.payload["score"] >= 80
    assert signal.payload["confidence"] == 1.0

    prompt = agent.calls()[1]["prompt"]
    assert "## Repository map" in prompt
    assert "app/login.py" in prompt
    assert "check_password" in prompt
    assert "## What happened before in this repository" in prompt
    assert first.key in prompt
    assert "## Reality check:" in prompt


async def test_a_task_below_the_reality_threshold_is_blocked_before_any_agent_run(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"x.txt": "x\n"}}])
    repo = await add_repo(pool, login_repo(tmp_path), agent, reality_threshold=60)
    task = await submit(pool, repo, "Speed up FrobnicatorCache.rebuild_index",
                        "See src/frobnicator/cache.rs and `warm_shards`.")  # fmt: skip

    await jobs.run_task(task.id, deps)

    blocked = await TaskRepo(pool).by_id(task.id)
    assert blocked.status is TaskStatus.BLOCKED
    assert "below this repo's threshold 60" in blocked.status_reason
    assert "missing: " in blocked.status_reason  # the evidence, named
    assert "FrobnicatorCache" in blocked.status_reason
    assert agent.calls() == []
    assert await TaskRunRepo(pool).for_task(task.id) == []
    [signal] = await task_events(pool, task, EventKind.REALITY_SIGNAL)
    assert signal.payload["score"] < 60
    assert signal.payload["threshold"] == 60
    # The chat hears it, reason and evidence, as a loud message.
    [ended] = await task_events(pool, task, EventKind.TASK_BLOCKED)
    kinds = await pool.fetch("SELECT kind FROM notifications WHERE payload->>'event_id' = $1",
                             str(ended.id))  # fmt: skip
    assert NoticeKind.ALERT in {r["kind"] for r in kinds}
    assert await MemoryRepo(pool).for_task(task.id) is None  # nothing ran: nothing learnt


async def test_a_failed_check_is_classified_and_the_agent_gets_its_hint_and_lines(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    agent = Sequence(tmp_path, [{"write": {"app/login.py": LOGIN + "broken(\n"}}])
    check = "python3 -c 'import app.login'"
    repo = await add_repo(pool, login_repo(tmp_path), agent, test_command=check, max_attempts=3)
    task = await submit(pool, repo, "Tidy app/login.py")

    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    # The same class twice: escalated after the second attempt, not a third.
    assert "python.syntax_error" in failed.status_reason
    assert "escalated" in failed.status_reason
    assert await TaskRunRepo(pool).attempts_made(task.id) == 2
    classified = await task_events(pool, task, EventKind.ERROR_CLASSIFIED)
    assert [e.payload["key"] for e in classified] == ["python.syntax_error"] * 2
    first = classified[0].payload
    assert (first["source"], first["severity"], first["escalate"]) == ("test", "recoverable", None)
    assert first["hint"]
    assert first["location"].startswith("app/login.py:4") or "login.py" in first["location"]
    assert classified[1].payload["escalate"]
    # The retry prompt: class, hint and the quoted error with its location.
    retry = agent.calls()[1]["prompt"]
    assert "python.syntax_error" in retry
    assert first["hint"] in retry
    assert "SyntaxError" in retry
    assert "login.py" in retry


async def test_a_hard_class_escalates_at_once(pool: Pool, deps: WorkerDeps, tmp_path: Path) -> None:
    agent = Sequence(tmp_path, [{"write": {"hello.txt": "hi\n"}}])
    repo = await add_repo(pool, login_repo(tmp_path), agent, test_command="no-such-runner -q",
                          max_attempts=3)  # fmt: skip
    task = await submit(pool, repo, "Say hello")

    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "shell.command_not_found" in failed.status_reason
    assert await TaskRunRepo(pool).attempts_made(task.id) == 1
    [classified] = await task_events(pool, task, EventKind.ERROR_CLASSIFIED)
    assert classified.payload["severity"] == "hard"
    assert classified.payload["escalate"]
    memory = await MemoryRepo(pool).for_task(task.id)
    assert memory is not None
    assert (memory.outcome, memory.error_class) == ("failure", "shell.command_not_found")


async def test_an_agent_auth_error_is_classified_from_the_cli_result_and_escalates_at_once(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    deps = claude_deps(pool, tmp_path, "error_401_auth")
    repo = await budget_repo(pool, upstream, backend="claude", max_attempts=3)
    task = await submit_task_with(pool, repo)

    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "ended with auth" in failed.status_reason
    assert "escalated: agent.auth" in failed.status_reason
    assert len(await TaskRunRepo(pool).for_task(task.id)) == 1  # no second try
    [classified] = await task_events(pool, task, EventKind.ERROR_CLASSIFIED)
    assert (classified.payload["key"], classified.payload["severity"]) == ("agent.auth", "hard")
