"""The real Claude Code CLI outputs in shared/specs/claude-cli/samples, for parser tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.specs import spec_path
from worker.agents.base import AgentResult, ErrorKind

SAMPLES = spec_path("claude-cli/samples")


def read_sample(name: str) -> tuple[str, str, int]:
    folder = SAMPLES / name
    return (
        (folder / "stdout").read_text(),
        (folder / "stderr").read_text(),
        int((folder / "exit_code").read_text().strip()),
    )


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


def assert_matches(result: AgentResult, expected: Expected) -> None:
    """What every parse of a sample must give: verdict, error kind, session, cost, turns."""
    assert result.ok is expected.ok
    assert result.error_kind == expected.error_kind
    assert result.session_id == expected.session_id
    assert result.cost_usd == (
        None if expected.cost_usd is None else pytest.approx(expected.cost_usd)
    )
    assert result.turns == expected.turns
