"""The fake `codex` and `aider` (tests/fakes/agents/) as executables on disk: a wrapper that
sets the fake's script in its own environment (an agent keeps none of the worker's) and
runs it with this Python."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tests.worker.running import AGENTS, PY


@dataclass(frozen=True)
class FakeCli:
    executable: str
    calls_dir: Path

    def calls(self) -> list[dict[str, Any]]:
        """Every call so far: argv, cwd, env (and stdin or message), in order."""
        if not self.calls_dir.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.calls_dir.glob("*.json"))]


def fake_cli(
    tmp_path: Path, cli: Literal["codex", "aider"], *cases: str, name: str | None = None,
    write: str | None = None, hang: bool = False,
) -> FakeCli:  # fmt: skip
    """`name` (default: the CLI's) names the wrapper and its calls folder in tmp_path.
    Call N replays the Nth of `cases` (the last repeats); `write` makes it change a file."""
    name = name or cli
    prefix = f"FAKE_{cli.upper()}"
    calls_dir = tmp_path / f"{name}-calls"
    variables = {f"{prefix}_CASE": os.pathsep.join(cases), f"{prefix}_CALLS": str(calls_dir)}
    if write:
        variables[f"{prefix}_WRITE"] = write
    if hang:
        variables[f"{prefix}_HANG"] = "1"
    exports = "".join(f"export {key}={shlex.quote(value)}\n" for key, value in variables.items())
    script = shlex.quote(str(AGENTS / f"fake_{cli}.py"))
    wrapper = tmp_path / name
    wrapper.write_text(f'#!/bin/sh\n{exports}exec {PY} {script} "$@"\n')
    wrapper.chmod(0o755)
    return FakeCli(str(wrapper), calls_dir)
