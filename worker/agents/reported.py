"""Read values an agent CLI reported in its JSON output, defensively: wrong types are None."""

from __future__ import annotations


def string_value(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def int_value(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def float_value(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
