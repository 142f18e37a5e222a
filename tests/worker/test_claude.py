from __future__ import annotations

import json

import pytest

from tests.claude_samples import EXPECTED, SAMPLES, assert_matches, read_sample
from worker.agents.base import ErrorKind
from worker.agents.claude import parse_output


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

    assert_matches(result, expected)
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
        (
            {
                "api_error_status": 400,
                "result": "API Error: 400 Your credit balance is too low to access the API.",
            },
            ErrorKind.QUOTA,
        ),
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


def test_a_rate_limit_that_names_its_reset_time_gives_retry_at() -> None:
    stdout, stderr, exit_code = read_sample("error_429_rate_limit")
    event = json.loads(stdout)
    # The real sample names no reset; Claude's subscription limit message does.
    event["result"] = "Claude AI usage limit reached|1764082800"
    result = parse_output(json.dumps(event), stderr, exit_code, False, 0.6)
    assert result.error_kind is ErrorKind.RATE_LIMIT
    assert result.retry_at is not None
    assert result.retry_at.timestamp() == 1764082800
    plain = parse_output(stdout, stderr, exit_code, False, 0.6)
    assert (plain.error_kind, plain.retry_at) == (ErrorKind.RATE_LIMIT, None)
