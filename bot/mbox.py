"""What a `git format-patch` series holds: commits, files and lines, for captions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import decode_header, make_header

_FROM = re.compile(rb"^From [0-9a-f]{40} ", re.MULTILINE)
_SUBJECT = re.compile(rb"^Subject: (?:\[PATCH[^\]]*\] )?(.*(?:\n[ \t].*)*)", re.MULTILINE)
_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_DIFF = re.compile(rb"^diff --git a/(.*) b/(.*)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class MboxStats:
    commits: int
    files: int  # distinct paths touched by the series
    added: int
    removed: int
    subjects: tuple[str, ...]


def _subject(raw: bytes) -> str:
    """A Subject header value, unfolded and RFC 2047 decoded (git encodes non-ASCII)."""
    folded = re.sub(r"\s*\n\s+", " ", raw.decode("utf-8", "replace")).strip()
    try:
        return str(make_header(decode_header(folded)))
    except (ValueError, LookupError):
        return folded


def mbox_stats(content: bytes) -> MboxStats:
    subjects = tuple(_subject(m.group(1)) for m in _SUBJECT.finditer(content))
    paths = {m.group(2) for m in _DIFF.finditer(content)}
    added = removed = 0
    old = new = 0  # lines still expected in the current hunk, from its header
    for line in content.split(b"\n"):
        if old > 0 or new > 0:
            if line.startswith(b"+"):
                added, new = added + 1, new - 1
            elif line.startswith(b"-"):
                removed, old = removed + 1, old - 1
            elif not line.startswith(b"\\"):  # "\ No newline at end of file"
                old, new = old - 1, new - 1
        elif m := _HUNK.match(line):
            old = int(m.group(2)) if m.group(2) is not None else 1
            new = int(m.group(4)) if m.group(4) is not None else 1
    return MboxStats(len(_FROM.findall(content)), len(paths), added, removed, subjects)
