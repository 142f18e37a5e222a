"""The real Claude Code CLI as the agent, against a scripted fake Anthropic API.

The pinned `@anthropic-ai/claude-code` (.ci/install-claude-cli installs it; .ci/test runs
that and exports DEVSERVER_CLAUDE_CLI) runs whole tasks through the worker, talking to
tests/fakes/anthropic.py on 127.0.0.1: its tools really edit the worktree, the checks run,
the mbox applies. The worker reads its configuration from the environment, as in production
(CLAUDE_EXECUTABLE, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY, CLAUDE_MAX_RETRIES).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from storage.artifacts import ArtifactRepo
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_runs import TaskRun, TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, Task, TaskRepo
from tests.fakes.anthropic import (
    MODEL,
    ApiError,
    Call,
    FakeAnthropic,
    Reply,
    ToolUse,
    bash,
    tool_turn,
    write_file,
)
from tests.gitrepos import git, git_env, make_repo
from tests.worker.running import SETTINGS, Pool, running_worker, wait_status, wait_until
from worker.queue import submit_task

CLI_VERSION = "2.1.331"
INSTALL_HINT = ("install it with `.ci/install-claude-cli` (an npm install of "
                f"@anthropic-ai/claude-code@{CLI_VERSION}), or point DEVSERVER_CLAUDE_CLI at "
                "its `claude` binary")  # fmt: skip
API_KEY = "sk-ant-fake-key"
PY = shlex.quote(sys.executable)
CALC = "def add(a, b):\n    return a + b\n"
CHECK = f'{PY} -c "import calc; assert calc.add(2, 3) == 5"'
WORKER = SETTINGS.model_copy(update={"agent_timeout_seconds": 60})


def _installed_cli() -> Path:
    tools = Path(os.environ.get("DEVSERVER_TOOLS", Path.home() / ".cache" / "devserver-tools"))
    default = tools / f"claude-code-{CLI_VERSION}" / "node_modules" / ".bin" / "claude"
    return Path(os.environ.get("DEVSERVER_CLAUDE_CLI") or default)


@pytest.fixture(scope="session")
def claude_cli() -> str:
    """The pinned CLI's binary; the tests fail (not skip) without it."""
    cli = _installed_cli()
    if not os.access(cli, os.X_OK):
        pytest.fail(f"Claude Code CLI not found at {cli}: {INSTALL_HINT}")
    env = {**os.environ, "DISABLE_AUTOUPDATER": "1"}
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, timeout=30,
                             check=False, env=env)  # fmt: skip
    if not version.stdout.startswith(f"{CLI_VERSION} "):
        pytest.fail(f"{cli} is not Claude Code {CLI_VERSION} ({version.stdout.strip()!r} "
                    f"{version.stderr.strip()!r}): {INSTALL_HINT}")  # fmt: skip
    return str(cli)


@pytest.fixture
async def api(claude_cli: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeAnthropic]:
    """The fake API, and the worker configured for it; fails a test whose CLI broke the
    request shape or called anything unscripted."""
    async with FakeAnthropic() as fake:
        monkeypatch.setenv("CLAUDE_EXECUTABLE", claude_cli)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("CLAUDE_MAX_RETRIES", "0")
        monkeypatch.delenv("CLAUDE_MODEL", raising=False)
        yield fake
    fake.assert_clean()


async def _repo(pool: Pool, upstream: Path, *, max_attempts: int = 1) -> Repo:
    new = NewRepo(name="calc", source=str(upstream), default_branch="main",
                  agent_backend="claude", test_command=CHECK, max_attempts=max_attempts,
                  git_author_name="Agent", git_author_email="agent@example.invalid")  # fmt: skip
    return await RepoRepo(pool).add(new)


async def _submit(pool: Pool, repo: Repo, **options: Any) -> Task:
    async with pool.acquire() as conn:
        new = NewTask(repo_id=repo.id, title="Add an adder",
                      description="calc.add(a, b) returns the sum", **options)  # fmt: skip
        return await submit_task(conn, new)


async def _attempts(pool: Pool, task: Task) -> list[TaskRun]:
    return [r for r in await TaskRunRepo(pool).for_task(task.id) if r.phase == "attempt"]


def _reported(run: TaskRun) -> dict[str, Any]:
    """The CLI's own result object, from the run's output tail."""
    for line in reversed(run.output_tail.splitlines()):
        if line.startswith('{"') and '"type":"result"' in line:
            result: dict[str, Any] = json.loads(line)
            return result
    raise AssertionError(f"no result object in {run.output_tail!r:.500}")


def _read(name: str) -> Any:
    return lambda cwd: ToolUse("Read", {"file_path": str(cwd / name)})


def _edit(name: str, old: str, new: str) -> Any:
    return lambda cwd: ToolUse("Edit", {"file_path": str(cwd / name), "old_string": old,
                                        "new_string": new})  # fmt: skip


