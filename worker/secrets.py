"""Find secrets in text before it leaves the machine: deterministic rules, no LLM.

`scan_lines(path, lines)` scans the lines a diff adds, `scan_text(path, text)` a whole file and
`scan_line(path, line, text)` one line. Each returns Findings: where, which rule
(worker/secret_rules.py), and the value masked by `mask()`. A Finding never holds the secret.

How it stays fast: the lines are joined into one string, the rules' triggers (literals such
as "ghp_" or, in the lower-cased string, "pass" before a `=` or `:`) are searched in the whole
string, one regex per first character, and a rule's regex runs only on the lines where one of
its triggers occurs. Most lines of ordinary code are never looked at by a rule's regex.

What is deliberately not a finding:

- Placeholders: `<your-token>`, `${TOKEN}`, `{{ token }}`, `{token}`, `%(password)s`, `$VAR`,
  references such as `os.environ[...]`, `getenv(...)`, `process.env.X`, runs such as `xxxx`,
  `****`, `000000` or one repeated character, counting runs (`123456`, `abcdef`), and values
  holding a placeholder word (`changeme`, `your_api_key_here`, `example`, `dummy`, `placeholder`,
  `redacted`, ...). "secret" is not such a word: `password = "MySecretPass123!"` is found.
- Documentation examples: AWS's published `AKIAIOSFODNN7EXAMPLE` and
  `wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY` say EXAMPLE in the value, so they count as
  placeholders. A provider-format token with a full-length random body is found whatever its
  variable is called (`example_key`, `TEST_TOKEN`): fake keys in tests look exactly like real
  ones, so a scanner cannot tell them apart, and should not try.
- Stripe test-mode keys (`sk_test_`, `rk_test_`) ARE reported, as `stripe-test-key`: they read
  and change the account's test data and settings, so they are credentials too.
- A private key is reported at its BEGIN line when the key follows (the next line is base64,
  a PEM or PGP header line, or the key is inline with `\\n` escapes) or when what follows is
  unknown (scan_line, the last line, a gap between the lines given to scan_lines). A BEGIN
  header followed by code, such as a parser's constant, is not a key.
- Passwords: a literal of at least MIN_PASSWORD characters without whitespace, after a key
  named like password, passwd, passphrase, pwd or pass (not `password_hash`,
  `password_min_length`, `password_label`, ...). In code the value must be a quoted literal
  (an identifier is a variable); unquoted values count in config-like files (.env, YAML, INI,
  shell, Dockerfile, Markdown, ...), in connection strings (`;Password=...;`) and URL queries.
  Hashes (`$2b$...`, `pbkdf2_sha256$...`), paths, field names (`user_password`), environment
  variable names (`DB_PASSWORD`), the key echoed (`password: password`) and well-known local
  defaults (`postgres`, `root`, `admin`, `guest`, ...) are not passwords. In a URL, a password
  equal to the user name, or on an RFC 2606 documentation host (example.com), is not reported.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from worker.secret_rules import (
    KNOWN_PREFIX,
    NOT_A_PASSWORD_KEY,
    NOT_A_TOKEN_KEY,
    PLACEHOLDER_PARTS,
    PLACEHOLDER_VALUES,
    RULES,
    SEQUENCES,
    Kind,
    Rule,
    words,
)

__all__ = ["MIN_PASSWORD", "RULES", "Finding", "Rule", "is_placeholder", "mask", "scan_line",
           "scan_lines", "scan_text"]  # fmt: skip

MIN_PASSWORD = 6  # shorter literals are test values and defaults, not worth a block
MASK_EDGE = 4  # at most this many characters shown at each end of a masked value

# Files whose unquoted values are identifiers or expressions, never literals.
_CODE_SUFFIXES = words(
    ".py .pyi .pyx .js .jsx .mjs .cjs .ts .tsx .mts .cts .go .rs .java .kt .kts .scala .groovy "
    ".rb .php .cs .fs .vb .c .h .cc .cpp .cxx .hpp .hh .m .mm .swift .dart .lua .pl .pm .r "
    ".ex .exs .erl .clj .elm .hs .ml .vue .svelte .json .jsonc .json5 .html .htm .sql"
)
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_RUN = re.compile(r"(.)\1{5,}")
_SEQUENCE = re.compile(
    "|".join(sorted({run[i : i + 6] for run in SEQUENCES for i in range(len(run) - 5)}))
)
_TEMPLATE = re.compile(
    r"<[^<>]{1,60}>|\{[A-Za-z_][\w.\s-]*\}|\{\d*\}|^%\w+%$|^%[sdr]$|^\$[A-Za-z_{(]|^:[a-z_]+$"
    r"|^@\w+@?$"
)
_FIELD_NAME = re.compile(r"[a-z]+(?:[_.-][a-z]+)*|[a-z]+(?:[A-Z][a-z]+)+")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_REGEX = re.compile(r"\(\?|\\[bdsw]|\[\^")  # (?:...), \b, [^...]: a pattern, not a password
_HASH = re.compile(r"\$(?:2[abxy]?|[156y])\$|(?:pbkdf2_sha\d+|bcrypt|argon2\w*|sha\d+|md5)\$")
_DOC_HOST = re.compile(r"(?:^|[.@])example(?:\.(?:com|org|net))?(?::\d+)?$|\.invalid(?::\d+)?$")
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/]{32}")
_INLINE_KEY = re.compile(r"\\n\s*[A-Za-z0-9+/]{16}|^\s*[A-Za-z0-9+/=]{40}")
_PEM_HEADERS = ("Proc-Type:", "Version:", "Comment:", "Hash:", "DEK-Info:")
_REFERENCE_START = tuple("$%{<!*&|>[(@")


@dataclass(frozen=True, slots=True)
class Finding:
    """A secret found: where it is and what kind, with its value masked (never the value)."""

    path: str  # file path as given
    line: int  # 1-based line number in the new version of the file
    rule: str  # rule id, kebab-case, e.g. "aws-access-key-id"
    masked: str  # mask(value), or the BEGIN header of a private key

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "line": self.line, "rule": self.rule, "masked": self.masked}


def mask(value: str) -> str:
    """`ghp_…(40 chars)…x9Q2`: a known public prefix or up to 4 leading characters, up to 4
    trailing ones, and the length. Short values show less: never more than a quarter of the
    characters after the prefix, so a 7-character password shows none."""
    known = KNOWN_PREFIX.match(value)
    prefix = known.group() if known is not None and known.end() < len(value) else ""
    rest = len(value) - len(prefix)
    edge = min(MASK_EDGE, rest // 8)
    head = prefix or value[:edge]
    tail = value[len(value) - edge :] if edge else ""
    return f"{head}…({len(value)} chars)…{tail}"


def scan_line(path: str, line: int, text: str) -> list[Finding]:
    """The secrets on one line (`line` is its number, reported as is)."""
    return _scan(path, text.replace("\n", " "), [line])


def scan_lines(path: str, lines: Iterable[tuple[int, str]]) -> list[Finding]:
    """The secrets on the given (line number, text) pairs, e.g. the lines a diff adds."""
    numbers: list[int] = []
    texts: list[str] = []
    for number, text in lines:
        numbers.append(number)
        texts.append(text.replace("\n", " ") if "\n" in text else text)
    return _scan(path, "\n".join(texts), numbers)


def scan_text(path: str, text: str) -> list[Finding]:
    """The secrets in a whole file's text (line numbers count from 1)."""
    return _scan(path, text, None)


