"""Classify a failed agent run or verification step, so the next attempt gets a targeted hint.

`classify(output)` runs the rule table (worker/classify_rules.py) over the output, first
match wins, and returns the class with its severity, hint, the location of the first error
and an excerpt: the decisive lines (failing test ids and their assertions, the first
compiler error with its code frame) plus the tail of the output, deduplicated and bounded.
`remediation(c)` renders that as the feedback block the agent reads on its next attempt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.classify_rules import RULES, UNKNOWN_HINT, Rule, Severity

__all__ = [
    "EXCERPT_CHARS",
    "MAX_LINE_CHARS",
    "RULES",
    "Classification",
    "Rule",
    "Severity",
    "classify",
    "remediation",
]

EXCERPT_CHARS = 4000  # the excerpt's bound
TAIL_LINES = 15  # the end of the output is always quoted
TAIL_CHARS = 1500  # of the bound, reserved for the tail
MAX_LINE_CHARS = 400  # longer lines (agent JSON events) are cut around what matched
SCAN_HEAD_CHARS = 50_000  # very long outputs: the rules see the head and the tail
SCAN_TAIL_CHARS = 150_000

DEDUPE_MIN_CHARS = 10  # shorter lines ("  |" of a code frame) repeat legitimately

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]")
_LIBRARY = re.compile(
    r"site-packages/|dist-packages/|/lib/python\d|^<|^/usr/lib/|^/usr/share/|/rustc/"
    r"|node_modules/|^node:|/\.cargo/registry/|/go/pkg/mod/|^/usr/local/go/"
)
_GAP = "…"
_ISO_RESET = re.compile(
    r'reset(?:s_at|_at)?"?\s*[:=]\s*"?(\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d))', re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Classification:
    key: str
    family: str
    severity: Severity
    hint: str
    location: str | None  # "path:line[:col]" of the first error when the output has one
    excerpt: str  # the relevant lines, quoted
    retry_at: datetime | None = None  # agent.rate_limit: when the limit resets (UTC), if given


def classify(
    output: str, *, timed_out: bool = False, now: datetime | None = None
) -> Classification:
    """Pick the first (most specific) rule matching `output`; `timed_out` forces "timeout"."""
    text = _clean(output)
    rule, match = _pick(text, timed_out=timed_out)
    lines = text.split("\n")
    if rule is None:
        return Classification("unknown", "unknown", Severity.RECOVERABLE, UNKNOWN_HINT, None,
                              _excerpt(lines, (), ()))  # fmt: skip
    spans = [match] if match is not None else []
    quoted = _quoted_lines(lines, text, rule, spans)
    patterns = tuple(p for p in (rule.quote, rule.pattern) if p is not None)
    retry_at = None
    if rule.key == "agent.rate_limit":
        retry_at = reset_time(text, now or datetime.now(UTC))
    return Classification(rule.key, rule.family, rule.severity, rule.hint, _locate(text, rule),
                          _excerpt(lines, quoted, patterns), retry_at)  # fmt: skip


def remediation(c: Classification, *, step: str | None = None, command: str | None = None) -> str:
    """The feedback block for the agent: what failed, how bad, what to do, and the evidence."""
    out = [f"Failure class: {c.key} ({c.severity.value})"]
    if step is not None or command is not None:
        where = f"'{step}'" if step is not None else "a command"
        out.append(f"Failed step: {where}" + (f", command: {command}" if command else ""))
    out.append(f"What to do: {c.hint}")
    if c.location:
        out.append(f"Location: {c.location}")
    if c.retry_at is not None:
        out.append(f"Retry after: {c.retry_at.isoformat()}")
    fence = "```"
    while fence in c.excerpt:
        fence += "`"
    out += ["Relevant output:", f"{fence}text", c.excerpt or "(no output)", fence]
    return "\n".join(out)


def reset_time(text: str, now: datetime) -> datetime | None:
    """When a rate limit resets, if the text says: an epoch after "usage limit reached|",
    an ISO reset timestamp, a `retry-after` in seconds, or "resets 3pm (Zone)" (the next
    such time after `now`). Returned in UTC."""
    if m := re.search(r"usage limit reached\|(\d{9,11})", text, re.IGNORECASE):
        return datetime.fromtimestamp(int(m.group(1)), UTC)
    if m := _ISO_RESET.search(text):
        stamp = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
        return stamp.astimezone(UTC)
    if m := re.search(r'retry[-_]after"?\s*[:=]\s*"?(\d+)\b', text, re.IGNORECASE):
        return now.astimezone(UTC) + timedelta(seconds=int(m.group(1)))
    clock = re.search(
        r"\bresets?(?: at)? (\d{1,2})(?::(\d\d))?\s*([ap]m)\b(?:\s*\(([A-Za-z_]+(?:/[\w+-]+)*)\))?",
        text, re.IGNORECASE)  # fmt: skip
    if clock is None:
        return None
    hour = int(clock.group(1)) % 12 + (12 if clock.group(3).lower() == "pm" else 0)
    zone = _zone(clock.group(4))
    local_now = now.astimezone(zone)
    at = local_now.replace(hour=hour, minute=int(clock.group(2) or 0), second=0, microsecond=0)
    if at <= local_now:
        at += timedelta(days=1)
    return at.astimezone(UTC)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _clean(output: str) -> str:
    """Strip colours and carriage-return redraws; keep the head and tail of huge outputs."""
    if len(output) > SCAN_HEAD_CHARS + SCAN_TAIL_CHARS:
        output = output[:SCAN_HEAD_CHARS] + "\n" + output[-SCAN_TAIL_CHARS:]
    text = _ANSI.sub("", output.replace("\r\n", "\n"))
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _pick(text: str, *, timed_out: bool) -> tuple[Rule | None, re.Match[str] | None]:
    if timed_out:
        rule = next(r for r in RULES if r.key == "timeout")
        return rule, rule.pattern.search(text)
    for rule in RULES:
        if match := rule.pattern.search(text):
            return rule, match
    return None, None


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset)


def _quoted_lines(
    lines: list[str], text: str, rule: Rule, matches: list[re.Match[str]]
) -> list[int]:
    """Line numbers worth quoting, most important first: each `quote` line with its
    context, then the first and last line of the rule's own match."""
    found: list[int] = []
    if rule.quote is not None:
        for index, line in enumerate(lines):
            if rule.quote.search(line):
                found += range(index, index + 1 + rule.context)
    for m in matches:
        found += [_line_of(text, m.start()), _line_of(text, max(m.start(), m.end() - 1))]
    return list(dict.fromkeys(found))


