"""worker/classify.py against real failure output (tests/fixtures/failures/, see its README)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.worker.classify_cases import CASES, R
from worker.classify import (
    EXCERPT_CHARS,
    MAX_LINE_CHARS,
    RULES,
    Classification,
    Severity,
    classify,
    remediation,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "failures"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _fixture(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text(encoding="utf-8")


def _last_line(text: str) -> str:
    """The output's last non-blank line as the excerpt can quote it (long lines: their end)."""
    last = [line for line in _ANSI.sub("", text).splitlines() if line.strip()][-1]
    return last if len(last) <= MAX_LINE_CHARS else last[-60:]


def test_every_fixture_has_a_case_and_every_rule_a_fixture() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.txt")) == sorted(CASES)
    covered = {case.key for case in CASES.values()}
    assert {rule.key for rule in RULES} <= covered


def test_every_fixture_is_listed_in_the_readme() -> None:
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    missing = [name for name in CASES if name not in readme]
    assert missing == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture(name: str) -> None:
    case, text = CASES[name], _fixture(name)
    c = classify(text)
    assert (c.key, c.severity, c.location) == (case.key, case.severity, case.location)
    assert c.family == next(rule.family for rule in RULES if rule.key == case.key)
    for quote in case.quotes:
        assert quote in c.excerpt, f"{quote!r} not quoted"
    assert _last_line(text) in c.excerpt
    assert 0 < len(c.excerpt) <= EXCERPT_CHARS
    assert c.retry_at is None  # none of the real samples gives a reset time


def test_hard_classes() -> None:
    hard = {rule.key for rule in RULES if rule.severity is Severity.HARD}
    assert hard == {
        "agent.cli_usage", "agent.prompt_too_long", "agent.budget", "agent.auth", "agent.quota",
        "disk.full",
        "git.merge_conflict", "git.not_a_repository", "shell.command_not_found",
        "shell.permission_denied",
    }  # fmt: skip


def test_excerpt_quotes_the_decisive_lines_not_the_head() -> None:
    c = classify(_fixture("pytest_failures"))
    assert "test session starts" not in c.excerpt
    assert "platform linux" not in c.excerpt


def test_pytest_collection_error_wins_over_the_inner_syntax_error() -> None:
    text = _fixture("pytest_collection_syntax_error")
    inner = next(rule for rule in RULES if rule.key == "python.syntax_error")
    assert inner.pattern.search(text)  # the inner error alone would match its own rule
    assert classify(text).key == "pytest.collection_error"


def test_pytest_collection_error_is_not_an_import_error_or_a_test_failure() -> None:
    c = classify(_fixture("pytest_collection_error"))
    assert "ModuleNotFoundError" in c.excerpt
    assert c.key == "pytest.collection_error"


def test_pytest_assertion_failure_is_pytest_not_python() -> None:
    text = _fixture("pytest_failures_native_tb")
    for inner in ("python.assertion_error", "python.type_error"):
        assert next(r for r in RULES if r.key == inner).pattern.search(text)
    assert classify(text).key == "pytest.failures"


def test_mypy_rules_come_before_python_rules() -> None:
    keys = [rule.key for rule in RULES]
    first_python = min(i for i, key in enumerate(keys) if key.startswith("python."))
    assert keys.index("mypy.errors") < first_python
    assert classify(_fixture("mypy_error")).family == "mypy"


def test_timed_out_flag_wins() -> None:
    c = classify(_fixture("pytest_failures"), timed_out=True)
    assert (c.key, c.family, c.severity) == ("timeout", "timeout", Severity.RECOVERABLE)
    assert "3 failed, 1 passed" in c.excerpt  # the tail is still quoted


def test_unknown_output_quotes_the_tail() -> None:
    text = "\n".join(f"step {i}: ok" for i in range(100)) + "\nall done, exit 3\n"
    c = classify(text)
    assert (c.key, c.family, c.severity, c.location) == ("unknown", "unknown", R, None)
    assert c.hint
    assert c.excerpt.endswith("all done, exit 3")
    assert "step 99: ok" in c.excerpt
    assert "step 0: ok" not in c.excerpt


def test_empty_output_is_unknown() -> None:
    c = classify("")
    assert (c.key, c.excerpt) == ("unknown", "")


