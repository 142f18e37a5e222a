from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agent_requests import make_request
from tests.claude_samples import EXPECTED, SAMPLES, assert_matches
from tests.worker.running import fake_claude
from worker.agents.base import ErrorKind
from worker.agents.claude import ClaudeBackend, prompt_on_stdin

SECRETS = {
    "TELEGRAM_BOT_TOKEN": "123:telegram-secret",
    "DATABASE_URL": "postgresql://u:db-secret@h/db",
    "GITEA_TOKEN": "gitea-secret",
    "DB_DSN": "postgresql://u:dsn-secret@h/db",
}


def test_argv_defaults(tmp_path: Path) -> None:
    argv = ClaudeBackend().build_argv(make_request(tmp_path))
    assert argv[:3] == ["claude", "-p", "Add hello.txt"]
    assert argv[argv.index("--output-format") + 1] == "json"
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Edit,Write,Glob,Grep,Bash(git:*)"
    assert "--dangerously-skip-permissions" not in argv
    assert "bypassPermissions" not in argv
    for flag in ("--resume", "--max-turns", "--model", "--max-budget-usd", "--verbose"):
        assert flag not in argv


def test_argv_with_every_option(tmp_path: Path) -> None:
    backend = ClaudeBackend("/opt/claude/bin/claude", allowed_tools=["Read", "Bash(npm:*)"])
    request = make_request(
        tmp_path,
        max_turns=7,
        model="claude-opus-5-5",
        resume_session_id="032b95d9-f392-4928-a402-563becd1ccdd",
        max_budget_usd=0.5,
    )
    argv = backend.build_argv(request)
    assert argv[0] == "/opt/claude/bin/claude"
    assert argv[argv.index("--max-turns") + 1] == "7"
    assert argv[argv.index("--model") + 1] == "claude-opus-5-5"
    assert argv[argv.index("--resume") + 1] == "032b95d9-f392-4928-a402-563becd1ccdd"
    assert argv[argv.index("--max-budget-usd") + 1] == "0.5"
    assert argv[argv.index("--allowedTools") + 1] == "Read,Bash(npm:*)"
    assert "--dangerously-skip-permissions" not in argv


def test_read_only_runs_in_plan_mode_with_reading_tools_only(tmp_path: Path) -> None:
    backend = ClaudeBackend(allowed_tools=["Read", "Edit", "Bash(npm:*)"])
    argv = backend.build_argv(make_request(tmp_path, read_only=True, max_turns=15))
    assert argv[argv.index("--permission-mode") + 1] == "plan"
    assert argv.count("--permission-mode") == 1
    assert argv[argv.index("--allowedTools") + 1] == "Read,Glob,Grep,LS"
    assert argv.count("--allowedTools") == 1  # the repo's tools are not offered
    denied = argv[argv.index("--disallowedTools") + 1].split(",")
    assert {"Edit", "Write", "NotebookEdit", "ExitPlanMode"} <= set(denied)
    assert argv[argv.index("--max-turns") + 1] == "15"


def test_prompts_that_argv_cannot_carry_go_through_stdin(tmp_path: Path) -> None:
    for prompt in ("--help is broken, fix it", "x" * 200_000):
        assert prompt_on_stdin(prompt)
        argv = ClaudeBackend().build_argv(make_request(tmp_path, prompt=prompt))
        assert prompt not in argv
        assert argv[:3] == ["claude", "-p", "--output-format"]
    assert not prompt_on_stdin("Fix the bug in {x} with $(quotes)")


def test_env_has_no_worker_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    request = make_request(tmp_path)
    env = ClaudeBackend(
        api_key="sk-test", base_url="http://127.0.0.1:9", extra_env={"EXTRA": "1"}
    ).build_env(request)
    for name, value in SECRETS.items():
        assert name not in env
        assert value not in env.values()
    assert env["HOME"] == str(request.home)
    assert env["LANG"] == "C.UTF-8"
    assert env["ANTHROPIC_API_KEY"] == "sk-test"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "2"
    assert env["EXTRA"] == "1"
    for name in (
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
        "DISABLE_AUTOUPDATER",
    ):
        assert env[name] == "1"
    assert "IS_SANDBOX" not in env


def test_env_without_credentials_sets_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-the-worker")
    env = ClaudeBackend().build_env(make_request(tmp_path))
    assert "ANTHROPIC_API_KEY" not in env
    assert "ANTHROPIC_BASE_URL" not in env


@pytest.mark.parametrize("name", ["success_json", "error_429_rate_limit", "error_max_turns"])
async def test_run_parses_what_the_cli_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    for secret, value in SECRETS.items():
        monkeypatch.setenv(secret, value)
    record = tmp_path / "call.json"
    backend = ClaudeBackend(
        fake_claude(tmp_path),
        api_key="sk-test",
        extra_env={"FAKE_CLAUDE_SAMPLE": str(SAMPLES / name), "FAKE_CLAUDE_RECORD": str(record)},
    )
    request = make_request(tmp_path, resume_session_id="prev-session")
    assert not request.home.exists()

    result = await backend.run(request)

    expected = EXPECTED[name]
    assert_matches(result, expected)
    assert request.home.is_dir()
    call = json.loads(record.read_text())
    assert call["argv"][:2] == ["-p", "Add hello.txt"]
    assert call["argv"][call["argv"].index("--resume") + 1] == "prev-session"
    assert call["cwd"] == str(request.workdir)
    assert call["stdin"] == ""
    assert call["env"]["HOME"] == str(request.home)
    for secret, value in SECRETS.items():
        assert secret not in call["env"]
        assert value not in call["env"].values()


async def test_run_sends_a_flag_like_prompt_on_stdin(tmp_path: Path) -> None:
    record = tmp_path / "call.json"
    backend = ClaudeBackend(
        fake_claude(tmp_path),
        extra_env={
            "FAKE_CLAUDE_SAMPLE": str(SAMPLES / "success_json"),
            "FAKE_CLAUDE_RECORD": str(record),
        },
    )
    result = await backend.run(make_request(tmp_path, prompt="-v means verbose; document it"))
    assert result.ok
    call = json.loads(record.read_text())
    assert call["stdin"] == "-v means verbose; document it"
    assert "-v means verbose; document it" not in call["argv"]


async def test_run_kills_a_hanging_cli_at_the_deadline(tmp_path: Path) -> None:
    backend = ClaudeBackend(fake_claude(tmp_path), extra_env={"FAKE_CLAUDE_HANG": "1"})
    result = await backend.run(make_request(tmp_path, deadline_seconds=1.0))
    assert not result.ok
    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.exit_code is None
    assert result.session_id == "hung"
    assert result.duration_seconds < 5


async def test_run_with_a_missing_executable_is_a_crash(tmp_path: Path) -> None:
    backend = ClaudeBackend(str(tmp_path / "no-such-claude"))
    result = await backend.run(make_request(tmp_path))
    assert not result.ok
    assert result.error_kind == ErrorKind.CRASH
    assert "cannot start" in result.error_message


def test_backend_name() -> None:
    assert ClaudeBackend.name == "claude"
