"""Start an agent CLI under the watchdog; one place for what every backend does the same."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from worker.agents.base import AgentRequest, AgentResult, ErrorKind
from worker.processes import CommandResult, run_command

log = logging.getLogger(__name__)


async def launch(
    backend: str,
    argv: Sequence[str],
    request: AgentRequest,
    env: Mapping[str, str],
    stdin_data: bytes | None = None,
) -> CommandResult | AgentResult:
    """The finished process, or a CRASH result when the program could not even start."""
    request.home.mkdir(parents=True, exist_ok=True)
    log.info("agent start", extra={"backend": backend, "workdir": str(request.workdir),
                                   "resume": bool(request.resume_session_id)})  # fmt: skip
    try:
        return await run_command(
            argv, cwd=request.workdir, env=env, timeout=request.deadline_seconds,
            stdin_data=stdin_data, time_left=request.wall_left,
        )  # fmt: skip
    except OSError as exc:
        log.warning("agent could not start", extra={"backend": backend, "error": str(exc)})
        return AgentResult(ok=False, text="", exit_code=None, duration_seconds=0.0,
                           error_kind=ErrorKind.CRASH,
                           error_message=f"cannot start {argv[0]}: {exc}")  # fmt: skip


def log_finished(backend: str, result: AgentResult) -> AgentResult:
    log.info("agent finished", extra={
        "backend": backend, "ok": result.ok, "error_kind": result.error_kind,
        "exit_code": result.exit_code, "duration_seconds": round(result.duration_seconds, 3),
        "cost_usd": result.cost_usd, "turns": result.turns,
    })  # fmt: skip
    return result
