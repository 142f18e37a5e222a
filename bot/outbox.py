"""Deliver the notifications outbox to Telegram: in order per chat, paced, retried.

Rows come from `TaskEventRepo.add` (same transaction as their event). Each chat's oldest
undelivered row goes first; a row that must wait (429 `retry_after`, a 5xx back-off, the
chat's pacing) holds back the rows behind it, so a chat never sees them out of order.
A row is marked sent right after Telegram accepted it; one that can never be delivered
(bot blocked, chat gone, a message Telegram refuses) is given up with the reason logged.
Any other failure of one row (a malformed payload, an answer we did not expect) is retried
with back-off and counted like a 5xx, so it neither stops the round for other chats nor
comes back every few seconds forever. A refused bot token (401) is no row's fault: the
whole outbox pauses, loudly, and its rows keep their attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from bot.deps import Pool
from bot.notices import Notices
from bot.settings import BotSettings
from storage.errors import NotFound
from storage.notifications import Notification, NotificationRepo
from storage.outage import through_outage
from storage.task_events import CHANNEL

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 30  # 5xx/network retries before a row is given up (hours of back-off)
IDLE_POLL_SECONDS = 2.0  # also look without a NOTIFY, in case the listener dropped one
LISTEN_RETRY_SECONDS = 1.0  # between attempts to LISTEN again after the connection was lost
UNAUTHORIZED_PAUSE = 60.0  # a refused bot token pauses the outbox: 1 min, doubling ...
UNAUTHORIZED_PAUSE_MAX = 900.0  # ... up to 15 min (Telegram has answered 401 in outages)


def backoff(attempts: int) -> float:
    """Seconds before retry number `attempts` + 1 after a server or network error."""
    return min(300.0, 2.0 ** min(attempts, 9)) * random.uniform(0.8, 1.2)  # noqa: S311


class Pacer:
    """Per-chat spacing of messages: Telegram allows about one per second in a chat and
    twenty per minute in a group; short bursts are fine."""

    def __init__(self, settings: BotSettings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._clock = clock
        self._next: dict[int, float] = {}

    def wait(self, chat_id: int) -> float:
        return max(0.0, self._next.get(chat_id, 0.0) - self._clock())

    def sent(self, chat_id: int) -> None:
        group = chat_id < 0
        gap = self._settings.group_chat_interval if group else self._settings.private_chat_interval
        self._next[chat_id] = max(self._clock(), self._next.get(chat_id, 0.0)) + gap


class Outbox:
    def __init__(
        self, bot: Bot, pool: Pool, settings: BotSettings, *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._bot = bot
        self._pool = pool
        self._settings = settings
        self._clock = clock
        self._pacer = Pacer(settings, clock)
        self._rows = NotificationRepo(pool)
        self._notices = Notices(bot, pool, settings)
        self._paused_until = 0.0  # the bot token was refused: nothing is sent before this
        self._refusals = 0  # 401s in a row, for the pause's back-off

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`; wake on every task event NOTIFY."""
        wake = asyncio.Event()
        async with _listening(self._pool, wake):
            while not stop.is_set():
                try:
                    pause = await self.deliver_due()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("outbox round failed")
                    pause = 5.0
                if pause > 0:
                    wake.clear()
                    waiters = {
                        asyncio.ensure_future(wake.wait()),
                        asyncio.ensure_future(stop.wait()),
                    }
                    _, pending = await asyncio.wait(
                        waiters, timeout=pause, return_when=asyncio.FIRST_COMPLETED
                    )
                    for waiter in pending:
                        waiter.cancel()

    async def deliver_due(self) -> float:
        """Send each chat's oldest row if it is due; return seconds until the next is due."""
        if (paused := self._paused_until - self._clock()) > 0:
            return paused
        now = datetime.now(UTC)
        pause = IDLE_POLL_SECONDS
        for row in await self._rows.heads():
            wait = max((row.next_attempt_at - now).total_seconds(), self._pacer.wait(row.chat_id))
            if wait > 0:
                pause = min(pause, wait)
                continue
            await self._deliver(row)
            if (paused := self._paused_until - self._clock()) > 0:
                return paused  # the token was refused: every other chat would fail alike
            pause = 0.0  # the chat may have more: look again at once (pacing spaces them)
        return pause

    async def _deliver(self, row: Notification) -> None:
        try:
            sent = await self._notices.send(row)
        except TelegramRetryAfter as exc:
            log.warning(
                "telegram asked to wait",
                extra={"chat_id": row.chat_id, "retry_after": exc.retry_after},
            )
            await self._rows.defer(row, timedelta(seconds=exc.retry_after), "429 Too Many Requests")
        except TelegramMigrateToChat as exc:
            await self._rows.move_chat(row.chat_id, exc.migrate_to_chat_id)
        except TelegramUnauthorizedError as exc:
            self._pause_all(exc)
        except (TelegramForbiddenError, TelegramNotFound, TelegramBadRequest) as exc:
            await self._give_up(row, exc)
        except TelegramEntityTooLarge as exc:  # a NetworkError subclass, but never passes
            await self._give_up(row, exc)
        except NotFound as exc:  # the task was deleted: nothing left to say
            await self._give_up(row, exc)
        except (TelegramServerError, TelegramNetworkError) as exc:
            await self._retry_later(row, exc, "telegram unavailable; will retry")
        except Exception as exc:  # one row's bug must not stop the others' rows
            await self._retry_later(row, exc, "notification failed unexpectedly; will retry")
        else:
            self._refusals = 0
            if sent:
                self._pacer.sent(row.chat_id)
            # Telegram has it: a database outage now must not get it sent twice.
            await through_outage(lambda: self._rows.mark_sent(row))

    async def _retry_later(self, row: Notification, exc: Exception, message: str) -> None:
        """Back off and count the attempt; give the row up once its attempts run out."""
        if row.attempts + 1 >= MAX_ATTEMPTS:
            await self._give_up(row, exc)
            return
        expected = isinstance(exc, (TelegramServerError, TelegramNetworkError))
        log.warning(message, exc_info=None if expected else exc,
                    extra={"notification_id": row.id, "chat_id": row.chat_id,
                           "error": _reason(exc)})  # fmt: skip
        await self._rows.defer(row, timedelta(seconds=backoff(row.attempts)), _reason(exc))

    def _pause_all(self, exc: TelegramUnauthorizedError) -> None:
        """Telegram refused the bot token: no row is to blame, so none is counted or given
        up; the whole outbox waits (longer each time) and says so loudly."""
        seconds = min(UNAUTHORIZED_PAUSE_MAX, UNAUTHORIZED_PAUSE * 2.0 ** min(self._refusals, 9))
        self._refusals += 1
        self._paused_until = self._clock() + seconds
        log.critical(
            "telegram refused the bot token (check TELEGRAM_BOT_TOKEN); the outbox pauses",
            extra={"pause_seconds": seconds, "error": _reason(exc)},
        )

    async def _give_up(self, row: Notification, exc: Exception) -> None:
        log.error(
            "notification given up",
            extra={"notification_id": row.id, "chat_id": row.chat_id, "error": _reason(exc)},
        )
        await self._rows.give_up(row, _reason(exc))