def _locate(text: str, rule: Rule) -> str | None:
    """The first (or, for tracebacks, the innermost) error location outside libraries."""
    hits: list[tuple[int, str]] = []
    for pattern in rule.location:
        for m in pattern.finditer(text):
            path = m.group("path").strip()
            if _LIBRARY.search(path):
                continue
            col = m.groupdict().get("col")
            hits.append((m.start(), f"{path}:{m.group('line')}" + (f":{col}" if col else "")))
    if not hits:
        return None
    hits.sort()
    return hits[-1][1] if rule.innermost else hits[0][1]


def _clip(line: str, patterns: tuple[re.Pattern[str], ...]) -> str:
    """A long line cut to its start, the parts around what the rule matched, and its end."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    spans = sorted({(m.start(), m.end()) for p in patterns for m in p.finditer(line)})[:4]
    windows: list[tuple[int, int]] = [(0, 100)]
    windows += [(max(0, s - 60), min(len(line), e + 60)) for s, e in spans]
    windows.append((len(line) - 100, len(line)))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return f" {_GAP} ".join(line[s:e] for s, e in merged)


def _excerpt(
    lines: list[str], quoted: list[int] | tuple[int, ...], patterns: tuple[re.Pattern[str], ...]
) -> str:
    """The quoted lines and the tail, in output order, with gaps marked, bounded."""
    end = len(lines)
    while end > 0 and not lines[end - 1].strip():
        end -= 1
    chosen: dict[int, str] = {}
    used = 0
    for index in range(end - 1, max(-1, end - 1 - TAIL_LINES), -1):  # the tail, from the end
        line = _clip(lines[index], patterns)
        if used + len(line) + 1 > TAIL_CHARS and chosen:
            break
        chosen[index] = line
        used += len(line) + 1
    tail_start = min(chosen, default=end)
    for index in quoted:
        if index >= tail_start or index in chosen or index >= end:
            continue
        line = _clip(lines[index], patterns)
        if used + len(line) + 3 > EXCERPT_CHARS:
            break
        chosen[index] = line
        used += len(line) + 3
    seen = {chosen[index].strip() for index in chosen if index >= tail_start}
    out: list[str] = []
    previous = -1
    for index in sorted(chosen):
        line = chosen[index]
        if index < tail_start:  # a quoted line: once, and not if the tail shows it anyway
            if len(line.strip()) >= DEDUPE_MIN_CHARS and line.strip() in seen:
                continue
            seen.add(line.strip())
        if index > previous + 1 and out[-1:] != [_GAP]:
            out.append(_GAP)
        out.append(line)
        previous = index
    return "\n".join(out)[:EXCERPT_CHARS]
