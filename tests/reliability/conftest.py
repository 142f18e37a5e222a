"""Helpers of the reliability tests: real `devserver` processes killed and restarted, the
scripted agent and gates that hold a pipeline phase (agent.py, gate.py), and a private
PostgreSQL a test may restart (never the shared embedded server)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Middleware

from storage.repos import NewRepo, Repo, RepoRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_runs import TaskRunRepo
from tests.fakes.telegram import TEST_TOKEN, FakeTelegram
from tests.procs import is_gone
from tests.worker.running import Pool, wait_until

HERE = Path(__file__).resolve().parent
PY = shlex.quote(sys.executable)


def agent_command(log: Path, holds: Path) -> str:
    """The CommandBackend template running agent.py."""
    paths = " ".join(shlex.quote(str(p)) for p in (log, holds))
    return f"{PY} {shlex.quote(str(HERE / 'agent.py'))} {{prompt}} {paths}"


def gate_command(name: str, holds: Path, *then: str) -> str:
    """gate.py holding `name` (then running `then`), as one shell command line."""
    words = [sys.executable, str(HERE / "gate.py"), name, str(holds)]
    return shlex.join([*words, "--", *then] if then else words)


def gated_git_config(path: Path, holds: Path) -> Path:
    """A global git config for the worker: its fetches wait at gate `preparing`, its
    pushes at gate `delivering` (each only while the test holds it)."""
    upload = gate_command("preparing", holds, "git-upload-pack")
    receive = gate_command("delivering", holds, "git-receive-pack")
    path.write_text(f'[remote "origin"]\n\tuploadpack = {upload}\n\treceivepack = {receive}\n')
    return path


def env_for(db_dsn: str, home: Path, **settings: str) -> dict[str, str]:
    """The environment of a `devserver` process: this test's database and home. Without
    PYTHONASYNCIODEBUG: the processes run as a user runs them (debug mode is several times
    slower, and these tests load them)."""
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    return {
        **inherited,
        "DATABASE_URL": db_dsn,
        "DEVSERVER_HOME": str(home),
        "WORKER_RECHECK_SECONDS": "0.5",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "1",
        "WORKER_DAILY_REPORT_HOUR": "-1",
        **settings,
    }


@dataclass
class Service:
    """One `devserver <service>` process, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start(service: str, env: dict[str, str], log: Path) -> Service:
    with log.open("ab") as sink:
        process = subprocess.Popen([sys.executable, "-m", "devserver", service], env=env,
                                   stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    return Service(service, process, log)


@contextlib.contextmanager
def services(*started: Service) -> Iterator[None]:
    """Stop whatever is still running on the way out, however the test ends: SIGTERM (the
    worker stops its agents), and SIGKILL for one that does not exit in time."""
    try:
        yield
    finally:
        for service in started:
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in started:
            try:
                service.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait(timeout=10)


async def add_repo(pool: Pool, upstream: Path, name: str, agent: str, **fields: Any) -> Repo:
    new = NewRepo(name=name, source=str(upstream), default_branch="main", agent_backend="command",
                  agent_command=agent, max_attempts=1, git_author_name="Agent",
                  git_author_email="agent@example.invalid", **fields)  # fmt: skip
    return await RepoRepo(pool).add(new)


async def status_of(pool: Pool, key: str) -> str:
    return str(await pool.fetchval("SELECT status FROM tasks WHERE key = $1", key))


async def wait_status(pool: Pool, key: str, *statuses: str, within: float = 60) -> str:
    async def reached() -> bool:
        return await status_of(pool, key) in statuses

    await wait_until(reached, f"{key} {' or '.join(statuses)}", within)
    return await status_of(pool, key)


def text_of(path: Path) -> str:
    """The file's text; empty while it does not exist."""
    return path.read_text() if path.exists() else ""


async def wait_file(path: Path, within: float = 30) -> str:
    async def written() -> bool:
        return bool(text_of(path).strip())

    await wait_until(written, f"{path.name} written", within)
    return text_of(path)


async def wait_gone(pid: int, what: str, within: float = 10) -> None:
    async def gone() -> bool:
        return is_gone(pid)

    await wait_until(gone, f"{what} (pid {pid}) gone", within)


async def takeovers(pool: Pool, task_id: int) -> list[dict[str, Any]]:
    events = await TaskEventRepo(pool).for_task(task_id)
    return [e.payload for e in events if e.kind is EventKind.TASK_RECOVERED]


async def assert_runs_never_overlap(pool: Pool, task_id: int) -> None:
    """The task's agent runs (task_runs) were one at a time: each ended before the next."""
    runs = await TaskRunRepo(pool).for_task(task_id)
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None, earlier
        assert earlier.finished_at <= later.started_at, (earlier, later)
    assert runs[-1].finished_at is not None


@contextlib.asynccontextmanager
async def fake_telegram(fake: FakeTelegram, *middlewares: Middleware) -> AsyncIterator[str]:
    """The fake Bot API on 127.0.0.1 (any free port), for a `devserver bot` process, with
    `middlewares` in front of it; its URL."""
    app = fake.make_app()
    app.middlewares.extend(middlewares)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
    assert not fake.violations, "Bot API violations:\n" + "\n".join(fake.violations)


def bot_env(db_dsn: str, home: Path, tg_url: str, users: str) -> dict[str, str]:
    return env_for(db_dsn, home, TELEGRAM_BOT_TOKEN=TEST_TOKEN, TELEGRAM_ALLOWED_USERS=users,
                   TELEGRAM_API_BASE_URL=tg_url, TELEGRAM_PRIVATE_CHAT_INTERVAL="0",
                   TELEGRAM_GROUP_CHAT_INTERVAL="0")  # fmt: skip


@pytest.fixture
def holds(tmp_path: Path) -> Iterator[Path]:
    """Where gates and the agent look for the phase a test holds, and leave their marks.
    Every hold is let go at the end, so nothing a failed test held waits on."""
    path = tmp_path / "holds"
    path.mkdir()
    yield path
    for name in ("preparing", "running", "verifying", "delivering", "kill-worker"):
        (path / name).unlink(missing_ok=True)


async def pause(seconds: float) -> None:
    """Let time pass (for a process to do something, or nothing); never an assertion."""
    await asyncio.sleep(seconds)
