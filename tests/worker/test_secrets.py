"""worker/secrets.py: every rule finds its format and passes over its look-alikes; the API
(scan_line, scan_lines, scan_text, mask, Finding) never carries a secret."""

from __future__ import annotations

import dataclasses
import json
import random
import re

import pytest

from tests.worker.secret_cases import (
    B62,
    HEX,
    NEGATIVES,
    POSITIVES,
    URLSAFE,
    Case,
    fake,
    pem_block,
)
from worker.secret_rules import KNOWN_PREFIX
from worker.secrets import (
    MIN_PASSWORD,
    RULES,
    Finding,
    is_placeholder,
    mask,
    scan_line,
    scan_lines,
    scan_text,
)

RULE_IDS = {rule.id for rule in RULES}


def _assert_hides(finding: Finding, secret: str) -> None:
    """No part of the Finding shows the secret (or more than 8 of its characters in a row)."""
    shown = [finding.masked, repr(finding), str(finding), json.dumps(finding.as_dict())]
    for text in shown:
        assert secret not in text
    known = KNOWN_PREFIX.match(secret)
    rest = secret[known.end() :] if known is not None else secret  # a public prefix may show
    if len(rest) > 16:
        for window in (rest[i : i + 9] for i in range(len(rest) - 8)):
            assert all(window not in text for text in shown), window


@pytest.mark.parametrize("name", sorted(POSITIVES))
def test_positive(name: str) -> None:
    case = POSITIVES[name]
    findings = scan_text(case.path, case.text)
    assert [(f.path, f.line, f.rule) for f in findings] == [(case.path, case.line, case.rule)]
    if case.secret:
        _assert_hides(findings[0], case.secret)


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_negative(name: str) -> None:
    case = NEGATIVES[name]
    assert scan_text(case.path, case.text) == []


@pytest.mark.parametrize("name", sorted(POSITIVES))
def test_positive_as_added_lines_of_a_diff(name: str) -> None:
    """The same line found by scan_lines, at the line number the diff gives it."""
    case = POSITIVES[name]
    lines = [(100 + number, text) for number, text in enumerate(case.text.split("\n"))]
    findings = scan_lines(case.path, lines)
    assert [(f.line, f.rule) for f in findings] == [(99 + case.line, case.rule)]


def test_every_rule_has_positive_and_negative_cases() -> None:
    assert {case.rule for case in POSITIVES.values()} == RULE_IDS
    assert {case.rule for case in NEGATIVES.values()} == RULE_IDS


def test_rules_are_described_and_named_in_kebab_case() -> None:
    assert len(RULE_IDS) == len(RULES)
    for rule in RULES:
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", rule.id), rule.id
        assert rule.family
        assert rule.description
        assert rule.triggers or rule.lower_triggers, rule.id
        assert "value" in rule.pattern.groupindex or rule.id == "password-assignment"


@pytest.mark.parametrize(
    "value",
    ["<your-token>", "${TOKEN}", "{{ token }}", "{token}", "%(password)s", "$DB_PASSWORD",
     'os.environ["TOKEN"]', 'getenv("TOKEN")', "process.env.TOKEN", "xxxxxxxxxxxx", "XXXX-1234",
     "********", "000000000000", "aaaaaaaaaaaa", "changeme", "your_api_key_here", "an_example_key",
     "dummy-value", "placeholder", "REDACTED", "None", "null", "", "   ", "abc123456789",
     "password"],
    ids=lambda value: value or "empty",
)  # fmt: skip
def test_placeholders(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize(
    "value", ["MySecretPass123!", "secret", "Tr0ub4dor!3x", fake(B62, 36), fake(HEX, 40),
              "hunter22x"],
)  # fmt: skip
def test_real_looking_values_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)


def test_a_value_saying_secret_is_still_a_password() -> None:
    findings = scan_line("app.py", 7, 'password = "MySecretPass123!"')
    assert [(f.line, f.rule) for f in findings] == [(7, "password-assignment")]
    _assert_hides(findings[0], "MySecretPass123!")


@pytest.mark.parametrize("name", ["example_token", "TEST_GITHUB_TOKEN", "fake_key", "dummy"])
def test_a_real_format_token_is_found_whatever_its_variable_is_called(name: str) -> None:
    token = "ghp_" + fake(B62, 36)
    findings = scan_line("t.py", 1, f'{name} = "{token}"')
    assert [f.rule for f in findings] == ["github-classic-token"]


def test_scan_lines_reports_the_line_numbers_it_is_given() -> None:
    token, key = "ghp_" + fake(B62, 36), "AIza" + fake(URLSAFE, 35)
    lines = [(3, "import os"), (4, f'TOKEN = "{token}"'), (40, "x = 1"), (41, f"key: {key}")]
    findings = scan_lines("cfg.py", lines)
    assert [(f.path, f.line, f.rule) for f in findings] == [
        ("cfg.py", 4, "github-classic-token"), ("cfg.py", 41, "google-api-key")]  # fmt: skip


def test_scan_lines_of_nothing() -> None:
    assert scan_lines("a.py", []) == []
    assert scan_text("a.py", "") == []


