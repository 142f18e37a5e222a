"""Fixtures of the worker tests: an upstream repository and what a job needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitrepos import make_repo
from tests.worker.running import Pool, worker_deps
from worker.deps import WorkerDeps
from worker.settings import WorkerSettings


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})


@pytest.fixture
def deps(pool: Pool, tmp_path: Path) -> WorkerDeps:
    """For calling worker.jobs directly; plan reminders far enough away not to fire."""
    settings = WorkerSettings(agent_timeout_seconds=20, plan_remind_after_seconds=600,
                              plan_expire_after_seconds=7200)  # fmt: skip
    return worker_deps(pool, tmp_path, settings=settings)
