"""The failure rule table that worker/classify.py reads: one Rule per failure class.

Order matters: `classify` takes the first rule whose pattern matches, so the more specific
rules come first. Agent API errors lead (their JSON can quote anything the agent ran); then
our own timeouts, a full disk and memory; then test runners (a failing test may raise any
Python or JS error); then type checkers, linters and compilers; then node, git, network and
shell; and plain Python exceptions come last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    RECOVERABLE = "recoverable"  # the agent can fix it by editing code: send it back with a hint
    HARD = "hard"  # no edit can fix it (environment, credentials, conflicts): escalate at once


@dataclass(frozen=True, slots=True)
class Rule:
    """One failure class: how to recognise it, how bad it is, and what to tell the agent."""

    key: str
    family: str
    pattern: re.Pattern[str]
    severity: Severity
    hint: str
    quote: re.Pattern[str] | None = None  # the lines worth quoting: failing test ids, first errors
    context: int = 0  # lines quoted after each `quote` line (a compiler's code frame)
    location: tuple[re.Pattern[str], ...] = ()  # named groups path, line and optionally col
    innermost: bool = False  # Python tracebacks: the last frame in the user's code, not the first


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


R, H = Severity.RECOVERABLE, Severity.HARD

# Where an error is; each pattern has the groups path and line, and col where the tool gives one.
PY_FRAME = _re(r'^(?:E\s+)?\s*File "(?P<path>[^"<\n]+)", line (?P<line>\d+)')
COLON = _re(r"^(?P<path>[\w./\\-][^\s:()\[\]]*\.\w+):(?P<line>\d+):(?:(?P<col>\d+):)?")
ARROW = _re(r"^\s*--> (?P<path>[^\s:]+):(?P<line>\d+):(?P<col>\d+)")
PAREN = _re(r"^(?P<path>[^\s(][^(\n]*?\.\w+)\((?P<line>\d+),(?P<col>\d+)\): error")
TSC_PRETTY = _re(r"^(?P<path>\S+?\.\w+):(?P<line>\d+):(?P<col>\d+) - error")
JAVAC = _re(r"^(?::\w+)?(?P<path>[^\s:]+\.java):(?P<line>\d+): error")  # gradle glues ":task"
MAVEN = _re(r"^\[ERROR\] (?P<path>\S+\.java):\[(?P<line>\d+),(?P<col>\d+)\]")
JAVA_FRAME = _re(r"\((?P<path>[\w$]+\.java):(?P<line>\d+)\)")
GRADLE_TEST = _re(r" at (?P<path>[\w$]+\.java):(?P<line>\d+)$")
ESLINT = _re(r"^(?P<path>\S+\.\w+)\n\s+(?P<line>\d+):(?P<col>\d+)\s+error")
JS_FRAME = _re(r"\((?P<path>[^()\s]+\.[cm]?[jt]sx?):(?P<line>\d+):(?P<col>\d+)\)")
VITEST = _re(r"^\s*\u276f (?P<path>\S+?):(?P<line>\d+):(?P<col>\d+)$")
RUST_PANIC = _re(r"panicked at (?P<path>[^\s:]+):(?P<line>\d+):(?P<col>\d+)")
GO_FRAME = _re(r"^\s+(?P<path>[\w./-]+\.go):(?P<line>\d+)")
DOTNET_FRAME = _re(r" in (?P<path>[^\n]+?\.cs):line (?P<line>\d+)")

# A Python traceback (its frames are indented) up to the exception line, whose name follows.
_TB = r"^Traceback \(most recent call last\):\n(?:[ \t].*\n)*(?:[\w.]+\.)?"
# A compiler-style Python error (SyntaxError and friends) below its `File "...", line N`.
_PY_FILE = r'^(?:E\s+)?\s*File "[^"\n]+", line \d+\n(?:.*\n){0,4}?'
_PY_EXCEPTION = r"^(?:[\w.]+\.)?\w+(?:Error|Exception|Exit)\b.*"
_PYTEST_QUOTE = (
    r"^(?:FAILED|ERROR) \S+.*|^E {2,}\S.*|^>\s+\S.*|^_{3,} \S.* _{3,}$|^[\w./-]+\.py:\d+: \w*.*"
    r"|^\w+Error while importing test module.*"
)
_AGENT_FIELDS = (
    r'"(?:result|errors|api_error_status|api_error_type|api_error|terminal_reason|subtype'
    r'|error_status|error)":\s*(?:"[^"]*"|\[[^\]]*\]|\d+|null)'
)

AGENT_RULES: tuple[Rule, ...] = (
    Rule("agent.cli_usage", "agent", _re(
        r"cannot be used with root/sudo privileges|--output-format=stream-json requires --verbose"
        r"|^error: unknown option '--"), H,
        "The agent CLI was started with options it rejects; fix the worker's agent "
        "configuration, another attempt will fail the same way."),
    Rule("agent.prompt_too_long", "agent", _re(
        r'"terminal_reason":\s*"prompt_too_long"|Prompt is too long'), H,
        "The prompt exceeds the model's context window; shrink the task, its attached context "
        "or the tool set before trying again.", _re(_AGENT_FIELDS)),
    Rule("agent.max_turns", "agent", _re(
        r'"subtype":\s*"error_max_turns"|"terminal_reason":\s*"max_turns"'
        r"|Reached maximum number of turns"), R,
        "The agent ran out of turns before finishing; work more directly: make the smallest "
        "change that satisfies the task, and stop exploring once you know what to edit.",
        _re(_AGENT_FIELDS)),
    Rule("agent.budget", "agent", _re(
        r'"subtype":\s*"error_max_budget_usd"|"terminal_reason":\s*"budget_exhausted"'
        r"|Reached maximum budget"), H,
        "The task's cost budget is used up; raise the budget or split the task.",
        _re(_AGENT_FIELDS)),
    Rule("agent.auth", "agent", _re(
        r'"api_error_status":\s*40[13]\b|"api_error_type":\s*"(?:authentication|permission)_error"'
        r"|Invalid API key|OAuth token (?:has )?expired|Please run /login"), H,
        "The model API rejected the credentials; fix the API key or login of the worker.",
        _re(_AGENT_FIELDS)),
    # Before the rate limit: OpenAI answers an empty account with a 429 too.
    Rule("agent.quota", "agent", _re(
        r"Quota exceeded\. Check your plan and billing|insufficient_quota"
        r"|exceeded your current quota|credit balance is too low|out of credits"), H,
        "The model API account is out of credits or quota; top it up, or give the repo a "
        "fallback agent (another backend or model); another attempt cannot fix this.",
        _re(_AGENT_FIELDS)),
    Rule("agent.rate_limit", "agent", _re(
        r'"api_error_status":\s*429\b|"api_error_type":\s*"rate_limit_error"'
        r'|API Error: Request rejected \(429\)|"error_status":\s*429\b|usage limit reached'
        r"|(?:5-hour|weekly|session) limit reached|hit your (?:usage )?limit"), R,
        "The model API is rate limited; wait until the limit resets, then run the same "
        "attempt again; nothing in the code needs to change.", _re(_AGENT_FIELDS)),
    Rule("agent.overloaded", "agent", _re(
        r'"api_error_status":\s*5\d\d\b|"api_error_type":\s*"(?:overloaded_error|api_error)"'
        r'|API Error: 5\d\d\b|"error_status":\s*5\d\d\b'), R,
        "The model API is overloaded or failed server-side; back off and retry the same "
        "attempt; nothing in the code needs to change.", _re(_AGENT_FIELDS)),
    Rule("agent.network", "agent", _re(
        r'"api_error":\s*"connection_failed"|API Error: Connection (?:refused|error)'
        r"|API Error: .*\b(?:ECONNREFUSED|ENOTFOUND|ETIMEDOUT)\b"), R,
        "The model API could not be reached; check the worker's network or API base URL, "
        "then retry.", _re(_AGENT_FIELDS)),
)  # fmt: skip

RUNTIME_RULES: tuple[Rule, ...] = (
    Rule("timeout", "timeout", _re(
        r"timed out after [\d.]+ ?s and was killed|killed at the deadline after"), R,
        "The command ran past its deadline and was killed; look for an infinite loop, a "
        "blocking read, a server that never starts or a test waiting on the network, and make "
        "the slow path fast or bounded."),
    Rule("timeout.test", "timeout", _re(
        r"Failed: Timeout \(>[\d.]+s\) from pytest-timeout|^\+{3,} Timeout \+{3,}$"
        r"|^panic: test timed out after|Exceeded timeout of \d+ ?ms for a test"
        r"|Test timed out in \d+ ?ms"), R,
        "A test hung past its timeout; find what it waits on (a loop, a lock, a socket, "
        "sleep) in the frames quoted below and make it finish.",
        _re(_PYTEST_QUOTE + r"|^panic: .*|^--- FAIL: .*"),
        location=(COLON, GO_FRAME)),
    Rule("disk.full", "disk", _re(r"No space left on device|\bENOSPC\b|Disk quota exceeded"), H,
         "The disk is full; free space on the worker (build caches, old worktrees) before "
         "retrying; code edits cannot fix this."),
    Rule("memory.out_of_memory", "memory", _re(
        r"JavaScript heap out of memory|^(?:E\s+)?MemoryError\b|java\.lang\.OutOfMemoryError"
        r"|fatal error: runtime: out of memory|Cannot allocate memory"
        r"|memory allocation of \d+ bytes failed"), R,
        "The process ran out of memory; look for unbounded data (a list that grows forever, "
        "a whole file read at once, runaway recursion) and stream or bound it."),
    Rule("memory.killed", "memory", _re(
        r"^Killed\s*$|\b\d+ Killed {2,}|\bexit(?:ed)?(?: with)? (?:code|status):? 137\b"), R,
        "The process was killed with SIGKILL (exit 137), usually by the out-of-memory killer; "
        "reduce memory use (bound data, fewer parallel workers) and run it again."),
)  # fmt: skip

TEST_RULES: tuple[Rule, ...] = (
    Rule("pytest.collection_error", "pytest", _re(
        r"^_{3,} ERROR collecting .+ _{3,}$|^!{3,} Interrupted: \d+ errors? during collection"
        r"|^ERROR collecting "), R,
        "pytest could not import a test module, so no test ran; fix the import, syntax or "
        "module-level error shown in the quoted lines first.", _re(_PYTEST_QUOTE),
        location=(COLON, PY_FRAME)),
    Rule("pytest.failures", "pytest", _re(
        r"^FAILED \S+::|^ERROR \S+::|^={3,} FAILURES ={3,}$|^={3,} .*\b\d+ failed\b.*={3,}$"), R,
        "Tests failed; read each failing test id and its `E` lines, fix the code under test "
        "(not the test, unless the test itself is wrong), and rerun them.",
        _re(_PYTEST_QUOTE), location=(COLON, PY_FRAME)),
    Rule("jest.failures", "jest", _re(
        r"^Tests:\s+\d+ failed|● Test suite failed to run|^FAIL \S+\.[cm]?[jt]sx?$"), R,
        "Jest tests failed; read each `●` test with its Expected/Received lines and the code "
        "frame, and fix the code under test.",
        _re(r"^\s*● .*|^\s+\u2715 .*|^FAIL .*|^\s+(?:Expected|Received):.*|^\s+> \d+ \|.*"
            r"|^\s+at .*:\d+:\d+\)$"),
        location=(JS_FRAME,)),
    Rule("vitest.failures", "vitest", _re(
        r"^\s*(?:Test Files|Tests)\s+\d+ failed|^ FAIL  \S+|⎯+ Failed Tests \d+ ⎯+"), R,
        "Vitest tests failed; read each FAIL line with its assertion and the code frame, and "
        "fix the code under test.",
        _re(r"^ FAIL  .*|^\w*Error: .*|^[-+] .*|^\s*\u276f \S+:\d+:\d+$|^\s*\u00d7 .*"),
        location=(VITEST,)),
    Rule("rust.test_failures", "rust", _re(
        r"^test result: FAILED\.|^---- \S+ stdout ----$|panicked at "), R,
        "cargo test failed; read each panicking test with its assertion (left/right) and fix "
        "the code under test.",
        _re(r"^thread '.*' (?:\(\d+\) )?panicked at .*|^test \S+ \.\.\. FAILED$"), context=3,
        location=(RUST_PANIC,)),
    Rule("go.test_failures", "go", _re(r"^--- FAIL: |^FAIL\s+\S+\s+[\d.]+s$"), R,
        "go test failed; read each `--- FAIL` test with its message (or panic) and fix the "
        "code under test.",
        _re(r"^--- FAIL: .*|^\s+\S+\.go:\d+: .*|^panic: .*"), location=(GO_FRAME,)),
    Rule("maven.test_failures", "maven", _re(
        r"There are test failures|<<< FAILURE!|^\[ERROR\] Failures:\s*$|^\[ERROR\] Errors:\s*$"), R,
        "Maven (surefire) tests failed; read each failing test and its assertion, and fix the "
        "code under test.",
        _re(r"^\[ERROR\] .*<<< (?:FAILURE|ERROR)!|^\[ERROR\]\s+\S+:\d+ .*"
            r"|^(?:java|org|junit)\.\S*(?:Error|Exception)\b.*|^\s+at \S+\(\w+\.java:\d+\)"),
        location=(JAVA_FRAME,)),
    Rule("gradle.test_failures", "gradle", _re(
        r"^\S.* > \S.* FAILED$|There were failing tests|^\d+ tests completed, \d+ failed"), R,
        "Gradle tests failed; read each failing test and its exception, and fix the code "
        "under test.",
        _re(r"^\S.* > .* FAILED$|^\s+\S+(?:Error|Exception)\b.*"), location=(GRADLE_TEST,)),
    Rule("dotnet.test_failures", "dotnet", _re(
        r"^Failed!\s+- Failed:\s+[1-9]|^\s+Failed \S+ \[[\d.]+ m?s\]|^Test Run Failed\."), R,
        "dotnet tests failed; read each `Failed` test with its error message and stack, and "
        "fix the code under test.",
        _re(r"^\s+Failed \S+ \[.*\]$|^\s+Error Message:|^Failed!.*"), context=1,
        location=(DOTNET_FRAME,)),
)  # fmt: skip

BUILD_RULES: tuple[Rule, ...] = (
    Rule("mypy.errors", "mypy", _re(
        r"^\S+\.pyi?:\d+: error: |^Found \d+ errors? in \d+ files? \(checked \d+ source files?\)"),
        R, "mypy found type errors; fix each one at its location (annotations or the code), "
        "without `# type: ignore` unless the checker is wrong.",
        _re(r"^\S+\.pyi?:\d+: error: .*"), location=(COLON,)),
    Rule("ruff.format", "ruff", _re(
        r"^Would reformat: |^\d+ files? would be reformatted"
        r"|^unformatted: File would be reformatted"), R,
        "Files are not formatted; run `ruff format` on the files listed and commit the result.",
        _re(r"^Would reformat: .*|^unformatted: .*|^\s*--> .*"), location=(ARROW,)),
    Rule("ruff.lint", "ruff", _re(
        r"^Found \d+ errors?\.$|^\S+:\d+:\d+: [A-Z]+\d+ \[\*\] |^[A-Z]{1,4}\d{3,4} .*\n\s*--> "),
        R, "ruff found lint errors; fix each at its location (`ruff check --fix` handles the "
        "ones marked [*]).",
        _re(r"^[A-Z]{1,4}\d{3,4} .*|^\s*--> .*|^\S+:\d+:\d+: [A-Z]+\d+ .*"),
        location=(ARROW, COLON)),
    Rule("flake8.errors", "flake8", _re(r"^\S+\.py:\d+:\d+: [A-Z]{1,3}\d{1,4} "), R,
        "flake8 found style or logic errors; fix each at its location.",
        _re(r"^\S+\.py:\d+:\d+: [A-Z]{1,3}\d{1,4} .*"), location=(COLON,)),
    Rule("typescript.compile_error", "typescript", _re(r"error TS\d+:"), R,
        "TypeScript reports type errors; fix the first one at its location (the rest often "
        "follow from it).", _re(r"^.*error TS\d+: .*"), context=3,
        location=(PAREN, TSC_PRETTY)),
    Rule("eslint.errors", "eslint", _re(
        r"^\s+\d+:\d+\s+error\s+.+|^✖ \d+ problems? \(\d+ errors?"), R,
        "ESLint found errors; fix each at its file:line (the rule name is at the end of "
        "the line).", _re(r"^/?\S+\.[cm]?[jt]sx?$|^\s+\d+:\d+\s+error\s+.*"),
        location=(ESLINT,)),
    Rule("rust.compile_error", "rust", _re(
        r"^error(?:\[E\d{4}\])?: .*\n\s*--> |^error: could not compile"), R,
        "The Rust code does not compile; fix the first error at its location (rustc's `help:` "
        "lines often show the fix).", _re(r"^error(?:\[E\d{4}\])?: .*"), context=4,
        location=(ARROW,)),
    Rule("go.build_error", "go", _re(r"^\S+\.go:\d+:\d+: "), R,
        "The Go code does not compile; fix each error at its file:line:col.",
        _re(r"^\S+\.go:\d+:\d+: .*"), location=(COLON,)),
    Rule("gradle.compile_error", "gradle", _re(
        r"Execution failed for task '[^']*:compile\w*'|Compilation failed; see the compiler"), R,
        "Gradle could not compile the sources; fix the first compiler error at its file:line.",
        _re(r"^.*\.java:\d+: error: .*"), context=4, location=(JAVAC,)),
    Rule("java.compile_error", "java", _re(r"^\S+\.java:\d+: error: "), R,
        "javac reports compile errors; fix the first at its file:line (symbol/location lines "
        "below it say what is missing).", _re(r"^\S+\.java:\d+: error: .*"), context=4,
        location=(JAVAC,)),
    Rule("maven.compile_error", "maven", _re(
        r"^\[ERROR\] COMPILATION ERROR|Compilation failure"), R,
        "Maven could not compile the sources; fix the first error at its file:[line,col].",
        _re(r"^\[ERROR\] \S+\.java:\[\d+,\d+\] .*"), context=2, location=(MAVEN,)),
    Rule("maven.dependency_resolution", "maven", _re(
        r"Could not resolve dependencies|or one of its dependencies could not be resolved"
        r"|Could not transfer artifact|Cannot access \S+ \(\S+\) in offline mode"), R,
        "Maven cannot fetch a plugin or dependency (the worker builds offline); don't add new "
        "dependencies, use only what the project already resolves.",
        _re(r"^\[ERROR\] .*(?:resolve|offline|transfer).*")),
    Rule("gradle.build_failed", "gradle", _re(
        r"^BUILD FAILED in |^FAILURE: Build failed with an exception"), R,
        "The Gradle build failed; read `What went wrong` and fix that task's error.",
        _re(r"^\* What went wrong:|^Execution failed for task .*|^> .*"), context=1),
    Rule("maven.build_failure", "maven", _re(r"^\[INFO\] BUILD FAILURE$"), R,
        "The Maven build failed; read the first [ERROR] line and fix its cause.",
        _re(r"^\[ERROR\] \S.*")),
    Rule("dotnet.compile_error", "dotnet", _re(r"error CS\d{4}:"), R,
        "The C# code does not compile; fix the first CS error at its file(line,col).",
        _re(r"^.*error CS\d{4}: .*"), location=(PAREN,)),
    Rule("dotnet.build_failed", "dotnet", _re(
        r"^\s*Build FAILED\.|error MSB\d{4}:|error NU\d{4}:|The build failed\. Fix the build"), R,
        "The .NET build failed; read the first `error` line (MSB = project/build, NU = "
        "package restore) and fix its cause.", _re(r"^.*: error \w+: .*")),
)  # fmt: skip

ENVIRONMENT_RULES: tuple[Rule, ...] = (
    Rule("node.module_not_found", "node", _re(
        r"Cannot find module '[^']+'|ERR_MODULE_NOT_FOUND|Cannot find package '[^']+'"), R,
        "Node cannot resolve an import; fix the import path (relative paths need the right "
        "directory and, for ESM, the file extension) or use a package that is installed.",
        _re(r"^\w*Error(?: \[\w+\])?: .*"), context=2, location=(JS_FRAME,)),
    Rule("git.merge_conflict", "git", _re(
        r"^CONFLICT \(|Automatic merge failed; fix conflicts|^error: could not apply"
        r"|You have unmerged paths|needs merge$"), H,
        "A merge or rebase stopped on conflicts; a person has to resolve them (or the task "
        "must be rebased) before the pipeline can continue.",
        _re(r"^CONFLICT .*|^error: .*|^Automatic merge failed.*")),
    Rule("git.push_rejected", "git", _re(
        r"! \[(?:remote )?rejected\]|failed to push some refs|Updates were rejected"), R,
        "The push was rejected because the remote branch moved; fetch and rebase onto it, "
        "then push again (never force-push over others' work).",
        _re(r"^\s*! \[.*|^error: .*|^hint: Updates were rejected.*")),
    Rule("git.nothing_to_commit", "git", _re(
        r"^nothing to commit|^no changes added to commit|^nothing added to commit"), R,
        "There was nothing to commit: the attempt changed no files; make the edits the task "
        "asks for."),
    Rule("git.not_a_repository", "git", _re(r"fatal: not a git repository"), H,
        "The command ran outside a git repository; the worktree is missing or broken."),
    Rule("network.dns", "network", _re(
        r"Could not resolve host|Temporary failure in name resolution|Name or service not known"
        r"|getaddrinfo (?:ENOTFOUND|EAI_AGAIN)|nodename nor servname provided|no such host"), R,
        "A host name could not be resolved: there is no network here; don't download at "
        "build or test time, use vendored or already-installed dependencies and mock remote "
        "services in tests."),
    Rule("network.connection", "network", _re(
        r"Connection refused|ECONNREFUSED|Failed to connect to|Couldn't connect to server"
        r"|Network is unreachable|Connection reset by peer|ECONNRESET"), R,
        "A connection was refused: nothing listens on that host/port; start the service the "
        "code expects, fix the address, or mock it in tests."),
    Rule("shell.command_not_found", "shell", _re(
        r"^\S*?: (?:line )?\d+: .+?: (?:command )?not found\s*$|: command not found\s*$"
        r"|^env: '?[^'\n]+'?: No such file or directory"), H,
        "A command is not installed in the worker's environment; install it there or change "
        "the repository's configured command; the agent cannot fix this by editing code."),
    Rule("shell.permission_denied", "shell", _re(
        r": Permission denied\b|\bEACCES\b|PermissionError: \[Errno 13\]|Operation not permitted"),
        H, "The operating system refused access (a file not executable, or no permission); "
        "fix the file mode or the worker's permissions."),
)  # fmt: skip

PYTHON_RULES: tuple[Rule, ...] = (
    Rule("python.indentation_error", "python", _re(
        _PY_FILE + r"(?:E\s+)?(?:IndentationError|TabError): "), R,
        "Python cannot parse the file's indentation; fix the indentation at the quoted line "
        "(spaces only, consistent depth).", _re(r'^\s*File ".*'), context=3,
        location=(PY_FRAME,)),
    Rule("python.syntax_error", "python", _re(_PY_FILE + r"(?:E\s+)?SyntaxError: "), R,
        "Python cannot parse the file; fix the syntax at the line and column the caret points "
        "to.", _re(r'^\s*File ".*'), context=3, location=(PY_FRAME,)),
    Rule("python.import_error", "python", _re(_TB + r"(?:ModuleNotFoundError|ImportError)\b"), R,
        "An import failed; fix the module path or the imported name, or use a package that "
        "is installed (don't add new dependencies).", _re(_PY_EXCEPTION),
        location=(PY_FRAME,), innermost=True),
    Rule("python.name_error", "python", _re(_TB + r"(?:NameError|UnboundLocalError)\b"), R,
        "A name is used but never defined or imported; define or import it at the quoted "
        "location.", _re(_PY_EXCEPTION), location=(PY_FRAME,), innermost=True),
    Rule("python.attribute_error", "python", _re(_TB + r"AttributeError\b"), R,
        "An object lacks the attribute used; check the object's real type and API at the "
        "quoted location.", _re(_PY_EXCEPTION), location=(PY_FRAME,), innermost=True),
    Rule("python.type_error", "python", _re(_TB + r"TypeError\b"), R,
        "A value of the wrong type (or wrong number of arguments) reached an operation; fix "
        "the call or convert the value at the quoted location.", _re(_PY_EXCEPTION),
        location=(PY_FRAME,), innermost=True),
    Rule("python.assertion_error", "python", _re(_TB + r"AssertionError\b"), R,
        "An assertion failed; the code's result differs from what the assertion expects: fix "
        "the logic that produces it.", _re(_PY_EXCEPTION), location=(PY_FRAME,),
        innermost=True),
    Rule("python.exception", "python", _re(r"^Traceback \(most recent call last\):"), R,
        "The Python program raised an exception; read the last line of the traceback and fix "
        "its cause at the innermost frame in the project's code.", _re(_PY_EXCEPTION),
        location=(PY_FRAME,), innermost=True),
)  # fmt: skip

RULES: tuple[Rule, ...] = (
    AGENT_RULES + RUNTIME_RULES + TEST_RULES + BUILD_RULES + ENVIRONMENT_RULES + PYTHON_RULES
)

UNKNOWN_HINT = (
    "The failure did not match a known class; read the quoted output, find the first error "
    "message, and fix its cause."
)