@dataclass(frozen=True, slots=True)
class _Hit:
    line_start: int  # offset of the line in the scanned text
    start: int  # the value's span
    end: int
    order: int  # the rule's place in RULES: the earlier rule wins an overlap
    rule: str
    masked: str


def _trigger_groups(*, lower: bool) -> tuple[list[re.Pattern[str]], list[tuple[str, ...]]]:
    """One regex per first character of the triggers, `F(?:(?P<t0>...)|(?P<t1>...))`, so that
    the engine scans for the literal F; and for each rule, the names of its trigger groups."""
    sources = sorted(
        {s for rule in RULES for s in (rule.lower_triggers if lower else rule.triggers)}
    )
    prefix = "l" if lower else "c"
    names = {source: f"{prefix}{index}" for index, source in enumerate(sources)}
    by_first: dict[str, list[str]] = {}
    for source in sources:
        by_first.setdefault(source[0], []).append(source)
    groups = [
        re.compile(
            re.escape(first) + "(?:" + "|".join(f"(?P<{names[s]}>{s[1:]})" for s in group) + ")"
        )
        for first, group in by_first.items()
    ]
    per_rule = [tuple(names[s] for s in (rule.lower_triggers if lower else rule.triggers))
                for rule in RULES]  # fmt: skip
    return groups, per_rule


_GROUPS, _RULE_TRIGGERS = _trigger_groups(lower=False)
_LOWER_GROUPS, _RULE_LOWER_TRIGGERS = _trigger_groups(lower=True)


