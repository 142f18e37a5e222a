"""The Codex CLI backend against real `codex exec --json` output (tests/fixtures/codex/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.agent_requests import make_request
from tests.worker.fake_clis import fake_cli
from tests.worker.test_claude_backend import SECRETS
from worker.agents.base import ErrorKind
from worker.agents.codex import CodexBackend, parse_output

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "codex"
THREAD = "01a21340-5627-7e70-9219-105d5b1686c1"  # success_json, continued by resume


@dataclass(frozen=True)
class Expected:
    ok: bool
    error_kind: ErrorKind | None
    session_id: str | None
    contains: str  # in `text` when ok, in `error_message` otherwise
    input_tokens: int | None = None


EXPECTED = {
    "success_json": Expected(True, None, THREAD, "Done: created hello.txt.", 1234),
    "success_command": Expected(True, None, "01a21340-56f8-7ad1-831f-f1b682ec58c8",
                                "Done: created hello.txt.", 2468),
    "resume": Expected(True, None, THREAD, "Done: created hello.txt.", 2468),
    "error_401_auth": Expected(False, ErrorKind.AUTH, "01a21340-5611-79f1-bca7-0ee5b1147845",
                               "unexpected status 401 Unauthorized: Incorrect API key"),
    "error_429_rate_limit": Expected(False, ErrorKind.RATE_LIMIT,
                                     "01a21340-a551-79f3-830e-3cf020c6e07e",
                                     "exceeded retry limit, last status: 429 Too Many Requests"),
    "error_stream_rate_limit": Expected(False, ErrorKind.RATE_LIMIT,
                                        "01a21340-a501-71c0-9f1d-37c91d74864b",
                                        "rate limit exceeded: Rate limit reached for gpt-5"),
    "error_quota": Expected(False, ErrorKind.QUOTA, "01a21340-5767-73f3-ae51-9d5ed00b4694",
                            "Quota exceeded. Check your plan and billing details."),
    "error_503_overloaded": Expected(False, ErrorKind.OVERLOADED,
                                     "01a21340-a4eb-76b0-99b4-11ca5b8e9fa9",
                                     "unexpected status 503 Service Unavailable"),
    "error_500_high_demand": Expected(False, ErrorKind.OVERLOADED,
                                      "01a21340-a498-7422-9d23-cccb4c1aa79a",
                                      "currently experiencing high demand"),
    "error_capacity": Expected(False, ErrorKind.OVERLOADED, "01a21340-5610-78b0-b1a1-d5cea5917f32",
                               "Selected model is at capacity. Please try a different model."),
    "error_bad_flag": Expected(False, ErrorKind.CRASH, None,
                               "error: unexpected argument '--no-such-flag' found"),
}  # fmt: skip


def test_every_sample_has_an_expectation() -> None:
    assert sorted(p.stem for p in SAMPLES.glob("*.jsonl")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_each_real_sample(name: str) -> None:
    expected = EXPECTED[name]
    stdout = (SAMPLES / f"{name}.jsonl").read_text()
    stderr = (SAMPLES / f"{name}.stderr").read_text()
    exit_code = int((SAMPLES / f"{name}.exit_code").read_text())

    result = parse_output(stdout, stderr, exit_code, False, 2.5)

    assert result.ok is expected.ok
    assert result.error_kind == expected.error_kind
    assert result.session_id == expected.session_id
    assert expected.contains in (result.text if expected.ok else result.error_message)
    assert result.cost_usd is None  # codex counts tokens, never dollars
    assert result.turns is None
    usage = result.usage or {}
    assert usage.get("input_tokens") == expected.input_tokens
    if expected.ok:
        assert result.error_message == ""
        assert set(usage) >= {"input_tokens", "cached_input_tokens", "output_tokens"}
    else:
        assert result.text == ""
        assert result.usage is None
    assert "Reconnecting... 2/5" not in result.error_message  # retries on the way are no verdict


def test_the_wait_the_rate_limit_names_is_kept() -> None:
    stdout = (SAMPLES / "error_stream_rate_limit.jsonl").read_text()
    before = datetime.now(UTC)
    result = parse_output(stdout, "", 1, False, 60.0)
    assert result.retry_at is not None
    assert before + timedelta(seconds=11) <= result.retry_at
    assert result.retry_at <= datetime.now(UTC) + timedelta(seconds=11.1)
    unnamed = parse_output((SAMPLES / "error_429_rate_limit.jsonl").read_text(), "", 1, False, 9)
    assert unnamed.retry_at is None  # backoff.py's doubling wait then


def test_a_stream_cut_before_the_turn_ended_is_a_crash() -> None:
    head = "\n".join((SAMPLES / "success_json.jsonl").read_text().splitlines()[:2])
    result = parse_output(head, "", 0, False, 1.0)
    assert not result.ok
    assert result.error_kind is ErrorKind.CRASH
    assert result.session_id == THREAD
    assert result.error_message == "codex exited with code 0 without a result"


def test_argv_of_a_new_session(tmp_path: Path) -> None:
    argv = CodexBackend().build_argv(make_request(tmp_path))
    assert argv[:4] == ["codex", "exec", "--json", "--skip-git-repo-check"]
    assert argv[-1] == "Add hello.txt"
    assert 'sandbox_mode="workspace-write"' in argv
    assert 'approval_policy="never"' in argv
    assert argv[argv.index('sandbox_mode="workspace-write"') - 1] == "-c"
    for flag in ("resume", "--model", "--dangerously-bypass-approvals-and-sandbox"):
        assert flag not in argv
    assert not any(arg.startswith("openai_base_url=") for arg in argv)


def test_argv_resuming_with_a_model_and_an_endpoint(tmp_path: Path) -> None:
    backend = CodexBackend("/opt/codex/bin/codex", base_url="http://127.0.0.1:9/v1",
                           sandbox="danger-full-access")  # fmt: skip
    request = make_request(tmp_path, resume_session_id=THREAD, model="gpt-5.1-codex",
                           max_turns=7, max_budget_usd=0.5)  # fmt: skip
    argv = backend.build_argv(request)
    assert argv[:3] == ["/opt/codex/bin/codex", "exec", "resume"]
    assert argv[-2:] == [THREAD, "Add hello.txt"]  # `exec resume [OPTIONS] SESSION PROMPT`
    assert argv[argv.index("--model") + 1] == "gpt-5.1-codex"
    assert 'openai_base_url="http://127.0.0.1:9/v1"' in argv
    assert 'sandbox_mode="danger-full-access"' in argv
    assert "7" not in argv  # codex has no turn cap and no budget flag
    assert "0.5" not in argv


def test_the_plan_phase_runs_read_only(tmp_path: Path) -> None:
    argv = CodexBackend(sandbox="danger-full-access").build_argv(
        make_request(tmp_path, read_only=True)
    )
    assert 'sandbox_mode="read-only"' in argv
    assert 'sandbox_mode="danger-full-access"' not in argv


def test_prompts_that_argv_cannot_carry_go_through_stdin(tmp_path: Path) -> None:
    for prompt in ("--help is broken, fix it", "x" * 200_000):
        argv = CodexBackend().build_argv(make_request(tmp_path, prompt=prompt))
        assert argv[-1] == "-"
        assert prompt not in argv


def test_an_unknown_sandbox_is_refused() -> None:
    with pytest.raises(ValueError, match="sandbox must be one of"):
        CodexBackend(sandbox="none")


def test_env_has_the_key_and_no_worker_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**SECRETS, "OPENAI_API_KEY": "worker-openai-key"}.items():
        monkeypatch.setenv(name, value)
    request = make_request(tmp_path)
    env = CodexBackend(api_key="sk-codex", extra_env={"EXTRA": "1"}).build_env(request)
    assert env["CODEX_API_KEY"] == "sk-codex"
    assert env["HOME"] == str(request.home)
    assert env["EXTRA"] == "1"
    for name, value in {**SECRETS, "OPENAI_API_KEY": "worker-openai-key"}.items():
        assert name not in env
        assert value not in env.values()
    assert "CODEX_API_KEY" not in CodexBackend().build_env(request)


async def test_run_replays_the_cli_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    cli = fake_cli(tmp_path, "codex", "success_json", "resume")
    backend = CodexBackend(cli.executable, api_key="sk-codex")

    first = await backend.run(make_request(tmp_path))
    second = await backend.run(make_request(tmp_path, resume_session_id=first.session_id,
                                            prompt="-v must mean verbose"))  # fmt: skip

    assert first.ok
    assert first.session_id == THREAD
    assert first.text == "Done: created hello.txt."
    assert second.ok
    assert second.session_id == THREAD
    one, two = cli.calls()
    assert one["argv"][:3] == ["exec", "--json", "--skip-git-repo-check"]
    assert one["argv"][-1] == "Add hello.txt"
    assert one["stdin"] == ""
    assert one["cwd"] == str(tmp_path / "work")
    assert one["env"]["CODEX_API_KEY"] == "sk-codex"
    assert one["env"]["HOME"] == str(tmp_path / "home")
    for name, value in SECRETS.items():
        assert name not in one["env"]
        assert value not in one["env"].values()
    assert two["argv"][:2] == ["exec", "resume"]
    assert two["argv"][-2:] == [THREAD, "-"]
    assert two["stdin"] == "-v must mean verbose"


async def test_run_reports_a_refusal(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "codex", "error_quota")
    result = await CodexBackend(cli.executable).run(make_request(tmp_path))
    assert not result.ok
    assert result.error_kind is ErrorKind.QUOTA
    assert result.exit_code == 1
    assert "Quota exceeded" in result.output_tail


async def test_run_kills_a_hanging_cli_at_the_deadline(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "codex", "success_json", hang=True)
    result = await CodexBackend(cli.executable).run(make_request(tmp_path, deadline_seconds=1.0))
    assert not result.ok
    assert result.error_kind is ErrorKind.TIMEOUT
    assert result.exit_code is None
    assert result.session_id == "hung-thread"


async def test_run_with_a_missing_executable_is_a_crash(tmp_path: Path) -> None:
    result = await CodexBackend(str(tmp_path / "no-such-codex")).run(make_request(tmp_path))
    assert not result.ok
    assert result.error_kind is ErrorKind.CRASH
    assert "cannot start" in result.error_message
