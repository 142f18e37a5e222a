"""Storage errors; only this package imports asyncpg's exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg


class StorageError(Exception):
    """Root of every storage failure."""


class NotFound(StorageError):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(f"{what} {key!s} not found")
        self.what = what
        self.key = key


class Conflict(StorageError):
    """A unique constraint refused the write (duplicate name, key, ...)."""


class InvalidTransition(StorageError):
    def __init__(self, task_id: int, current: str | None, to: str) -> None:
        super().__init__(f"task {task_id}: cannot move from {current or 'unknown'} to {to}")
        self.task_id = task_id
        self.current = current
        self.to = to


@contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(exc.detail or str(exc)) from exc
    except asyncpg.PostgresError as exc:
        raise StorageError(str(exc)) from exc