def _apply_mbox(mbox: bytes, upstream: Path, clone: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(upstream), str(clone)], check=True, env=git_env())
    subprocess.run(["git", "am", "-q"], input=mbox, cwd=clone, check=True, env=git_env())


def _check_passes(clone: Path) -> bool:
    return subprocess.run(shlex.split(CHECK), cwd=clone, check=False).returncode == 0


async def test_the_real_cli_edits_the_worktree_and_the_mbox_applies(
    api: FakeAnthropic, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Calc\n"})
    api.then(
        tool_turn(_read("README.md"), write_file("calc.py", CALC), text="Adding calc.py."),
        tool_turn(_edit("README.md", "# Calc\n", "# Calc\n\n`calc.add(a, b)` adds.\n")),
        tool_turn(bash("git add -A && git commit -q -m 'Add calc.add'")),
        Reply("calc.add is in place and documented."),
    )
    repo = await _repo(pool, upstream)
    task = await _submit(pool, repo)

    async with running_worker(db_dsn, tmp_path / "home", WORKER):
        done = await wait_status(pool, task.id, TaskStatus.DONE, within=60)

    # The CLI ran the tools for real in the worktree, in one session, under our key.
    assert [c.answer for c in api.calls] == ["reply tool_use"] * 3 + ["reply end_turn"]
    results = [r for c in api.calls for r in c.tool_results()]
    assert len(results) == 4
    assert not [r for r in results if r.get("is_error")], results
    first = api.calls[0]
    assert "Add an adder" in "\n".join(first.texts())  # the worker's prompt reached the model
    assert "calc.add(a, b) returns the sum" in "\n".join(first.texts())
    assert all(c.stream and c.query == "beta=true" for c in api.calls)
    assert {c.headers["x-api-key"] for c in api.calls} == {API_KEY}
    assert {c.body["model"] for c in api.calls} == {MODEL}
    sessions = {c.headers["x-claude-code-session-id"] for c in api.calls}
    # The run as recorded: its session, turns and cost are the CLI's own.
    [run] = await _attempts(pool, task)
    reported = _reported(run)
    assert run.ok is True
    assert run.error_class is None
    assert run.backend == "claude"
    assert sessions == {run.session_id}
    assert run.turns == reported["num_turns"]
    assert reported["num_turns"] >= len(api.calls)  # 2.1.331 counts one more than its tool results
    assert run.cost_usd == Decimal(str(reported["total_cost_usd"]))
    assert run.cost_usd is not None
    assert run.cost_usd > 0
    assert (done.spent_turns, done.spent_cost_usd) == (run.turns, run.cost_usd)
    assert run.verify is not None
    assert run.verify["passed"] is True
    kinds = [e.kind for e in await TaskEventRepo(pool).for_task(task.id)]
    assert EventKind.VERIFY_PASSED in kinds
    # The agent's own commit carries the repo's identity; the mbox reproduces the change.
    mbox = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    assert b"From: Agent <agent@example.invalid>" in mbox
    clone = tmp_path / "clone"
    _apply_mbox(mbox, upstream, clone)
    assert (clone / "calc.py").read_text() == CALC
    assert (clone / "README.md").read_text() == "# Calc\n\n`calc.add(a, b)` adds.\n"
    assert _check_passes(clone)
    assert git(clone, "log", "-1", "--format=%s") == "Add calc.add"


async def test_a_429_waits_without_using_an_attempt_then_the_task_finishes(
    api: FakeAnthropic, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Calc\n"})
    api.then(ApiError())  # rate_limit_error, retry-after 60, x-should-retry: false
    repo = await _repo(pool, upstream)
    task = await _submit(pool, repo)
    events = TaskEventRepo(pool)

    async def backed_off() -> bool:
        found = [e for e in await events.for_task(task.id)
                 if e.kind is EventKind.RATE_LIMIT_BACKOFF]  # fmt: skip
        return bool(found) and (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED

    async with running_worker(db_dsn, tmp_path / "home", WORKER):
        await wait_until(backed_off, "a rate-limit backoff", within=60)
        [backoff] = [e for e in await events.for_task(task.id)
                     if e.kind is EventKind.RATE_LIMIT_BACKOFF]  # fmt: skip
        p = backoff.payload
        # The CLI gave up at once (x-should-retry: false), and the worker read its result.
        assert [c.answer for c in api.calls] == ["429 rate_limit_error"]
        assert (p["kind"], p["phase"], p["wait"], p["seconds"]) == ("rate_limit", "attempt", 1, 60)
        assert "Request rejected (429)" in p["message"]
        execute_after = await pool.fetchval("SELECT execute_after FROM pgqueuer WHERE id = $1",
                                            p["job_id"])  # fmt: skip
        assert abs((execute_after - datetime.fromisoformat(p["resume_at"])).total_seconds()) < 1
        [refused] = await _attempts(pool, task)
        assert (refused.ok, refused.error_class) == (False, "rate_limit")
        assert await TaskRunRepo(pool).attempts_made(task.id) == 0

        # The limit resets: the API answers again, and the delayed job's time comes.
        api.then(tool_turn(write_file("calc.py", CALC)), Reply("Added calc.py."))
        await pool.execute("UPDATE pgqueuer SET execute_after = now() WHERE id = $1", p["job_id"])
        await wait_status(pool, task.id, TaskStatus.DONE, within=60)

    runs = await _attempts(pool, task)
    assert [(r.attempt, r.error_class) for r in runs] == [(1, "rate_limit"), (1, None)]
    assert await TaskRunRepo(pool).attempts_made(task.id) == 1  # max_attempts=1 was enough
    again = api.calls[1]
    assert "the model API refused the run (rate_limit)" in "\n".join(again.texts())
    clone = tmp_path / "clone"
    _apply_mbox(await ArtifactRepo(pool).content(task.id, "combined.mbox"), upstream, clone)
    assert (clone / "calc.py").read_text() == CALC


def _tool_use_ids(call: Call) -> list[str]:
    """The ids of the tool calls in the assistant turns the CLI sent back."""
    return [b["id"] for m in call.body["messages"] if m["role"] == "assistant"
            for b in m["content"] if b["type"] == "tool_use"]  # fmt: skip


def _keeps_writing(call: Call) -> Reply:
    """The model never finishes: one more file each turn."""
    n = len([m for m in call.body["messages"] if m.get("role") == "assistant"]) + 1
    return Reply(f"Step {n}.", (ToolUse("Write", {"file_path": str(call.cwd / f"step{n}.txt"),
                                                  "content": f"{n}\n"}),))  # fmt: skip


async def test_the_task_turn_budget_stops_the_cli_and_blocks_the_task_with_its_work(
    api: FakeAnthropic, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Calc\n"})
    api.then(_keeps_writing)
    api.repeat_last = True
    repo = await _repo(pool, upstream)
    task = await _submit(pool, repo, max_turns=2)

    async with running_worker(db_dsn, tmp_path / "home", WORKER):
        blocked = await wait_status(pool, task.id, TaskStatus.BLOCKED, within=60)

    assert [c.answer for c in api.calls] == ["reply tool_use"] * 2  # --max-turns 2 held
    [run] = await _attempts(pool, task)
    reported = _reported(run)
    assert (reported["subtype"], reported["terminal_reason"]) == ("error_max_turns", "max_turns")
    assert (run.ok, run.exit_code, run.error_class) == (False, 1, "max_turns")
    assert "Reached maximum number of turns (2)" in run.error_message
    assert blocked.spent_turns == reported["num_turns"] == 3
    assert blocked.status_reason == "turn limit 2 reached (3 used)"
    events = await TaskEventRepo(pool).for_task(task.id)
    [end] = [e for e in events if e.kind is EventKind.TASK_BLOCKED]
    assert "budget_exceeded" in end.payload
    # What the CLI wrote before it stopped is kept, as a WIP commit in the patches.
    clone = tmp_path / "clone"
    _apply_mbox(await ArtifactRepo(pool).content(task.id, "combined.mbox"), upstream, clone)
    assert sorted(p.name for p in clone.glob("step*.txt")) == ["step1.txt", "step2.txt"]
    assert git(clone, "log", "-1", "--format=%s").startswith("WIP: partial work")


async def test_out_of_turns_the_next_attempt_resumes_the_cli_session(
    api: FakeAnthropic, db_dsn: str, pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Calc\n"})
    api.then(
        tool_turn(write_file("notes.txt", "plan: add calc.py\n")),
        tool_turn(_read("README.md")),
        # The second attempt: `claude --resume`, told why the first one stopped.
        tool_turn(write_file("calc.py", CALC)),
        Reply("Done: calc.add."),
    )
    repo = await _repo(pool, upstream, max_attempts=2)
    task = await _submit(pool, repo)
    settings = WORKER.model_copy(update={"default_max_turns": 2})  # the per-run cap

    async with running_worker(db_dsn, tmp_path / "home", settings):
        await wait_status(pool, task.id, TaskStatus.DONE, within=60)

    first, second = await _attempts(pool, task)
    assert (first.error_class, second.error_class) == ("max_turns", None)
    assert first.session_id is not None
    assert second.session_id == first.session_id
    resumed = api.calls[2]
    # The resumed session carries the first run's conversation, then the worker's feedback.
    earlier = {i for c in api.calls[:2] for i in _tool_use_ids(c)}
    carried = set(_tool_use_ids(resumed))
    assert earlier
    assert earlier <= carried
    assert "ended early (max_turns)" in resumed.texts()[-1]
    kinds = [(e.kind, e.payload.get("key")) for e in await TaskEventRepo(pool).for_task(task.id)]
    assert (EventKind.ERROR_CLASSIFIED, "agent.max_turns") in kinds
