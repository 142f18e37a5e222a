"""The Aider backend against real aider output (tests/fixtures/aider/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.agent_requests import make_request
from tests.gitrepos import make_repo
from tests.worker.fake_clis import fake_cli
from tests.worker.test_claude_backend import SECRETS
from worker.agents.aider import FIXED_FLAGS, AiderBackend, AiderSession, parse_output
from worker.agents.base import ErrorKind
from worker.git import run_git
from worker.settings import AiderSettings

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "aider"


@dataclass(frozen=True)
class Expected:
    ok: bool
    error_kind: ErrorKind | None
    cost_usd: float | None
    turns: int | None
    contains: str  # in `text` when ok, in `error_message` otherwise


EXPECTED = {
    "success": Expected(True, None, 0.00038, 1, "Applied edit to hello.txt"),
    "retry_then_ok": Expected(True, None, 0.00038, 1, "Applied edit to hello.txt"),
    "resume": Expected(True, None, 0.00075, 2, "Restored previous conversation history."),
    "error_auth": Expected(False, ErrorKind.AUTH, None, None,
                           "litellm.AuthenticationError: AuthenticationError: OpenAIException"),
    "error_quota": Expected(False, ErrorKind.QUOTA, None, None,
                            "You exceeded your current quota"),
    "error_rate_limit": Expected(False, ErrorKind.RATE_LIMIT, None, None,
                                 "litellm.RateLimitError: RateLimitError: OpenAIException - "
                                 "Rate limit reached for gpt-4o-mini"),
    "error_overloaded": Expected(False, ErrorKind.OVERLOADED, None, None,
                                 "litellm.ServiceUnavailableError"),
    "error_bad_flag": Expected(False, ErrorKind.CRASH, None, None,
                               "aider: error: unrecognized arguments: --no-such-flag"),
}  # fmt: skip


def _sample(name: str) -> tuple[str, str, int]:
    return ((SAMPLES / f"{name}.stdout").read_text(), (SAMPLES / f"{name}.stderr").read_text(),
            int((SAMPLES / f"{name}.exit_code").read_text()))  # fmt: skip


def test_every_sample_has_an_expectation() -> None:
    assert sorted(p.stem for p in SAMPLES.glob("*.stdout")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parse_each_real_sample(name: str) -> None:
    expected = EXPECTED[name]
    stdout, stderr, exit_code = _sample(name)

    result = parse_output(stdout, stderr, exit_code, False, 3.0, session_id="s1")

    assert result.ok is expected.ok
    assert result.error_kind == expected.error_kind
    assert result.cost_usd == (
        None if expected.cost_usd is None else pytest.approx(expected.cost_usd)
    )
    assert result.turns == expected.turns
    assert expected.contains in (result.text if expected.ok else result.error_message)
    assert result.session_id == "s1"
    if not expected.ok:
        assert result.text == ""
        assert "Retrying in" not in result.error_message  # the last error, not the retried ones


def test_aider_exits_0_even_when_the_api_failed() -> None:
    """Why the verdict is read from the output: every real API failure exited 0."""
    assert {_sample(name)[2] for name in EXPECTED if name != "error_bad_flag"} == {0}


def test_the_wait_the_rate_limit_names_is_kept() -> None:
    stdout, stderr, exit_code = _sample("error_rate_limit")
    before = datetime.now(UTC)
    result = parse_output(stdout, stderr, exit_code, False, 110.0)
    assert result.retry_at is not None
    assert before + timedelta(seconds=0.7) <= result.retry_at  # "Please try again in 703ms."
    assert result.retry_at <= datetime.now(UTC) + timedelta(seconds=0.71)


def test_argv_defaults(tmp_path: Path) -> None:
    request = make_request(tmp_path)
    session = AiderSession.for_request(request)
    argv = AiderBackend().build_argv(request, session)
    assert argv[0] == "aider"
    assert argv[1 : 1 + len(FIXED_FLAGS)] == list(FIXED_FLAGS)
    for flag in ("--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-stream",
                 "--no-pretty", "--no-gitignore", "--no-check-update"):  # fmt: skip
        assert flag in argv
    assert argv[-2:] == ["--message", "Add hello.txt"]
    home = request.home
    assert argv[argv.index("--chat-history-file") + 1] == str(session.history)
    assert session.history.parent == home / "aider-sessions"
    assert argv[argv.index("--input-history-file") + 1] == str(home / "aider.input.history")
    assert argv[argv.index("--env-file") + 1] == str(home / "aider.env")  # not the repo's .env
    for flag in ("--restore-chat-history", "--model", "--openai-api-base", "--chat-mode",
                 "--auto-commits"):  # fmt: skip
        assert flag not in argv


def test_argv_with_every_option(tmp_path: Path) -> None:
    backend = AiderBackend("/opt/aider/bin/aider", openai_api_base="http://127.0.0.1:9/v1")
    request = make_request(tmp_path, model="gpt-4o-mini", read_only=True, max_turns=5)
    argv = backend.build_argv(request, AiderSession.for_request(request))
    assert argv[0] == "/opt/aider/bin/aider"
    assert argv[argv.index("--model") + 1] == "gpt-4o-mini"
    assert argv[argv.index("--openai-api-base") + 1] == "http://127.0.0.1:9/v1"
    assert argv[argv.index("--chat-mode") + 1] == "ask"  # the plan phase: answers, no edits


def test_prompts_that_argv_cannot_carry_go_through_a_file(tmp_path: Path) -> None:
    for prompt in ("--help is broken, fix it", "x" * 200_000):
        request = make_request(tmp_path, prompt=prompt)
        argv = AiderBackend().build_argv(request, AiderSession.for_request(request))
        assert "--message" not in argv
        assert argv[-2:] == ["--message-file", str(request.home / "aider-message.md")]


def test_env_has_the_keys_and_no_worker_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**SECRETS, "AIDER_MODEL": "o1", "OPENAI_API_KEY": "worker-key"}.items():
        monkeypatch.setenv(name, value)
    request = make_request(tmp_path)
    backend = AiderBackend(api_keys={"openai": "sk-aider", "anthropic": "sk-ant"})
    env = backend.build_env(request)
    assert env["OPENAI_API_KEY"] == "sk-aider"
    assert env["ANTHROPIC_API_KEY"] == "sk-ant"
    assert env["HOME"] == str(request.home)
    assert env["COLUMNS"] == "1000"  # no wrapped lines to parse
    assert env["BROWSER"] == "true"  # aider offers URLs with its errors: open none
    for name, value in SECRETS.items():
        assert name not in env
        assert value not in env.values()
    assert "AIDER_MODEL" not in env


def test_settings_read_their_own_prefix_not_aiders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIDER_EXECUTABLE", "/wrong/aider")  # aider's own option namespace
    monkeypatch.setenv("DEVSERVER_AIDER_EXECUTABLE", "/opt/aider")
    monkeypatch.setenv("DEVSERVER_AIDER_API_KEYS", " openai=sk-1 , broken, deepseek=sk-2,=x")
    settings = AiderSettings(_env_file=None)
    assert settings.executable == "/opt/aider"
    assert settings.api_key_map() == {"openai": "sk-1", "deepseek": "sk-2"}
    assert "sk-1" not in repr(settings)


async def test_run_keeps_a_session_and_resumes_it(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "aider", "success", "resume")
    backend = AiderBackend(cli.executable, api_keys={"openai": "sk-aider"})

    first = await backend.run(make_request(tmp_path))
    second = await backend.run(make_request(tmp_path, resume_session_id=first.session_id,
                                            prompt="-v must mean verbose"))  # fmt: skip

    assert first.ok
    assert first.cost_usd == pytest.approx(0.00038)
    assert first.session_id is not None
    assert second.ok
    assert second.session_id == first.session_id
    one, two = cli.calls()
    assert one["message"] == "Add hello.txt"
    assert "--restore-chat-history" not in one["argv"]
    assert one["cwd"] == str(tmp_path / "work")
    assert one["env"]["OPENAI_API_KEY"] == "sk-aider"
    assert "--restore-chat-history" in two["argv"]
    assert two["message"] == "-v must mean verbose"
    history = tmp_path / "home" / "aider-sessions" / f"{first.session_id}.md"
    assert two["argv"][two["argv"].index("--chat-history-file") + 1] == str(history)
    assert "#### -v must mean verbose" in history.read_text()


async def test_an_unknown_session_starts_a_new_one(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "aider", "success")
    result = await AiderBackend(cli.executable).run(
        make_request(tmp_path, resume_session_id="e7585476-4532-4c38-ac59-f8198addd17a")
    )  # a Claude session id, say
    assert result.ok
    assert result.session_id is not None
    assert result.session_id != "e7585476-4532-4c38-ac59-f8198addd17a"
    assert "--restore-chat-history" not in cli.calls()[0]["argv"]


async def test_aider_files_stay_out_of_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# Demo\n"})
    cli = fake_cli(tmp_path, "aider", "success")
    backend = AiderBackend(cli.executable)
    for _ in range(2):
        assert (await backend.run(make_request(tmp_path, workdir=repo))).ok
    assert (repo / ".aider.tags.cache.v4").is_dir()  # the fake made its cache, as aider does
    status = await run_git("status", "--porcelain", cwd=repo)
    assert status.text == ""
    exclude = (repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert exclude.count(".aider*") == 1
    assert not (repo / ".gitignore").exists()


async def test_run_reports_an_api_failure_despite_exit_0(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "aider", "error_overloaded")
    result = await AiderBackend(cli.executable).run(make_request(tmp_path))
    assert not result.ok
    assert result.exit_code == 0
    assert result.error_kind is ErrorKind.OVERLOADED


async def test_run_kills_a_hanging_cli_at_the_deadline(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "aider", "success", hang=True)
    result = await AiderBackend(cli.executable).run(make_request(tmp_path, deadline_seconds=1.0))
    assert not result.ok
    assert result.error_kind is ErrorKind.TIMEOUT
    assert result.exit_code is None


async def test_run_with_a_missing_executable_is_a_crash(tmp_path: Path) -> None:
    result = await AiderBackend(str(tmp_path / "no-such-aider")).run(make_request(tmp_path))
    assert not result.ok
    assert result.error_kind is ErrorKind.CRASH
    assert "cannot start" in result.error_message
