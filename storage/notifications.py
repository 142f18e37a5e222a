"""Rows and SQL of the `notifications` outbox: what the bot must still tell each chat.

Rows are written in the same transaction as the task event they announce (see
`TaskEventRepo.add`), so nothing is lost when the bot is down; `dedupe_key` makes every
event produce each notification once. The bot delivers each chat's rows in id order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Self

import asyncpg

from storage.db import Executor


class NoticeKind(StrEnum):
    CARD = "card"  # edit the task's status card in place (silent)
    ALERT = "alert"  # a separate, loud message: done, failed, blocked, needs you
    MBOX = "mbox"  # the task's combined.mbox as a document
    PATCH = "patch"  # one patch of a series too big to send whole
    MESSAGE = "message"  # a chat-level message, not about one task: payload {"html": ...}
    REPORT = "report"  # the daily report: payload storage/reports.py DailyReport.to_payload()
    NIGHT = "night"  # a night's summary, rendered by the bot when sent: payload {"night_id": N}


# Which task events a person hears about, and how. Every other event is only on the page.
_CARD = (NoticeKind.CARD,)
_LOUD = (NoticeKind.CARD, NoticeKind.ALERT)
FOR_EVENT: dict[str, tuple[NoticeKind, ...]] = {
    "status_changed": _CARD,
    "workspace_ready": _CARD,
    "agent_started": _CARD,
    "agent_finished": _CARD,
    "agent_fallback": _CARD,
    "verify_started": _CARD,
    "verify_passed": _CARD,
    "verify_failed": _CARD,
    "retry_scheduled": _CARD,
    "rate_limit_backoff": _LOUD,  # when it runs again
    "error_classified": _CARD,
    "reality_signal": _CARD,
    "budget_warning": _LOUD,  # with Extend buttons
    "patches_generated": _CARD,
    "pr_opened": _CARD,
    "branch_pushed": _CARD,
    "plan_pending": _LOUD,
    "plan_reminder": (NoticeKind.ALERT,),
    "plan_approved": _CARD,
    "plan_rejected": _CARD,
    "budget_exceeded": _CARD,  # the task_blocked that follows carries the Extend & resume
    "preflight_passed": _CARD,
    "preflight_failed": _CARD,  # a block says so loudly, findings and all (task_blocked)
    "task_done": (*_LOUD, NoticeKind.MBOX),
    "task_failed": _LOUD,
    "task_blocked": (*_LOUD, NoticeKind.MBOX),  # stopped by its budget or scope: work so far
    "task_cancelled": (*_LOUD, NoticeKind.MBOX),
    "task_recovered": _CARD,
}

_ADD = """
    INSERT INTO notifications (chat_id, thread_id, task_id, kind, payload, dedupe_key)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING *
"""
# The oldest undelivered row of every chat: a chat's rows go out strictly in order.
_HEADS = """
    SELECT DISTINCT ON (chat_id) *
      FROM notifications
     WHERE sent_at IS NULL AND given_up_at IS NULL
     ORDER BY chat_id, id
"""
_MARK_SENT = "UPDATE notifications SET sent_at = now(), attempts = attempts + 1 WHERE id = $1"
# A card shows the task as it is now, so one edit settles every older card row of the task.
_SETTLE_CARDS = """
    UPDATE notifications
       SET sent_at = now()
     WHERE task_id = $1 AND kind = 'card' AND id <= $2
       AND sent_at IS NULL AND given_up_at IS NULL
"""
_LAST_CARD = """
    SELECT coalesce(max(id), 0) FROM notifications
     WHERE task_id = $1 AND kind = 'card' AND sent_at IS NULL AND given_up_at IS NULL
"""
_DEFER = """
    UPDATE notifications
       SET attempts = attempts + 1, next_attempt_at = now() + $2, last_error = $3
     WHERE id = $1
"""
_GIVE_UP = """
    UPDATE notifications
       SET attempts = attempts + 1, given_up_at = now(), last_error = $2
     WHERE id = $1
