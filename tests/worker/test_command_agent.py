from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.agent_requests import make_request
from tests.procs import wait_gone
from worker.agents.base import ErrorKind
from worker.agents.command import CommandBackend

AGENTS = Path(__file__).resolve().parents[1] / "fakes" / "agents"
SCRIPTED = [sys.executable, str(AGENTS / "scripted.py"), "{workdir}", "{prompt}", "{session}"]


async def test_scripted_agent_edits_the_workdir(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    result = await CommandBackend(SCRIPTED).run(request)
    assert result.ok
    assert result.error_kind is None
    assert result.exit_code == 0
    assert (request.workdir / "hello.txt").read_text() == "hello from the scripted agent\n"
    assert "wrote hello.txt" in result.text
    assert request.home.is_dir()


async def test_prompt_arrives_verbatim_and_is_never_run_by_a_shell(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    prompt = (
        f"Fix {{x}} and {{0}} and {{workdir}} and {{session}}; \"double\" 'single' "
        f"$(touch {pwned}) `touch {pwned}` && touch {pwned} | cat\nsecond line $HOME \\n"
    )
    request = make_request(tmp_path, prompt=prompt)
    result = await CommandBackend(SCRIPTED).run(request)
    assert result.ok
    assert (request.workdir / "prompt.txt").read_text() == prompt
    assert not pwned.exists()


async def test_last_line_json_reports_session_cost_and_turns(tmp_path: Path) -> None:
    result = await CommandBackend(SCRIPTED).run(make_request(tmp_path, resume_session_id="s1"))
    assert result.session_id == "s1-next"
    assert result.cost_usd == 0.25
    assert result.turns == 2


async def test_without_a_report_nothing_is_invented(tmp_path: Path) -> None:
    backend = CommandBackend(SCRIPTED, extra_env={"FAKE_AGENT_NO_REPORT": "1"})
    result = await backend.run(make_request(tmp_path))
    assert result.ok
    assert result.session_id is None
    assert result.cost_usd is None
    assert result.turns is None


async def test_environment_is_minimal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:telegram-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:db-secret@h/db")
    monkeypatch.setenv("GITEA_TOKEN", "gitea-secret")
    request = make_request(tmp_path, max_turns=5)
    await CommandBackend(SCRIPTED, extra_env={"AGENT_FLAVOUR": "mint"}).run(request)
    env = json.loads((request.workdir / "env.json").read_text())
    assert "TELEGRAM_BOT_TOKEN" not in env
    assert "DATABASE_URL" not in env
    assert "GITEA_TOKEN" not in env
    assert env["HOME"] == str(request.home)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["DEVSERVER_MAX_TURNS"] == "5"
    assert env["AGENT_FLAVOUR"] == "mint"


async def test_non_zero_exit_is_a_crash(tmp_path: Path) -> None:
    backend = CommandBackend(SCRIPTED, extra_env={"FAKE_AGENT_EXIT": "3"})
    result = await backend.run(make_request(tmp_path))
    assert not result.ok
    assert result.exit_code == 3
    assert result.error_kind == ErrorKind.CRASH
    assert "boom: the scripted agent failed" in result.error_message
    assert "boom" in result.output_tail


async def test_hanging_agent_is_killed_at_the_deadline(tmp_path: Path) -> None:
    request = make_request(tmp_path, deadline_seconds=1.0)
    pid_file = request.workdir / "pids"
    backend = CommandBackend([sys.executable, str(AGENTS / "hang.py"), str(pid_file)])
    result = await backend.run(request)
    assert not result.ok
    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.exit_code is None
    assert result.duration_seconds < 5
    assert "working on it" in result.output_tail
    agent_pid, child_pid = (int(pid) for pid in pid_file.read_text().split())
    assert await wait_gone(agent_pid)
    assert await wait_gone(child_pid)


async def test_missing_program_is_a_crash(tmp_path: Path) -> None:
    result = await CommandBackend([str(tmp_path / "no-agent")]).run(make_request(tmp_path))
    assert not result.ok
    assert result.error_kind == ErrorKind.CRASH
    assert "cannot start" in result.error_message


def test_placeholders_are_filled_in_one_pass(tmp_path: Path) -> None:
    backend = CommandBackend(["agent", "--in={workdir}", "{prompt}", "s={session}", "{other}"])
    request = make_request(tmp_path, prompt="use {workdir} and {session} {}")
    assert backend.build_argv(request) == [
        "agent",
        f"--in={request.workdir}",
        "use {workdir} and {session} {}",
        "s=",
        "{other}",
    ]


def test_phase_is_a_placeholder_and_in_the_environment(tmp_path: Path) -> None:
    backend = CommandBackend(["agent", "--phase={phase}", "{prompt}"])
    planning = make_request(tmp_path, prompt="say {phase}", read_only=True)
    assert backend.build_argv(planning) == ["agent", "--phase=plan", "say {phase}"]
    assert backend.build_env(planning)["DEVSERVER_PHASE"] == "plan"
    implementing = make_request(tmp_path)
    assert backend.build_argv(implementing)[1] == "--phase=implement"
    assert backend.build_env(implementing)["DEVSERVER_PHASE"] == "implement"


def test_from_string_splits_like_a_shell_without_running_one(tmp_path: Path) -> None:
    backend = CommandBackend.from_string("'/opt/my agent/run' --prompt {prompt} --cwd={workdir}")
    request = make_request(tmp_path, prompt="a; b $(c)")
    assert backend.build_argv(request) == [
        "/opt/my agent/run",
        "--prompt",
        "a; b $(c)",
        f"--cwd={request.workdir}",
    ]


def test_empty_template_is_rejected() -> None:
    with pytest.raises(ValueError, match="argv_template"):
        CommandBackend([])
