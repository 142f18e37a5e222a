"""Budget limits: reading them as people type them, and which one applies to a task.

A task's own limit wins, then its repo's default, then the worker's global default.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from storage.repos import Repo
from storage.tasks import Task

MAX_COST_USD = Decimal(10_000)
MAX_WALL_SECONDS = 7 * 86400
MAX_TURNS = 10_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_cost(text: str) -> Decimal:
    """ "5", "$5.50" → dollars, rounded to cents; ValueError if not a sane positive amount."""
    try:
        amount = Decimal(text.strip().lstrip("$")).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise ValueError(f"not an amount of dollars: {text!r}") from None
    if not amount.is_finite():  # NaN and Infinity parse, and NaN cannot even be compared
        raise ValueError(f"not an amount of dollars: {text!r}")
    if not 0 < amount <= MAX_COST_USD:
        raise ValueError(f"a cost limit must be above $0 and at most ${MAX_COST_USD}")
    return amount


def parse_duration(text: str) -> int:
    """ "900", "900s", "45m", "2h", "1d" → seconds; ValueError otherwise."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], 0)
    try:
        seconds = int(value[:-1]) * unit if unit else int(value)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (try 900, 45m or 2h)") from None
    if not 0 < seconds <= MAX_WALL_SECONDS:
        raise ValueError("a wall-time limit must be above 0 and at most 7 days")
    return seconds


def parse_turns(text: str) -> int:
    try:
        turns = int(text.strip())
    except ValueError:
        raise ValueError(f"not a number of turns: {text!r}") from None
    if not 0 < turns <= MAX_TURNS:
        raise ValueError(f"a turn limit must be between 1 and {MAX_TURNS}")
    return turns


@dataclass(frozen=True, slots=True)
class Limits:
    cost_usd: Decimal | None
    wall_seconds: int | None
    turns: int | None


def effective_limits(task: Task, repo: Repo, defaults: Limits) -> Limits:
    """The limits that bind `task`: its own, else its repo's, else the global defaults."""
    return Limits(
        cost_usd=task.max_cost_usd or repo.max_cost_usd or defaults.cost_usd,
        wall_seconds=task.max_wall_seconds or repo.max_wall_seconds or defaults.wall_seconds,
        turns=task.max_turns or repo.max_turns or defaults.turns,
    )