def _reason(exc: BaseException) -> str:
    """A failure as a row's last_error records it (and `revive` reads its type back)."""
    return f"{type(exc).__name__}: {exc}"


@contextlib.asynccontextmanager
async def _listening(pool: Pool, wake: asyncio.Event) -> AsyncIterator[None]:
    """Set `wake` on every task event NOTIFY, on a connection of its own, for as long as
    inside; a lost connection (a database restart) is opened again."""
    keeper = asyncio.create_task(_keep_listening(pool, wake), name="outbox-listener")
    try:
        yield
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper


async def _keep_listening(pool: Pool, wake: asyncio.Event) -> None:
    """LISTEN until cancelled, on a new connection after each loss. `wake` is set whenever
    it listens (again): the round finds what came while nobody listened (it also polls)."""
    while True:
        try:
            await _listen_once(pool, wake)
            log.warning("outbox listener lost its connection; reconnecting")
        except Exception:  # the database is away, or went while we set up: try again
            log.warning("outbox listener failed; reconnecting", exc_info=True)
        await asyncio.sleep(LISTEN_RETRY_SECONDS)


async def _listen_once(pool: Pool, wake: asyncio.Event) -> None:
    lost = asyncio.Event()

    def on_lost(*_: object) -> None:
        lost.set()

    def on_notify(*_: object) -> None:
        wake.set()

    async with pool.acquire() as conn:
        conn.add_termination_listener(on_lost)
        try:
            await conn.add_listener(CHANNEL, on_notify)
            wake.set()
            await lost.wait()
        finally:
            conn.remove_termination_listener(on_lost)
            with contextlib.suppress(Exception):  # a dead connection has no listener to drop
                await conn.remove_listener(CHANNEL, on_notify)