def test_scan_lines_ignores_newlines_inside_a_line() -> None:
    token = "ghp_" + fake(B62, 36)
    findings = scan_lines("a.py", [(10, f'x = "{token}"\n'), (11, "y = 2\n")])
    assert [(f.line, f.rule) for f in findings] == [(10, "github-classic-token")]


def test_scan_text_of_a_file_with_a_private_key() -> None:
    block = pem_block("EC PRIVATE KEY")
    text = "\n".join(["# deploy key", "KEY = '''", *block, "'''", "def load():", "    pass", ""])
    findings = scan_text("deploy.py", text)
    assert findings == [Finding("deploy.py", 3, "private-key", "-----BEGIN EC PRIVATE KEY-----")]
    for line in block[1:-1]:
        _assert_hides(findings[0], line)


def test_a_private_key_split_by_a_gap_in_the_diff_is_still_reported() -> None:
    """The line after the BEGIN line is not among the added lines: it can't be ruled out."""
    findings = scan_lines("k.py", [(5, 'KEY = """-----BEGIN RSA PRIVATE KEY-----'), (9, "x = 1")])
    assert [(f.line, f.rule) for f in findings] == [(5, "private-key")]


def test_a_private_key_header_followed_by_code_is_not_a_key() -> None:
    lines = [(5, 'MARKER = "-----BEGIN RSA PRIVATE KEY-----"'), (6, "END = None")]
    assert scan_lines("k.py", lines) == []


def test_scan_line_reports_a_header_alone() -> None:
    findings = scan_line("k.txt", 12, "-----BEGIN OPENSSH PRIVATE KEY-----")
    assert findings == [Finding("k.txt", 12, "private-key", "-----BEGIN OPENSSH PRIVATE KEY-----")]


def test_overlapping_matches_report_the_specific_rule() -> None:
    token = "ghp_" + fake(B62, 36)
    findings = scan_line("ci.sh", 1, f"git clone https://x-access-token:{token}@github.com/a/b")
    assert [f.rule for f in findings] == ["github-classic-token"]


def test_several_secrets_on_one_line_in_order() -> None:
    key_id, token = "AKIA" + fake("ABCDEFGHJKLMNPQRSTUVWXYZ234567", 16), "npm_" + fake(B62, 36)
    findings = scan_line("a.sh", 2, f"K={key_id} T={token} K2={key_id}")
    assert [f.rule for f in findings] == ["aws-access-key-id", "npm-access-token"]


def test_unquoted_values_count_in_config_files_not_in_code() -> None:
    line = "DB_PASSWORD=Tr0ub4dor9x"
    assert [f.rule for f in scan_line(".env.production", 1, line)] == ["password-assignment"]
    assert [f.rule for f in scan_line("Dockerfile", 1, "ENV " + line)] == ["password-assignment"]
    assert scan_line("settings.py", 1, line) == []


def test_short_passwords_are_not_reported() -> None:
    assert scan_line("a.py", 1, f'password = "{"k9!" + "x" * (MIN_PASSWORD - 4)}"') == []
    assert scan_line("a.py", 1, f'password = "{"k9!" + "y" * (MIN_PASSWORD - 3)}"') != []


def test_finding_as_dict_and_immutability() -> None:
    finding = scan_line("a.py", 3, f'k = "sk_live_{fake(B62, 24)}"')[0]
    assert finding.as_dict() == {"path": "a.py", "line": 3, "rule": "stripe-secret-key",
                                 "masked": finding.masked}  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.line = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ghp_" + "A1b2" * 8 + "x9Q2", "ghp_…(40 chars)…x9Q2"),
     ("sk-ant-api03-" + "a" * 91 + "AAAA", "sk-ant-api03-…(108 chars)…AAAA"),
     ("MySecretPass123!", "My…(16 chars)…3!"),
     ("hunter2", "…(7 chars)…"),
     ("0123456789abcdef0123456789abcdef01234567", "0123…(40 chars)…4567")],
    ids=["known-prefix", "long-prefix", "password", "short", "no-prefix"],
)  # fmt: skip
def test_mask(value: str, expected: str) -> None:
    assert mask(value) == expected


def test_mask_never_shows_much_of_a_value() -> None:
    rng = random.Random(5)  # reproducible data, not secrets
    for _ in range(500):
        value = "".join(rng.choices(B62 + "!#%", k=rng.randint(1, 120)))
        masked = mask(value)
        head, middle, tail = masked.split("…")
        assert middle == f"({len(value)} chars)"
        assert len(head) <= 4
        assert len(tail) <= 4
        assert len(head) + len(tail) <= len(value) // 4
        assert value.startswith(head)
        assert value.endswith(tail)


def test_cases_are_well_formed() -> None:
    for case in [*POSITIVES.values(), *NEGATIVES.values()]:
        assert isinstance(case, Case)
        assert case.rule in RULE_IDS
    for case in POSITIVES.values():
        assert case.secret == "" or case.secret in case.text.split("\n")[case.line - 1] or (
            case.rule == "private-key")  # fmt: skip
