"""Read values an agent CLI reported in its JSON output, defensively: wrong types are None."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from worker.classify import reset_time


def string_value(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def int_value(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def float_value(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# OpenAI's rate-limit messages: "Please try again in 11.054s." / "in 703ms" / "in 1m30s".
_TRY_AGAIN = re.compile(
    r"try again in (?:(?P<ms>\d+(?:\.\d+)?)ms"
    r"|(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?)\b",
    re.IGNORECASE,
)


def try_again_at(text: str, now: datetime) -> datetime | None:
    """When a rate limit lets us try again, if the text says: OpenAI's "try again in 11.054s"
    (the last one said), else what worker/classify.py's reset_time reads."""
    found = [m for m in _TRY_AGAIN.finditer(text) if any(m.group(g) for g in ("ms", "h", "m", "s"))]
    if found:
        m = found[-1]
        seconds = float(m.group("ms") or 0) / 1000 + int(m.group("h") or 0) * 3600
        seconds += int(m.group("m") or 0) * 60 + float(m.group("s") or 0)
        return now + timedelta(seconds=seconds)
    return reset_time(text, now)
