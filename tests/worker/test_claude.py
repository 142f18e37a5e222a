from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent_requests import make_request
from worker.agents.base import ErrorKind
from worker.agents.claude import ClaudeBackend, parse_output, prompt_on_stdin

FAKE_CLAUDE = Path(__file__).resolve().parents[1] / "fakes" / "agents" / "fake_claude.py"
SECRETS = {
    "TELEGRAM_BOT_TOKEN": "123:telegram-secret",
    "DATABASE_URL": "postgresql://u:db-secret@h/db",
    "GITEA_TOKEN": "gitea-secret",
    "DB_DSN": "postgresql://u:dsn-secret@h/db",
}


def _samples_dir() -> Path:
    """specs/claude-cli/samples in the `shared` folder next to the repository."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "specs" / "claude-cli" / "samples"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[3] / "shared" / "specs" / "claude-cli" / "samples"


SAMPLES = _samples_dir()


@dataclass(frozen=True)
class Expected:
    ok: bool
    error_kind: ErrorKind | None
    session_id: str | None
    cost_usd: float | None
    turns: int | None
    contains: str  # in `text` when ok, in `error_message` otherwise
    denials: tuple[str, ...] = ()


DONE = "Done: created hello.txt and edited README.md."
EXPECTED = {
    "commit_acceptEdits_allow_git": Expected(
        True, None, "1493d404-1e75-4682-932a-75cd170317d6", 0.0024, 3, "Committed feature.py."
    ),
    "commit_acceptEdits_bash_denied": Expected(
        True,
        None,
        "6ede1107-3981-4206-a903-fccc901901cf",
        0.0024,
        3,
        "Committed feature.py.",
        ("Bash: git add -A && git commit -qm 'Add feature' && git log --oneline | head -1",),
    ),
    "error_400_prompt_too_long": Expected(
        False,
        ErrorKind.PROMPT_TOO_LONG,
        "9114dce4-b79d-4a75-a443-440cc536356a",
        0.0,
        1,
        "Prompt is too long",
    ),
    "error_401_auth": Expected(
        False, ErrorKind.AUTH, "18a1b686-ea02-4f4f-915b-ce53c4a6d0a1", 0.0, 1, "Invalid API key"
    ),
    "error_429_rate_limit": Expected(
        False,
        ErrorKind.RATE_LIMIT,
        "e52ba4ac-2cfe-42ab-9041-d82b224de7e8",
        0.0,
        1,
        "Request rejected (429)",
    ),
    "error_429_stream": Expected(
        False,
        ErrorKind.RATE_LIMIT,
        "cf3314e4-2385-4d98-92d3-b7c6d3beb40b",
        0.0,
        1,
        "Request rejected (429)",
    ),
    "error_500_api_error": Expected(
        False,
        ErrorKind.OVERLOADED,
        "a823946c-0391-4b84-8fc2-11c26e05c9c3",
        0.0,
        1,
        "500 Internal server error",
    ),
    "error_529_overloaded": Expected(
        False,
        ErrorKind.OVERLOADED,
        "a44a435b-0a55-4940-96b0-6aecf3b423d5",
        0.0,
        1,
        "529 Overloaded",
    ),
    "error_connection_refused": Expected(
        False,
        ErrorKind.NETWORK,
        "f58980eb-53a6-402d-98ba-eac0d29f016d",
        0.0,
        1,
        "Connection refused",
    ),
    "error_max_budget": Expected(
        False,
        ErrorKind.BUDGET,
        "6913078a-269c-46c1-8f05-ab660794f6ab",
        0.0016,
        2,
        "Reached maximum budget",
    ),
    "error_max_turns": Expected(
        False,
        ErrorKind.MAX_TURNS,
        "bfff9ca4-66fb-4732-a908-b35cb96bdcaf",
        0.0016,
        3,
        "Reached maximum number of turns (2)",
    ),
    "error_max_turns_stream": Expected(
        False,
        ErrorKind.MAX_TURNS,
        "6b13c933-951a-4ee8-b972-623d2245886c",
        0.0016,
        3,
        "Reached maximum number of turns (2)",
    ),
    "error_midstream_overloaded": Expected(
        False,
        ErrorKind.OVERLOADED,
        "72fe0713-cea4-466d-8005-a255072a752e",
        0.0,
        1,
        "529 Overloaded",
    ),
    "error_skip_permissions_as_root": Expected(
        False,
        ErrorKind.CRASH,
        None,
        None,
        None,
        "--dangerously-skip-permissions cannot be used with root/sudo privileges",
    ),
    "error_stream_json_without_verbose": Expected(
        False,
        ErrorKind.CRASH,
        None,
        None,
        None,
        "--output-format=stream-json requires --verbose",
    ),
    "permission_denied": Expected(
        True,
        None,
        "7264b24e-e659-4711-bb9a-4fc5cdb19ddc",
        0.0032,
        4,
        DONE,
        (
            "Write: /tmp/claude-harness.M9Huhs/repo/hello.txt",
            "Edit: /tmp/claude-harness.M9Huhs/repo/README.md",
        ),
    ),
    "retry_then_ok_stream": Expected(
        True,
        None,
        "ca80239e-7ccf-46b0-bf2c-0219f7a08451",
        0.0008,
        1,
        "Recovered after two overloaded errors.",
    ),
    "success_acceptEdits": Expected(
        True, None, "e7585476-4532-4c38-ac59-f8198addd17a", 0.0032, 4, DONE
    ),
    "success_json": Expected(True, None, "032b95d9-f392-4928-a402-563becd1ccdd", 0.0032, 4, DONE),
    "success_stream_json": Expected(
        True, None, "efe6a625-e09d-4051-b730-87e3d2e6a03b", 0.0032, 4, DONE
    ),
    "success_text": Expected(True, None, None, None, None, DONE),
}


def read_sample(name: str) -> tuple[str, str, int]:
    folder = SAMPLES / name
    return (
        (folder / "stdout").read_text(),
        (folder / "stderr").read_text(),
        int((folder / "exit_code").read_text().strip()),
    )


def test_samples_are_present_and_all_have_expectations() -> None:
    assert SAMPLES.is_dir(), f"Claude CLI samples not found at {SAMPLES}"
    on_disk = {path.name for path in SAMPLES.iterdir() if path.is_dir()}
    assert on_disk, f"no sample directories in {SAMPLES}"
    assert on_disk == set(EXPECTED), (
        f"samples without expectations: {sorted(on_disk - set(EXPECTED))}; "
        f"expectations without samples: {sorted(set(EXPECTED) - on_disk)}"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_sample(name: str) -> None:
    expected = EXPECTED[name]
    stdout, stderr, exit_code = read_sample(name)

    result = parse_output(stdout, stderr, exit_code, False, 1.5)

    assert result.ok is expected.ok
    assert result.error_kind == expected.error_kind
    assert result.session_id == expected.session_id
    assert result.cost_usd == (
        None if expected.cost_usd is None else pytest.approx(expected.cost_usd)
    )
    assert result.turns == expected.turns
    assert result.exit_code == exit_code
    assert result.duration_seconds == 1.5
    assert result.permission_denials == list(expected.denials)
    if expected.ok:
        assert expected.contains in result.text
        assert result.error_message == ""
    else:
        assert expected.contains in result.error_message
    assert result.output_tail
    assert len(result.output_tail) <= 4000


def test_parse_skips_noise_lines_in_a_stream() -> None:
    stdout, _, _ = read_sample("success_stream_json")
    noisy = "Warning: something\n" + stdout.replace("\n", "\nnot json at all\n", 2) + "\n[1, 2]\n"
    result = parse_output(noisy, "", 0, False, 1.0)
    assert result.ok
    assert result.text == "Done: created hello.txt and edited README.md."


def test_parse_timeout_wins_over_partial_output() -> None:
    stream = '{"type":"system","subtype":"init","session_id":"s-1"}\n'
    result = parse_output(stream, "", None, True, 30.0)
    assert not result.ok
    assert result.error_kind == ErrorKind.TIMEOUT
    assert result.session_id == "s-1"
    assert result.exit_code is None


def test_parse_stream_cut_before_result_is_a_crash() -> None:
    stream = '{"type":"system","subtype":"init","session_id":"s-2"}\n'
    result = parse_output(stream, "", 0, False, 1.0)
    assert not result.ok
    assert result.error_kind == ErrorKind.CRASH
    assert result.session_id == "s-2"


def test_parse_is_error_with_exit_zero_is_not_ok() -> None:
    stdout, _, _ = read_sample("error_529_overloaded")
    result = parse_output(stdout, "", 0, False, 1.0)
    assert not result.ok
    assert result.error_kind == ErrorKind.OVERLOADED


def test_parse_empty_output_with_stderr() -> None:
    result = parse_output("", "Segmentation fault\n", 139, False, 0.1)
    assert not result.ok
    assert result.error_kind == ErrorKind.CRASH
    assert result.error_message == "Segmentation fault"


def test_parse_nothing_at_all() -> None:
    result = parse_output("", "", 1, False, 0.1)
    assert result.error_kind == ErrorKind.CRASH
    assert "code 1" in result.error_message


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"api_error_status": 503}, ErrorKind.OVERLOADED),
        ({"api_error_status": 403}, ErrorKind.AUTH),
        ({"api_error_type": "rate_limit_error"}, ErrorKind.RATE_LIMIT),
        ({"api_error": "connection_failed"}, ErrorKind.NETWORK),
        ({"api_error_status": 400, "result": "Prompt is too long"}, ErrorKind.PROMPT_TOO_LONG),
        ({"subtype": "error_max_turns"}, ErrorKind.MAX_TURNS),
        ({"terminal_reason": "budget_exhausted"}, ErrorKind.BUDGET),
        ({"api_error_status": 418, "result": "teapot"}, ErrorKind.CRASH),
    ],
)
def test_parse_error_mapping(fields: dict[str, object], kind: ErrorKind) -> None:
    event = {"type": "result", "subtype": "success", "is_error": True, "session_id": "s"}
    event.update(fields)
    result = parse_output(json.dumps(event), "", 1, False, 1.0)
    assert result.error_kind == kind


def test_parse_keeps_the_tail_of_long_output() -> None:
    stdout, _, _ = read_sample("success_stream_json")
    result = parse_output(stdout, "stderr end marker", 0, False, 1.0)
    assert len(result.output_tail) == 4000
    assert result.output_tail.endswith("stderr end marker")


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


def fake_claude(tmp_path: Path) -> str:
    """An executable that runs fake_claude.py with this interpreter."""
    wrapper = tmp_path / "claude"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLAUDE}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


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
    assert result.ok is expected.ok
    assert result.error_kind == expected.error_kind
    assert result.session_id == expected.session_id
    assert result.cost_usd == (
        None if expected.cost_usd is None else pytest.approx(expected.cost_usd)
    )
    assert result.turns == expected.turns
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
