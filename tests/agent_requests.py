"""A ready AgentRequest for backend tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.agents.base import AgentRequest


def make_request(tmp_path: Path, **changes: Any) -> AgentRequest:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    fields: dict[str, Any] = {
        "prompt": "Add hello.txt",
        "workdir": workdir,
        "home": tmp_path / "home",
        "deadline_seconds": 10.0,
    }
    fields.update(changes)
    return AgentRequest(**fields)