class _Document:
    """The scanned text, its lower-cased twin, and the lines each trigger occurs on."""

    def __init__(self, path: str, text: str, numbers: Sequence[int] | None) -> None:
        self.text = text
        self.numbers = numbers
        lower = text.lower()
        if len(lower) != len(text):  # a letter such as "İ" lower-cases to two characters
            lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        self.lower = lower
        self.config = PurePosixPath(path).suffix.lower() not in _CODE_SUFFIXES
        self.lines: dict[str, list[tuple[int, int]]] = {}
        for group in _GROUPS:
            self._find(group, text)
        for group in _LOWER_GROUPS:
            self._find(group, lower)

    def _find(self, group: re.Pattern[str], haystack: str) -> None:
        text, size = self.text, len(self.text)
        for hit in group.finditer(haystack):
            name = hit.lastgroup or ""
            lines = self.lines.setdefault(name, [])
            if lines and lines[-1][1] >= hit.start():
                continue  # this line is already in
            start = text.rfind("\n", 0, hit.start()) + 1
            end = text.find("\n", hit.start())
            lines.append((start, size if end == -1 else end))

    def candidates(self, index: int) -> list[tuple[int, int]]:
        """(start, end) of each line where a trigger of RULES[index] occurs, in order."""
        found = [self.lines[name] for name in (*_RULE_TRIGGERS[index],
                                               *_RULE_LOWER_TRIGGERS[index])
                 if name in self.lines]  # fmt: skip
        if len(found) == 1:
            return found[0]
        return sorted({line for lines in found for line in lines})

    def key(self, match: re.Match[str], line_start: int) -> str:
        """The whole key name a context rule matched from its keyword on: "DB_" + "PASSWORD"."""
        start = match.start()
        while start > line_start and (self.text[start - 1].isalnum()
                                      or self.text[start - 1] in "_.-"):  # fmt: skip
            start -= 1
        return self.text[start : match.end("key")]

    def next_line(self, line_start: int, line_end: int) -> str | None:
        """The line after this one, or None when it is not known (no such line, or a gap)."""
        if line_end + 1 >= len(self.text):
            return None
        if self.numbers is not None:
            index = self.text.count("\n", 0, line_start)
            if self.numbers[index + 1] != self.numbers[index] + 1:
                return None
        end = self.text.find("\n", line_end + 1)
        return self.text[line_end + 1 : end if end != -1 else len(self.text)]


def _scan(path: str, text: str, numbers: Sequence[int] | None) -> list[Finding]:
    if not text:
        return []
    doc = _Document(path, text, numbers)
    hits: list[_Hit] = []
    for order, rule in enumerate(RULES):
        for start, end in doc.candidates(order):
            if rule.context and not any(doc.lower.find(w, start, end) >= 0 for w in rule.context):
                continue
            for match in rule.pattern.finditer(text, start, end):
                vetted = _vet(rule, match, doc, start, end)
                if vetted is not None:
                    span, masked = vetted
                    hits.append(_Hit(start, span[0], span[1], order, rule.id, masked))
    return _findings(path, doc, hits)


def _findings(path: str, doc: _Document, hits: list[_Hit]) -> list[Finding]:
    """One Finding per hit, in text order; of overlapping hits, the earlier rule's."""
    kept: dict[int, list[_Hit]] = {}
    for hit in sorted(hits, key=lambda h: (h.line_start, h.order, h.start)):
        line = kept.setdefault(hit.line_start, [])
        if all(hit.end <= k.start or k.end <= hit.start for k in line):
            line.append(hit)
    out: list[Finding] = []
    index, counted_to = 0, 0
    for hit in sorted((h for line in kept.values() for h in line), key=lambda h: h.start):
        index += doc.text.count("\n", counted_to, hit.line_start)
        counted_to = hit.line_start
        number = doc.numbers[index] if doc.numbers is not None else index + 1
        finding = Finding(path, number, hit.rule, hit.masked)
        if finding not in out:
            out.append(finding)
    return out


