"""What each real-output fixture (tests/fixtures/failures/) must classify as."""

from __future__ import annotations

from dataclasses import dataclass

from worker.classify import Severity

R, H = Severity.RECOVERABLE, Severity.HARD


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
    # Codex CLI and Aider out of quota (tests/fixtures/codex/, tests/fixtures/aider/)
    "codex_error_quota": Case("agent.quota", H, None, (
        '{"type":"turn.failed","error":{"message":"Quota exceeded. Check your plan and billing '
        'details."}}',)),
    "aider_error_quota": Case("agent.quota", H, None, (
        "You exceeded your current quota, please check your plan and billing details.",)),
}  # fmt: skip
