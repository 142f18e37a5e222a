"""`devserver` commands with bad input: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from devserver.cli import main
from tests.gitrepos import make_repo


@pytest.fixture
def cli_env(db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    monkeypatch.setenv("DEVSERVER_HOME", str(tmp_path / "home"))
    return make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], message: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("devserver: error: ")
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _rejected(args: list[str], capsys: pytest.CaptureFixture[str], message: str) -> None:
    """Refused by the argument parser: usage, then one error line; exit code 2."""
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "devserver: error: argument" in err
    assert message in err
    assert "Traceback" not in err


def test_repo_add_then_task_add_and_list(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repo", "add", "web", str(cli_env), "--test", "true"]) == 0
    assert "repo web added" in capsys.readouterr().out
    assert main(["task", "add", "web", "Fix the <title>", "--priority", "1"]) == 0
    assert capsys.readouterr().out.strip() == "WEB-1 queued: Fix the <title>"
    assert main(["task", "add", "web", "For tonight", "--later"]) == 0
    assert capsys.readouterr().out.strip() == "WEB-2 added to the backlog: For tonight"
    assert main(["task", "list", "--status", "pending"]) == 0
    assert "WEB-2" in capsys.readouterr().out
    assert main(["task", "list"]) == 0
    assert "WEB-1" in capsys.readouterr().out
    assert main(["task", "show", "WEB-1"]) == 0
    shown = capsys.readouterr().out
    assert "status:   queued" in shown
    assert "task_created" in shown


def test_bad_input_gets_one_line_and_exit_2(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain").mkdir()
    _fails(["repo", "add", "x", str(tmp_path / "missing")], capsys, "path does not exist")
    _fails(["repo", "add", "x", str(tmp_path / "plain")], capsys, "not a git repository")
    _fails(["repo", "add", "../evil", str(cli_env)], capsys, "invalid repo name")
    _fails(["repo", "add", "x", str(cli_env), "--agent", "command"], capsys, "--agent-command")
    _fails(["repo", "add", "x", str(cli_env), "--reality-threshold", "101"], capsys,
           "--reality-threshold must be between 0 and 100")  # fmt: skip
    assert main(["repo", "add", "web", str(cli_env)]) == 0
    capsys.readouterr()
    _fails(["repo", "add", "web", str(cli_env)], capsys, "exists already")
    _fails(["task", "add", "nope", "title"], capsys, "repo nope not found")
    _fails(["task", "add", "web", "   "], capsys, "title is empty")
    _rejected(["task", "add", "web", "t", "--max-turns", "0"], capsys, "--max-turns")
    _fails(["repo", "add", "x", str(cli_env), "--forge-url", "https://h"], capsys,
           "need --forge gitea, forgejo or github")  # fmt: skip
    _fails(["repo", "add", "x", str(cli_env), "--forge", "gitea"], capsys,
           "cannot tell the forge repository")  # fmt: skip
    _fails(["repo", "add", "x", str(cli_env), "--forge", "github", "--forge-repo", "a/b/c",
            "--forge-url", "https://github.com"], capsys, "must be OWNER/NAME")  # fmt: skip
    _fails(["repo", "add", "x", str(cli_env), "--forge", "gitea", "--forge-repo", "me/x",
            "--forge-url", "git.example.invalid"], capsys, "http(s) address")  # fmt: skip
    _fails(["repo", "add", "x", str(cli_env), "--forge", "gitea", "--forge-repo", "me/x",
            "--forge-url", "https://h", "--token-env", "PATH"], capsys,
           "ending in _TOKEN")  # fmt: skip
    _fails(["task", "show", "WEB-99"], capsys, "task WEB-99 not found")
    _fails(["task", "mbox", "WEB-99"], capsys, "not found")


def test_pr_and_direct_need_the_forge_token_only_where_there_is_a_forge(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITEA_TOKEN", raising=False)
    assert main(["repo", "add", "web", str(cli_env)]) == 0
    assert main(["repo", "add", "gt", str(cli_env), "--forge", "gitea", "--forge-url",
                 "https://git.example.invalid/", "--forge-repo", "me/web"]) == 0  # fmt: skip
    out = capsys.readouterr()
    assert "GITEA_TOKEN is not set here" in out.err
    assert main(["repo", "list"]) == 0
    assert "forge: gitea https://git.example.invalid/me/web" in capsys.readouterr().out
    assert main(["task", "add", "web", "t", "--flow", "pr"]) == 0  # local: the branch is the PR
    assert main(["task", "add", "web", "t", "--flow", "direct"]) == 0
    capsys.readouterr()
    assert main(["task", "add", "gt", "t", "--flow", "pr"]) == 0  # the worker may have it
    assert (
        "warning: flow 'pr' cannot be delivered: gt's forge (gitea) needs a token: set "
        "GITEA_TOKEN in the worker's environment" in capsys.readouterr().err
    )
    monkeypatch.setenv("GITEA_TOKEN", "0123456789abcdef")
    assert main(["task", "add", "gt", "t", "--flow", "pr"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_mbox_of_a_task_without_patches_is_a_clear_error(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["repo", "add", "web", str(cli_env)]) == 0
    assert main(["task", "add", "web", "t"]) == 0
    capsys.readouterr()
    _fails(["task", "mbox", "WEB-1"], capsys, "has no patches (status queued)")


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["task", "add", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "devserver: error: " in err
    assert "Traceback" not in err


def test_bot_refuses_to_start_without_token_or_allow_list(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    _fails(["bot"], capsys, "TELEGRAM_BOT_TOKEN is not set")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "42:TEST")
    monkeypatch.delenv("TELEGRAM_ALLOWED_USERS", raising=False)
    _fails(["bot"], capsys, "TELEGRAM_ALLOWED_USERS is empty")


def test_budgets_from_the_command_line(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repo", "add", "web", str(cli_env), "--max-cost", "3", "--max-wall", "2h"]) == 0
    assert main(["task", "add", "web", "t", "--max-cost", "$1.50", "--max-turns", "30"]) == 0
    capsys.readouterr()
    assert main(["task", "budget", "WEB-1", "--max-wall", "45m"]) == 0
    shown = capsys.readouterr().out
    assert "cost:     $0.00 of $1.50" in shown
    assert "wall:     0s of 2700s" in shown
    assert "turns:    0 of 30" in shown
    _rejected(["task", "add", "web", "t", "--max-cost", "-2"], capsys, "--max-cost")
    _rejected(["task", "budget", "WEB-1", "--max-wall", "soon"], capsys, "not a duration")
    _rejected(["repo", "add", "api", str(cli_env), "--max-turns", "0"], capsys, "--max-turns")