def test_excerpt_is_bounded_and_keeps_first_failure_and_tail() -> None:
    blocks = [
        f"{'_' * 20} test_case_{i} {'_' * 20}\n\n    def test_case_{i}():\n"
        f">       assert f({i}) == 0\nE       assert {i} == 0\n\n"
        f"tests/test_many.py:{i * 3 + 1}: AssertionError"
        for i in range(500)
    ]
    summary = [f"FAILED tests/test_many.py::test_case_{i} - assert {i} == 0" for i in range(500)]
    text = "\n".join(
        ["=" * 30 + " FAILURES " + "=" * 30, *blocks, "=" * 20 + " short test summary info",
         *summary, "=" * 20 + " 500 failed in 1.00s " + "=" * 20]
    )  # fmt: skip
    c = classify(text)
    assert c.key == "pytest.failures"
    assert len(c.excerpt) <= EXCERPT_CHARS
    assert "E       assert 0 == 0" in c.excerpt
    assert "500 failed in 1.00s" in c.excerpt
    assert "FAILED tests/test_many.py::test_case_499" in c.excerpt
    assert c.location == "tests/test_many.py:1"


def test_long_json_lines_are_cut_around_what_matters() -> None:
    c = classify(_fixture("claude_error_401_auth"))
    assert all(len(line) < 2 * MAX_LINE_CHARS for line in c.excerpt.splitlines())
    assert '"result":"Invalid API key · Fix external API key"' in c.excerpt


NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Claude AI usage limit reached|1767225600", datetime(2026, 1, 1, tzinfo=UTC)),
        ("5-hour limit reached ∙ resets 3pm (Europe/Berlin)",
         datetime(2026, 11, 25, 14, 0, tzinfo=UTC)),
        ("You've hit your limit · resets 9:30am", datetime(2026, 11, 26, 9, 30, tzinfo=UTC)),
        ("API Error: Request rejected (429)\nretry-after: 30", NOW + timedelta(seconds=30)),
        ('API Error: Request rejected (429) {"anthropic-ratelimit-requests-reset": '
         '"2026-11-25T10:05:00Z"}', datetime(2026, 11, 25, 10, 5, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_rate_limit_reset_time(text: str, expected: datetime) -> None:
    c = classify(text, now=NOW)
    assert c.key == "agent.rate_limit"
    assert c.retry_at == expected
    assert c.retry_at is not None
    assert c.retry_at.utcoffset() == timedelta(0)


def test_rate_limit_reset_in_the_real_sample_plus_a_retry_after_line() -> None:
    text = _fixture("claude_error_429_rate_limit") + "\nretry-after: 120\n"
    c = classify(text, now=NOW)
    assert (c.key, c.retry_at) == ("agent.rate_limit", NOW + timedelta(seconds=120))


def test_no_reset_time_on_other_classes() -> None:
    assert classify("sh: 1: x: not found\nretry-after: 5", now=NOW).retry_at is None


def test_remediation_block() -> None:
    c = classify(_fixture("pytest_failures"))
    block = remediation(c, step="test", command="pytest -q")
    assert block.startswith("Failure class: pytest.failures (recoverable)")
    assert "Failed step: 'test', command: pytest -q" in block
    assert c.hint in block
    assert "Location: tests/test_cart.py:5" in block
    assert "```text\n" in block
    assert block.rstrip().endswith("```")
    assert "FAILED tests/test_cart.py::test_total_adds_all_prices - assert 50 == 60" in block
    assert "========================= 3 failed, 1 passed in 0.03s" in block


def test_remediation_without_step_or_location() -> None:
    c = classify(_fixture("git_merge_conflict"))
    block = remediation(c)
    assert "Failure class: git.merge_conflict (hard)" in block
    assert "Failed step" not in block
    assert "Location" not in block
    assert "CONFLICT (content): Merge conflict in cart.py" in block


def test_remediation_shows_the_reset_time_and_keeps_fences_intact() -> None:
    c = Classification("agent.rate_limit", "agent", R, "wait", None, "```\nquoted fence\n```",
                       datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    block = remediation(c, command="claude -p")
    assert "Failed step: a command, command: claude -p" in block
    assert "Retry after: 2026-01-01T00:00:00+00:00" in block
    assert "````text\n```\nquoted fence\n```\n````" in block