"""
_MOVE_CHAT = """
    UPDATE notifications SET chat_id = $2 WHERE chat_id = $1 AND sent_at IS NULL
"""
_PENDING_COUNT = """
    SELECT count(*) FROM notifications WHERE sent_at IS NULL AND given_up_at IS NULL
"""
# Rows the outbox gave up on after a long Telegram outage (its retries of a 5xx or network
# error ran out) are due again. Attempts stay as they are, so a failure gives up at once:
# one more try per call, and only for rows created since $1.
_REVIVE = """
    UPDATE notifications
       SET given_up_at = NULL, next_attempt_at = now()
     WHERE given_up_at IS NOT NULL AND sent_at IS NULL
       AND created_at >= $1
       AND split_part(last_error, ':', 1) = ANY($2::text[])
    RETURNING id
"""
_DELETE_SETTLED = """
    WITH deleted AS (
        DELETE FROM notifications
         WHERE sent_at < $1 OR given_up_at < $1
        RETURNING id
    )
    SELECT count(*) FROM deleted
"""
# What the outbox records on giving up (type(exc).__name__) after errors that pass.
TRANSIENT_ERRORS = ("TelegramServerError", "RestartingTelegram", "TelegramNetworkError")


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    chat_id: int
    thread_id: int | None
    task_id: int | None
    kind: NoticeKind
    payload: dict[str, Any]
    dedupe_key: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> Self:
        return cls(r["id"], r["chat_id"], r["thread_id"], r["task_id"], NoticeKind(r["kind"]),
                   json.loads(r["payload"]), r["dedupe_key"], r["attempts"],
                   r["next_attempt_at"], r["last_error"])  # fmt: skip


class NotificationRepo:
    def __init__(self, db: Executor) -> None:
        self._db = db

    async def add(
        self,
        chat_id: int,
        kind: NoticeKind,
        dedupe_key: str,
        *,
        thread_id: int | None = None,
        task_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Notification | None:
        """Queue a notification; None if one with this dedupe key already exists."""
        row = await self._db.fetchrow(_ADD, chat_id, thread_id, task_id, kind.value,
                                      json.dumps(payload or {}), dedupe_key)  # fmt: skip
        return None if row is None else Notification.from_record(row)

    async def heads(self) -> list[Notification]:
        """The oldest undelivered notification of each chat, due or not."""
        return [Notification.from_record(r) for r in await self._db.fetch(_HEADS)]

    async def mark_sent(self, notification: Notification) -> None:
        await self._db.execute(_MARK_SENT, notification.id)

    async def settle_cards(self, task_id: int, up_to_id: int) -> None:
        await self._db.execute(_SETTLE_CARDS, task_id, up_to_id)

    async def last_card_id(self, task_id: int) -> int:
        return int(await self._db.fetchval(_LAST_CARD, task_id))

    async def defer(self, notification: Notification, delay: timedelta, error: str) -> None:
        await self._db.execute(_DEFER, notification.id, delay, error)

    async def give_up(self, notification: Notification, error: str) -> None:
        await self._db.execute(_GIVE_UP, notification.id, error)

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> None:
        """A group became a supergroup: its undelivered rows follow it."""
        await self._db.execute(_MOVE_CHAT, old_chat_id, new_chat_id)

    async def pending_count(self) -> int:
        return int(await self._db.fetchval(_PENDING_COUNT))

    async def revive(self, created_since: datetime) -> list[int]:
        """Make rows given up for a passing reason (Telegram 5xx, network) due again, once;
        only rows created since `created_since`. Their ids."""
        rows = await self._db.fetch(_REVIVE, created_since, list(TRANSIENT_ERRORS))
        return [int(r["id"]) for r in rows]

    async def delete_settled(self, before: datetime) -> int:
        """Delete rows sent or given up before `before`; how many."""
        return int(await self._db.fetchval(_DELETE_SETTLED, before))