def _vet(
    rule: Rule, match: re.Match[str], doc: _Document, line_start: int, line_end: int
) -> tuple[tuple[int, int], str] | None:
    """The value's span and its mask if the match is a secret, else None."""
    if rule.kind is Kind.ASSIGNMENT:
        return _vet_password(match, doc, line_start)
    value, span = match.group("value"), match.span("value")
    if rule.kind is Kind.PRIVATE_KEY:
        rest, after = doc.text[match.end() : line_end], doc.next_line(line_start, line_end)
        return (span, match.group()) if _key_follows(rest, after) else None
    if rule.kind is Kind.URL:
        secret = _url_password(match)
    elif rule.kind is Kind.JWT:
        secret = _jwt_header(value.split(".", 1)[0]) and _random_looking(value, rule.min_distinct)
    else:
        known = KNOWN_PREFIX.match(value)
        body = value[known.end() :] if known is not None else value
        secret = _key_allowed(rule, match, doc, line_start) and _random_looking(
            body, rule.min_distinct
        )
    return (span, mask(value)) if secret else None


def _key_allowed(rule: Rule, match: re.Match[str], doc: _Document, line_start: int) -> bool:
    """A context rule's key name: not a checksum's or a commit's, and naming what it needs."""
    if "key" not in match.re.groupindex or match.group("key") is None:
        return True
    key = doc.key(match, line_start)
    if any(word.lower() in NOT_A_TOKEN_KEY for word in _WORD.findall(key)):
        return False
    return not rule.key_needs or any(need in key.lower() for need in rule.key_needs)


def is_placeholder(value: str) -> bool:
    """Whether a value is clearly not a real secret: see the module docstring."""
    low = value.lower()
    return (
        not low.strip()
        or low in PLACEHOLDER_VALUES
        or any(part in low for part in PLACEHOLDER_PARTS)
        or _TEMPLATE.search(value) is not None
        or _RUN.search(value) is not None
        or _SEQUENCE.search(low) is not None
    )


def _random_looking(body: str, min_distinct: int) -> bool:
    need = min_distinct or max(4, min(12, len(body) // 3))
    return len(set(body)) >= need and not is_placeholder(body)


def _key_follows(rest: str, next_line: str | None) -> bool:
    """After a BEGIN ... PRIVATE KEY header: does key material follow (or can't we know)?"""
    if _INLINE_KEY.search(rest):
        return True
    if next_line is None:
        return True
    body = next_line.strip().lstrip("\"'+").lstrip()
    if not body:
        return not rest.strip()  # PGP: a blank line after the header, then the key
    return _BASE64_LINE.match(body) is not None or body.startswith(_PEM_HEADERS)


def _jwt_header(segment: str) -> bool:
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


def _password_key(key: str) -> bool:
    parts = [part.lower() for part in _WORD.findall(key)]
    if not parts or parts[-1] in NOT_A_PASSWORD_KEY:
        return False
    if any(part.endswith(("password", "passwd", "passphrase", "passwords")) for part in parts):
        return True
    return parts[-1] in {"pass", "pwd"}


def _vet_password(
    match: re.Match[str], doc: _Document, line_start: int
) -> tuple[tuple[int, int], str] | None:
    key = doc.key(match, line_start)
    if not _password_key(key):
        return None
    group = next(g for g in ("dq", "sq", "bq", "bare", "xml") if match.group(g) is not None)
    literal = match.group(group)
    if group == "bare":
        if literal.startswith(_REFERENCE_START):
            return None
        if not doc.config and not _connection_string(match, doc.text, match.end("key") - len(key)):
            return None
    if not _password_value(literal):
        return None
    return match.span(group), mask(literal)


def _connection_string(match: re.Match[str], text: str, key_start: int) -> bool:
    """`...;Password=x;...` or `?password=x&`: a bare value inside a string of code."""
    if match.group("op") != "=" or match.start("op") != match.end("key"):
        return False
    if match.end("op") != match.start("bare"):
        return False
    before = text[key_start - 1 : key_start] if key_start else ""
    after = text[match.end("bare") : match.end("bare") + 1]
    return before in {";", "?", "&"} or after in {";", "&"}


def _password_value(literal: str) -> bool:
    if len(literal) < MIN_PASSWORD or re.search(r"\s", literal) or is_placeholder(literal):
        return False
    low = literal.lower()
    if ("pass" in low or "pwd" in low) and _FIELD_NAME.fullmatch(literal):
        return False  # a field name: user_password, confirmPassword
    if _ENV_NAME.fullmatch(literal) or _HASH.match(literal) or _REGEX.search(literal):
        return False
    return not literal.startswith(("/", "~/", "./", "../", "http://", "https://"))


def _url_password(match: re.Match[str]) -> bool:
    value, user, host = match.group("value"), match.group("user"), match.group("host")
    if len(value) < MIN_PASSWORD or is_placeholder(value) or value.lower() == user.lower():
        return False
    return _DOC_HOST.search(host.lower()) is None
