"""The repo's fallback agent, through the real job (worker.jobs.run_task): a refused run of
the primary is done by the fallback at once; a refused fallback waits as before."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from bot.event_texts import describe_event
from devserver.cli import main
from storage.errors import StorageError
from storage.notifications import NoticeKind
from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import Task, TaskRepo
from tests.claude_samples import SAMPLES
from tests.gitrepos import make_repo
from tests.worker.budgets import budget_repo, submit_task_with, task_events
from tests.worker.fake_clis import fake_cli
from tests.worker.running import Pool, fake_claude, worker_deps
from worker import jobs
from worker.agents.aider import AiderBackend
from worker.agents.base import AgentBackend
from worker.agents.claude import ClaudeBackend
from worker.agents.codex import CodexBackend
from worker.agents.registry import UnknownBackend, backend_factory
from worker.deps import WorkerDeps
from worker.settings import AiderSettings, ClaudeSettings, CodexSettings, WorkerSettings

SETTINGS = WorkerSettings(agent_timeout_seconds=20)


def _deps(pool: Pool, tmp_path: Path, settings: WorkerSettings = SETTINGS,
          **backends: AgentBackend) -> WorkerDeps:  # fmt: skip
    """Each backend name runs the backend given for it; any other name is unknown."""

    def build(repo: Repo, name: str) -> AgentBackend:
        if name not in backends:
            raise UnknownBackend(name)
        return backends[name]

    return dataclasses.replace(worker_deps(pool, tmp_path, settings=settings), backend_for=build)


def _refused_claude(tmp_path: Path) -> ClaudeBackend:
    """Claude Code answering 429 (a real sample) and changing nothing."""
    return ClaudeBackend(fake_claude(tmp_path), extra_env={
        "FAKE_CLAUDE_SAMPLE": str(SAMPLES / "error_429_rate_limit"),
        "FAKE_CLAUDE_CALLS": str(tmp_path / "claude-calls"),
    })  # fmt: skip


async def _runs(pool: Pool, task: Task) -> list[tuple[int, str, str | None, str | None]]:
    runs = await TaskRunRepo(pool).for_task(task.id)
    return [(r.attempt, r.backend, r.model, r.error_class) for r in runs]


def _model(call: dict[str, Any]) -> str | None:
    argv: list[str] = call["argv"]
    return argv[argv.index("--model") + 1] if "--model" in argv else None


async def test_a_rate_limited_run_is_done_by_the_fallback_at_once(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    codex = fake_cli(tmp_path, "codex", "success_json", write="change")
    deps = _deps(pool, tmp_path, claude=_refused_claude(tmp_path),
                 codex=CodexBackend(codex.executable))  # fmt: skip
    repo = await budget_repo(pool, upstream, backend="claude", agent_model="claude-opus-x",
                             fallback_backend="codex", max_attempts=1)  # fmt: skip
    task = await submit_task_with(pool, repo, chat_id=42)

    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    # Both runs are attempt 1; the fallback's run names the fallback (the repo's model is
    # Claude's, so codex runs with its own default).
    assert await _runs(pool, task) == [(1, "claude", "claude-opus-x", "rate_limit"),
                                       (1, "codex", None, None)]  # fmt: skip
    assert await TaskRunRepo(pool).attempts_made(task.id) == 1
    assert await task_events(pool, task, EventKind.RATE_LIMIT_BACKOFF) == []
    [switch] = await task_events(pool, task, EventKind.AGENT_FALLBACK)
    assert {k: v for k, v in switch.payload.items() if k != "message"} == {
        "phase": "attempt", "attempt": 1, "from_backend": "claude", "from_model": "claude-opus-x",
        "to_backend": "codex", "to_model": None, "reason": "rate_limit",
    }  # fmt: skip
    assert "429" in switch.payload["message"]
    assert describe_event(switch) == (
        "claude (claude-opus-x) refused (rate_limit): attempt 1 runs on codex"
    )
    kinds = await pool.fetch("SELECT kind FROM notifications WHERE payload->>'event_id' = $1",
                             str(switch.id))  # fmt: skip
    assert [r["kind"] for r in kinds] == [NoticeKind.CARD]  # on the card, not an alert
    # Another CLI has no Claude session: codex starts afresh and is told the task.
    [call] = codex.calls()
    assert call["argv"][1] != "resume"
    assert "# Say hello" in call["argv"][-1]
    assert (await TaskRepo(pool).by_id(task.id)).cost_unknown  # codex reports no dollars


async def test_a_refused_fallback_waits_and_the_next_job_starts_on_the_primary(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    # Call 1: the primary (gpt-a), refused; 2: the fallback (gpt-b, same CLI), refused and
    # naming a wait; then, the next job: 3, the primary again, which succeeds.
    codex = fake_cli(tmp_path, "codex", "error_429_rate_limit", "error_stream_rate_limit",
                     "success_json", write="change")  # fmt: skip
    deps = _deps(pool, tmp_path, codex=CodexBackend(codex.executable))
    repo = await budget_repo(pool, upstream, backend="codex", agent_model="gpt-a",
                             fallback_model="gpt-b", max_attempts=1)  # fmt: skip
    task = await submit_task_with(pool, repo)

    await jobs.run_task(task.id, deps)

    waiting = await TaskRepo(pool).by_id(task.id)
    assert waiting.status is TaskStatus.QUEUED
    [backoff] = await task_events(pool, task, EventKind.RATE_LIMIT_BACKOFF)
    # The fallback's refusal decides the wait: "Please try again in 11.054s".
    assert (backoff.payload["wait"], backoff.payload["seconds"]) == (1, 11)
    assert await TaskRunRepo(pool).attempts_made(task.id) == 0

    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert await _runs(pool, task) == [(1, "codex", "gpt-a", "rate_limit"),
                                       (1, "codex", "gpt-b", "rate_limit"),
                                       (1, "codex", "gpt-a", None)]  # fmt: skip
    assert [_model(call) for call in codex.calls()] == ["gpt-a", "gpt-b", "gpt-a"]
    assert len(await task_events(pool, task, EventKind.AGENT_FALLBACK)) == 1


async def test_waits_in_a_row_count_waits_not_refused_runs(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    """Two refused runs (primary and fallback) make one wait: with one wait allowed, the
    task waits once, and fails when refused again."""
    codex = fake_cli(tmp_path, "codex", "error_429_rate_limit")
    settings = WorkerSettings(agent_timeout_seconds=20, backoff_max_waits=1)
    deps = _deps(pool, tmp_path, settings, codex=CodexBackend(codex.executable))
    repo = await budget_repo(pool, upstream, backend="codex", fallback_model="gpt-b")
    task = await submit_task_with(pool, repo)

    await jobs.run_task(task.id, deps)
    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED

    await jobs.run_task(task.id, deps)
    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "refused 2 runs in a row (rate_limit)" in failed.status_reason
    assert len(codex.calls()) == 4


async def test_out_of_quota_goes_to_the_fallback_and_uses_no_attempt(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    codex = fake_cli(tmp_path, "codex", "error_quota")
    aider = fake_cli(tmp_path, "aider", "success", write="change")
    deps = _deps(pool, tmp_path, codex=CodexBackend(codex.executable),
                 aider=AiderBackend(aider.executable))  # fmt: skip
    repo = await budget_repo(pool, upstream, backend="codex", fallback_backend="aider",
                             max_attempts=1)  # fmt: skip
    task = await submit_task_with(pool, repo)

    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert await _runs(pool, task) == [(1, "codex", None, "quota"), (1, "aider", None, None)]
    assert await TaskRunRepo(pool).attempts_made(task.id) == 1
    runs = await TaskRunRepo(pool).for_task(task.id)
    assert [r.cost_usd for r in runs] == [None, Decimal("0.00038")]  # aider's "Cost: ..."
    [switch] = await task_events(pool, task, EventKind.AGENT_FALLBACK)
    assert switch.payload["reason"] == "quota"


async def test_out_of_quota_without_a_fallback_fails_at_once(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    codex = fake_cli(tmp_path, "codex", "error_quota")
    deps = _deps(pool, tmp_path, codex=CodexBackend(codex.executable))
    repo = await budget_repo(pool, upstream, backend="codex", max_attempts=3)
    task = await submit_task_with(pool, repo)

    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "escalated: agent.quota is not something another attempt can fix" in (
        failed.status_reason
    )
    assert len(codex.calls()) == 1  # waiting cannot help, nor can another attempt
    assert await task_events(pool, task, EventKind.RATE_LIMIT_BACKOFF) == []
    assert await task_events(pool, task, EventKind.AGENT_FALLBACK) == []


async def test_without_a_fallback_a_rate_limit_backs_off_as_before(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    codex = fake_cli(tmp_path, "codex", "error_429_rate_limit")
    deps = _deps(pool, tmp_path, codex=CodexBackend(codex.executable))
    repo = await budget_repo(pool, upstream, backend="codex")
    task = await submit_task_with(pool, repo)

    await jobs.run_task(task.id, deps)

    assert (await TaskRepo(pool).by_id(task.id)).status is TaskStatus.QUEUED
    [backoff] = await task_events(pool, task, EventKind.RATE_LIMIT_BACKOFF)
    assert (backoff.payload["kind"], backoff.payload["wait"], backoff.payload["seconds"]) == (
        "rate_limit", 1, 60)  # fmt: skip
    assert await task_events(pool, task, EventKind.AGENT_FALLBACK) == []
    assert len(codex.calls()) == 1


async def test_the_repo_and_the_task_choose_among_the_new_backends(
    pool: Pool, upstream: Path, tmp_path: Path
) -> None:
    """Through the real registry and settings: the repo's codex, and a task's own aider."""
    codex = fake_cli(tmp_path, "codex", "success_json", write="codex-change")
    aider = fake_cli(tmp_path, "aider", "success", write="aider-change")
    factory = backend_factory(
        ClaudeSettings(_env_file=None),
        codex=CodexSettings(_env_file=None, executable=codex.executable,
                            api_key=SecretStr("sk-codex")),
        aider=AiderSettings(_env_file=None, executable=aider.executable,
                            api_keys=SecretStr("openai=sk-aider")),
    )  # fmt: skip
    deps = dataclasses.replace(worker_deps(pool, tmp_path, settings=SETTINGS), backend_for=factory)
    repo = await budget_repo(pool, upstream, backend="codex", agent_model="gpt-repo",
                             max_attempts=1)  # fmt: skip
    on_repo = await submit_task_with(pool, repo)
    on_task = await submit_task_with(pool, repo, agent_backend="aider")

    await jobs.run_task(on_repo.id, deps)
    await jobs.run_task(on_task.id, deps)

    for task in (on_repo, on_task):
        done = await TaskRepo(pool).by_id(task.id)
        assert done.status is TaskStatus.DONE, done.status_reason
    assert await _runs(pool, on_repo) == [(1, "codex", "gpt-repo", None)]
    assert await _runs(pool, on_task) == [(1, "aider", None, None)]  # not the repo's model
    [codex_call] = codex.calls()
    [aider_call] = aider.calls()
    assert _model(codex_call) == "gpt-repo"
    assert codex_call["env"]["CODEX_API_KEY"] == "sk-codex"
    assert aider_call["env"]["OPENAI_API_KEY"] == "sk-aider"
    assert "--model" not in aider_call["argv"]


async def test_the_database_refuses_a_fallback_that_is_the_primary(
    pool: Pool, upstream: Path
) -> None:
    repos = RepoRepo(pool)
    refused = (
        NewRepo("same-model", str(upstream), "main", agent_model="m", fallback_model="m"),
        NewRepo("same-backend", str(upstream), "main", fallback_backend="claude"),
        NewRepo("empty", str(upstream), "main", fallback_model=""),
    )
    for new in refused:
        with pytest.raises(StorageError):
            await repos.add(new)
    kept = await repos.add(NewRepo(name="ok", source=str(upstream), default_branch="main",
                                   agent_model="m", fallback_backend="claude"))  # fmt: skip
    assert (kept.fallback_backend, kept.fallback_model) == ("claude", None)  # its default model


def test_repo_add_takes_a_fallback(
    db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    monkeypatch.setenv("DEVSERVER_HOME", str(tmp_path / "home"))
    source = str(make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"}))
    assert main(["repo", "add", "web", source, "--agent", "codex", "--model", "gpt-a",
                 "--fallback-agent", "aider", "--fallback-model", "gpt-4o-mini"]) == 0  # fmt: skip
    for args, message in (
        (["--agent", "codex", "--model", "gpt-a", "--fallback-model", "gpt-a"], "must differ"),
        (["--fallback-agent", "claude"], "must differ"),
        (["--fallback-agent", "command"], "--agent-command"),
    ):
        assert main(["repo", "add", "api", source, *args]) == 2
        assert message in capsys.readouterr().err
    repo = asyncio.run(_repo_named(db_dsn, "web"))
    assert (repo.agent_backend, repo.agent_model) == ("codex", "gpt-a")
    assert (repo.fallback_backend, repo.fallback_model) == ("aider", "gpt-4o-mini")


async def _repo_named(dsn: str, name: str) -> Repo:
    conn = await asyncpg.connect(dsn)
    try:
        return await RepoRepo(conn).by_name(name)
    finally:
        await conn.close()
