"""worker/classify.py against real failure output (tests/fixtures/failures/, see its README)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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
R, H = Severity.RECOVERABLE, Severity.HARD
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class Case:
    key: str
    severity: Severity
    location: str | None
    quotes: tuple[str, ...]  # decisive lines (or parts of them) the excerpt must quote


CASES: dict[str, Case] = {
    # Python
    "python_syntax_error": Case("python.syntax_error", R, "/tmp/cls/py/syntax.py:3",
                                ("    for item in items", "SyntaxError: expected ':'")),
    "python_indentation_error": Case("python.indentation_error", R, "/tmp/cls/py/indent.py:3",
                                     ("IndentationError: unexpected indent",)),
    "python_module_not_found": Case("python.import_error", R, "/tmp/cls/py/imp.py:1", (
        "ModuleNotFoundError: No module named 'requests_toolbelt_missing'",)),
    "python_import_error": Case("python.import_error", R, "/tmp/cls/py/impfrom.py:1",
                                ("ImportError: cannot import name 'joinpath'",)),
    "python_name_error": Case("python.name_error", R, "/tmp/cls/py/name.py:2",
                              ("NameError: name 'pi' is not defined",)),
    "python_attribute_error": Case("python.attribute_error", R, "/tmp/cls/py/attr.py:7",
                                   ("AttributeError: 'User' object has no attribute 'email'",)),
    "python_type_error": Case("python.type_error", R, "/tmp/cls/py/typ.py:2",
                              ("TypeError: can only concatenate str",)),
    "python_assertion_error": Case("python.assertion_error", R, "/tmp/cls/py/asrt.py:5",
                                   ("AssertionError: expected a 10% discount",)),
    "python_key_error": Case("python.exception", R, "/tmp/cls/py/keyerr.py:2",
                             ("KeyError: 'port'",)),
    # pytest
    "pytest_failures": Case("pytest.failures", R, "tests/test_cart.py:5", (
        "FAILED tests/test_cart.py::test_total_adds_all_prices - assert 50 == 60",
        "FAILED tests/test_cart.py::test_discount_rejects_text - TypeError",
        "E       assert 50 == 60",
        "E       TypeError: unsupported operand type(s) for /: 'str' and 'int'",
        ">       assert total([10, 20, 30]) == 60")),
    "pytest_failures_native_tb": Case(
        "pytest.failures", R, "/tmp/cls/pyproj/tests/test_cart.py:5", (
        "FAILED tests/test_cart.py::test_discount_takes_percent_off - assert 20.0 == 180",
        "__ test_total_adds_all_prices __")),
    "pytest_collection_error": Case("pytest.collection_error", R, "tests/test_checkout.py:1", (
        "ERROR collecting tests/test_checkout.py",
        "E   ModuleNotFoundError: No module named 'shop.checkout'",
        "ImportError while importing test module")),
    "pytest_collection_syntax_error": Case(
        "pytest.collection_error", R, "/tmp/cls/pyproj/tests/test_broken.py:1",
        ("ERROR collecting tests/test_broken.py", "E   SyntaxError: invalid syntax")),
    "pytest_timeout": Case("timeout.test", R, "tests/test_slow.py:5", (
        "E       Failed: Timeout (>2.0s) from pytest-timeout.",
        "FAILED tests/test_slow.py::test_waits_for_server")),
    "mypy_error": Case("mypy.errors", R, "shop/orders.py:8", (
        'shop/orders.py:8: error: Item "None" of "str | None" has no attribute "startswith"',
        'shop/orders.py:15: error: Unsupported operand types for + ("str" and "int")')),
    "ruff_error": Case("ruff.lint", R, "shop/orders.py:1:1", (
        "I001 [*] Import block is un-sorted or un-formatted", " --> shop/orders.py:1:1",
        "E741 Ambiguous variable name: `l`")),
    "ruff_error_concise": Case("ruff.lint", R, "shop/orders.py:1:1",
                               ("shop/orders.py:1:8: F401 [*] `os` imported but unused",)),
    "ruff_format_check": Case("ruff.format", R, "shop/fmt.py:1:6",
                              ("unformatted: File would be reformatted",)),
    "flake8_error": Case("flake8.errors", R, "shop/orders.py:1:1",
                         ("shop/orders.py:1:1: F401 'os' imported but unused",)),
    # JavaScript / TypeScript
    "tsc_error": Case("typescript.compile_error", R, "src/cart.ts:7:49", (
        "src/cart.ts(7,49): error TS2339: Property 'cost' does not exist on type 'Item'.",)),
    "tsc_error_pretty": Case("typescript.compile_error", R, "src/cart.ts:7:49", (
        "src/cart.ts:7:49 - error TS2339: Property 'cost' does not exist on type 'Item'.",
        "return items.reduce((sum, item) => sum + item.cost, 0);")),
    "eslint_error": Case("eslint.errors", R, "/tmp/cls/js/lib/cart.js:2:7", (
        "/tmp/cls/js/lib/cart.js", "'unused' is assigned a value but never used",
        "'shipping' is not defined")),
    "jest_failure": Case("jest.failures", R, "jest/cart.test.js:4:64", (
        "● total adds all prices", "✕ total adds all prices", "Expected: 60", "Received: 50")),
    "vitest_failure": Case("vitest.failures", R, "cart.test.mjs:5:64", (
        " FAIL  cart.test.mjs > total adds all prices",
        "AssertionError: expected 50 to be 60")),
    "vitest_failure_no_color": Case("vitest.failures", R, "cart.test.mjs:5:64", (
        " FAIL  cart.test.mjs > total adds all prices", "\u00d7 total adds all prices")),
    "node_cannot_find_module": Case("node.module_not_found", R, "/tmp/cls/js/app.js:1:16",
                                    ("Error: Cannot find module './lib/config'",)),
    "node_err_module_not_found": Case("node.module_not_found", R, None, (
        "Error [ERR_MODULE_NOT_FOUND]: Cannot find package 'left-pad-missing'",)),
    "node_heap_oom": Case("memory.out_of_memory", R, None, (
        "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",)),
    # Rust, Go
    "rust_compile_error": Case("rust.compile_error", R, "src/lib.rs:3:13", (
        "error[E0425]: cannot find value `undefined_offset` in this scope", " --> src/lib.rs:3:13",
        "3 |     value + undefined_offset")),
    "cargo_test_failure": Case("rust.test_failures", R, "src/lib.rs:16:9", (
        "panicked at src/lib.rs:16:9:", "assertion `left == right` failed", "  left: 80",
        "    tests::rejects_garbage", "config must be set")),
    "go_build_error": Case("go.build_error", R, "./price.go:3:8", (
        './price.go:3:8: imported and not used: "fmt"', "./price.go:10:15: undefined: shipping")),
    "go_test_failure": Case("go.test_failures", R, "price_test.go:8", (
        "--- FAIL: TestTotal", "price_test.go:8: Total([10 20 30]) = 50, want 60")),
    "go_test_panic": Case("go.test_failures", R, "price_test.go:8", (
        "--- FAIL: TestFirstEmpty",
        "panic: runtime error: index out of range [0] with length 0 [recovered]")),
    # Java
    "javac_error": Case("java.compile_error", R, "src/main/java/com/example/Cart.java:11", (
        "src/main/java/com/example/Cart.java:11: error: cannot find symbol",
        "symbol:   variable shippng")),
    "maven_compile_error": Case(
        "maven.compile_error", R, "/tmp/cls/java/src/main/java/com/example/Cart.java:11:22",
        ("[ERROR] /tmp/cls/java/src/main/java/com/example/Cart.java:[11,22] cannot find symbol",
         "symbol:   variable shippng")),
    "maven_test_failure": Case("maven.test_failures", R, "CartTest.java:11", (
        "totalAddsAllPrices(com.example.CartTest)", "expected:<60> but was:<50>")),
    "maven_build_failure": Case("maven.build_failure", R, None,
                                ('[ERROR] Unknown lifecycle phase "nosuchphase"',)),
    "maven_offline_resolution": Case("maven.dependency_resolution", R, None, (
        "maven-resources-plugin:2.6 or one of its dependencies could not be resolved",)),
    "gradle_compile_error": Case(
        "gradle.compile_error", R, "/tmp/cls/gradle/src/main/java/com/example/Cart.java:9",
        ("Cart.java:9: error: cannot find symbol", "Execution failed for task ':compileJava'.")),
    "gradle_test_failure": Case("gradle.test_failures", R, "CartTest.java:11", (
        "com.example.CartTest > totalAddsAllPrices FAILED",
        "java.lang.AssertionError at CartTest.java:11")),
    "gradle_build_failed": Case("gradle.build_failed", R, None,
                                ("Task 'nosuchtask' not found in root project 'cart'.",)),
    # C# / dotnet (written by hand in dotnet's output format, see README)
    "dotnet_build_error": Case("dotnet.compile_error", R, "/src/Shop/Cart.cs:12:31",
                               ("error CS1002: ; expected",)),
    "dotnet_test_failure": Case(
        "dotnet.test_failures", R, "/src/Shop.Tests/CartTests.cs:11",
        ("Failed Shop.Tests.CartTests.TotalAddsAllPrices [12 ms]",
         "Assert.Equal() Failure: Values differ")),
    "dotnet_msbuild_error": Case("dotnet.build_failed", R, None,
                                 ('error MSB6006: "csc.dll" exited with code 1.',)),
    # git
    "git_merge_conflict": Case("git.merge_conflict", H, None,
                               ("CONFLICT (content): Merge conflict in cart.py",)),
    "git_nothing_to_commit": Case("git.nothing_to_commit", R, None,
                                  ("nothing to commit, working tree clean",)),
    "git_push_rejected": Case("git.push_rejected", R, None,
                              (" ! [rejected]        main -> main (fetch first)",)),
    "git_push_non_fast_forward": Case("git.push_rejected", R, None,
                                      (" ! [rejected]        main -> main (non-fast-forward)",)),
    "git_not_a_repository": Case("git.not_a_repository", H, None, ("fatal: not a git repository",)),
    # shell, network, disk, memory
    "shell_command_not_found": Case("shell.command_not_found", H, None,
                                    ("sh: 1: nosuchcommand: not found",)),
    "bash_command_not_found": Case("shell.command_not_found", H, None,
                                   ("bash: line 1: nosuchcommand: command not found",)),
    "shell_permission_denied": Case("shell.permission_denied", H, None,
                                    ("sh: 1: ./build.sh: Permission denied",)),
    "curl_resolve_host": Case("network.dns", R, None,
                              ("Could not resolve host: nonexistent.invalid",)),
    "git_clone_resolve_host": Case("network.dns", R, None,
                                   ("Could not resolve host: nonexistent.invalid",)),
    "python_name_resolution": Case("network.dns", R, None,
                                   ("socket.gaierror: [Errno -2] Name or service not known",)),
    "curl_connection_refused": Case("network.connection", R, None,
                                    ("Failed to connect to 127.0.0.1 port 1",)),
    "python_connection_refused": Case("network.connection", R, None, (
        "ConnectionRefusedError: [Errno 111] Connection refused",)),
    "dd_disk_full": Case("disk.full", H, None,
                         ("dd: error writing '/dev/full': No space left on device",)),
    "python_disk_full": Case("disk.full", H, None,
                             ("OSError: [Errno 28] No space left on device",)),
    "python_memory_error": Case("memory.out_of_memory", R, None, ("MemoryError",)),
    "shell_killed_sigkill": Case("memory.killed", R, None, ("Killed", "exit status: 137")),
    "bash_killed_sigkill": Case("memory.killed", R, None, ("Killed", "exit status: 137")),
    # our own timeouts
    "verify_step_timeout": Case("timeout", R, None,
                                ("Verification step 'test' failed: timed out after 2 s",)),
    "agent_timeout_killed": Case("timeout", R, None, ("killed at the deadline after 1800.4 s",)),
    # Claude Code CLI (shared samples, see README)
    "claude_error_429_rate_limit": Case("agent.rate_limit", R, None, (
        '"api_error_status":429', "API Error: Request rejected (429)")),
    "claude_error_429_stream": Case("agent.rate_limit", R, None, (
        '"error_status":429', '"api_error_status":429')),
    "claude_error_529_overloaded": Case("agent.overloaded", R, None, (
        '"api_error_status":529', "API Error: 529 Overloaded")),
    "claude_error_midstream_overloaded": Case("agent.overloaded", R, None,
                                              ('"api_error_type":"overloaded_error"',)),
    "claude_error_500_api_error": Case("agent.overloaded", R, None,
                                       ("API Error: 500 Internal server error",)),
    "claude_error_401_auth": Case("agent.auth", H, None, (
        '"api_error_status":401', "Invalid API key")),
    "claude_error_400_prompt_too_long": Case("agent.prompt_too_long", H, None, (
        '"terminal_reason":"prompt_too_long"', "Prompt is too long")),
    "claude_error_max_turns": Case("agent.max_turns", R, None, (
        '"subtype":"error_max_turns"', "Reached maximum number of turns (2)")),
    "claude_error_max_turns_stream": Case("agent.max_turns", R, None,
                                          ("Reached maximum number of turns (2)",)),
    "claude_error_max_budget": Case("agent.budget", H, None, ("Reached maximum budget ($0.001)",)),
    "claude_error_connection_refused": Case("agent.network", R, None, (
        '"api_error":"connection_failed"', "API Error: Connection refused")),
    "claude_error_skip_permissions_as_root": Case("agent.cli_usage", H, None, (
        "--dangerously-skip-permissions cannot be used with root/sudo privileges",)),
    "claude_error_stream_json_without_verbose": Case("agent.cli_usage", H, None, (
        "--output-format=stream-json requires --verbose",)),
}  # fmt: skip


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
        "agent.cli_usage", "agent.prompt_too_long", "agent.budget", "agent.auth", "disk.full",
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
