"""What the worker's jobs need, built once in create_worker() and passed down."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import asyncpg

from storage.repos import Repo
from worker.agents.base import AgentBackend
from worker.control import WorkerControl
from worker.embedder import Embedder, EmbedderSettings
from worker.forges.base import RetryPolicy
from worker.repo_map import RepoMapper
from worker.settings import WorkerSettings
from worker.workspace import Workspace

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    pool: Pool
    workspace: Workspace
    settings: WorkerSettings
    agent_homes: Path  # one HOME per task for the agent CLI (sessions live there)
    backend_for: Callable[[Repo, str], AgentBackend]  # (repo, backend name) → backend
    control: WorkerControl  # cancel requests for the tasks this process runs
    repo_maps: RepoMapper  # symbols per file, cached by git tree id
    embedder: Embedder  # task texts → vectors, for the memory of past tasks
    memory: EmbedderSettings  # how many memories a task recalls
    forge_env: Mapping[str, str]  # where forge tokens are read (worker/forges/access.py)
    forge_retry: RetryPolicy  # how forge API calls are retried
