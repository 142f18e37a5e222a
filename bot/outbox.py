"""Deliver the notifications outbox to Telegram: in order per chat, paced, retried.

Rows come from `TaskEventRepo.add` (same transaction as their event). Each chat's oldest
undelivered row goes first; a row that must wait (429 `retry_after`, a 5xx back-off, the
chat's pacing) holds back the rows behind it, so a chat never sees them out of order.
A row is marked sent right after Telegram accepted it; one that can never be delivered
(bot blocked, chat gone, a message Telegram refuses) is given up with the reason logged.
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
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile

from bot import actions, keyboards, night_texts, plan_texts, report_texts, texts
from bot.deps import Pool
from bot.mbox import mbox_stats
from bot.replies import not_modified_is_fine, send_html
from bot.settings import BotSettings
from storage.artifacts import ArtifactRepo
from storage.errors import NotFound
from storage.nights import NightRepo
from storage.notifications import NoticeKind, Notification, NotificationRepo
from storage.reports import DailyReport
from storage.task_events import CHANNEL, EventKind, TaskEventRepo
from storage.tasks import Task, TaskRepo

log = logging.getLogger(__name__)

HTML = ParseMode.HTML
DOCUMENT_LIMIT = 50 * 1000 * 1000  # Telegram's 50 MB for bots, with a margin
MAX_ATTEMPTS = 30  # 5xx/network retries before a row is given up (hours of back-off)
_CHAT_LEVEL = (NoticeKind.MESSAGE, NoticeKind.REPORT, NoticeKind.NIGHT)  # about no one task
IDLE_POLL_SECONDS = 2.0  # also look without a NOTIFY, in case the listener dropped one


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
    def __init__(self, bot: Bot, pool: Pool, settings: BotSettings) -> None:
        self._bot = bot
        self._pool = pool
        self._settings = settings
        self._pacer = Pacer(settings)
        self._rows = NotificationRepo(pool)

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
        now = datetime.now(UTC)
        pause = IDLE_POLL_SECONDS
        for row in await self._rows.heads():
            wait = max((row.next_attempt_at - now).total_seconds(), self._pacer.wait(row.chat_id))
            if wait > 0:
                pause = min(pause, wait)
                continue
            await self._deliver(row)
            pause = 0.0  # the chat may have more: look again at once (pacing spaces them)
        return pause

    async def _deliver(self, row: Notification) -> None:
        try:
            sent = await self._send(row)
        except TelegramRetryAfter as exc:
            log.warning(
                "telegram asked to wait",
                extra={"chat_id": row.chat_id, "retry_after": exc.retry_after},
            )
            await self._rows.defer(row, timedelta(seconds=exc.retry_after), "429 Too Many Requests")
        except TelegramMigrateToChat as exc:
            await self._rows.move_chat(row.chat_id, exc.migrate_to_chat_id)
        except (TelegramServerError, TelegramNetworkError) as exc:
            if row.attempts + 1 >= MAX_ATTEMPTS:
                await self._give_up(row, exc)
            else:
                log.warning(
                    "telegram unavailable; will retry",
                    extra={"chat_id": row.chat_id, "error": str(exc)},
                )
                await self._rows.defer(row, timedelta(seconds=backoff(row.attempts)), str(exc))
        except (TelegramForbiddenError, TelegramNotFound, TelegramBadRequest) as exc:
            await self._give_up(row, exc)
        except NotFound as exc:  # the task was deleted: nothing left to say
            await self._give_up(row, exc)
        else:
            if sent:
                self._pacer.sent(row.chat_id)
            await self._rows.mark_sent(row)

    async def _give_up(self, row: Notification, exc: Exception) -> None:
        log.error(
            "notification given up",
            extra={"notification_id": row.id, "chat_id": row.chat_id, "error": str(exc)},
        )
        await self._rows.give_up(row, f"{type(exc).__name__}: {exc}")

    async def _send(self, row: Notification) -> bool:
        """Deliver one row; False when there was nothing to send."""
        if row.kind in _CHAT_LEVEL or row.task_id is None:
            return await self._message(row)  # written whole by its producer (summaries)
        if row.kind == NoticeKind.CARD:
            await self._card(row, row.task_id)
            return True
        task = await TaskRepo(self._pool).by_id(row.task_id)
        match row.kind:
            case NoticeKind.ALERT:
                return await self._alert(row, task)
            case NoticeKind.MBOX:
                return await self._mbox(row, task)
            case NoticeKind.PATCH:
                return await self._patch(row, task)
        return False

    async def _message(self, row: Notification) -> bool:
        """A chat-level message; a row of another kind without a task has nothing to say."""
        if row.kind == NoticeKind.NIGHT:
            return await self._night(row)
        html = str(row.payload.get("html") or "") if row.kind == NoticeKind.MESSAGE else ""
        if row.kind == NoticeKind.REPORT:  # the daily report, rendered from its figures
            html = _report(row)
        if html:
            await send_html(self._bot, row.chat_id, row.thread_id, html, filename="report.txt")
        return bool(html)

    async def _night(self, row: Notification) -> bool:
        """A night's summary, rendered now from what its tasks came to, with a button per task."""
        nights = NightRepo(self._pool)
        night = await nights.by_id(int(row.payload["night_id"]))
        if night is None:
            return False
        fed = night_texts.summary_order(await nights.fed(night.id))
        zone = night_texts.timezone(self._settings.timezone)
        text = night_texts.summary(night, fed, zone, self._settings.status_page_url)
        markup = keyboards.task_list([item.task for item in fed[: keyboards.LIST_BUTTONS]])
        await send_html(self._bot, row.chat_id, row.thread_id, text, reply_markup=markup,
                        filename="night.txt")  # fmt: skip
        return True

    async def _card(self, row: Notification, task_id: int) -> None:
        """Edit the task's card (silently) to show it as it is now; this settles every
        card row of the task written before we looked, so a burst of events costs one edit."""
        upto = await self._rows.last_card_id(task_id)
        task = await TaskRepo(self._pool).by_id(task_id)
        text = await actions.card_text(self._pool, task)
        markup = keyboards.task_card(task)
        if task.message_id is not None:
            try:
                with not_modified_is_fine():
                    await self._bot.edit_message_text(
                        text=text,
                        chat_id=row.chat_id,
                        message_id=task.message_id,
                        parse_mode=HTML,
                        reply_markup=markup,
                    )
                await self._rows.settle_cards(task.id, upto)
                return
            except TelegramBadRequest as exc:
                if "message to edit not found" not in exc.message and (
                    "message can't be edited" not in exc.message
                ):
                    raise
        message = await self._bot.send_message(
            row.chat_id,
            text,
            parse_mode=HTML,
            message_thread_id=row.thread_id,
            disable_notification=True,
            reply_markup=markup,
        )
        await TaskRepo(self._pool).set_message(task.id, message.message_id)
        await self._rows.settle_cards(task.id, upto)

    async def _alert(self, row: Notification, task: Task) -> bool:
        event = await TaskEventRepo(self._pool).by_id(int(row.payload["event_id"]))
        if event is None:
            return False
        match event.kind:
            case EventKind.PLAN_PENDING:
                text, markup = plan_texts.plan_message(task), keyboards.plan_review(task)
            case EventKind.PLAN_REMINDER:
                text, markup = plan_texts.plan_reminder(task), keyboards.plan_review(task)
            case EventKind.BUDGET_WARNING:
                text, markup = texts.alert(task, event), keyboards.budget(task, resume=False)
            case EventKind.TASK_BLOCKED if "budget_exceeded" in event.payload:
                text, markup = texts.alert(task, event), keyboards.budget(task, resume=True)
            case _:
                text, markup = texts.alert(task, event), keyboards.task_card(task)
        await send_html(self._bot, row.chat_id, row.thread_id, text, reply_markup=markup,
                        filename=f"{task.key}.txt")  # fmt: skip
        return True

    async def _mbox(self, row: Notification, task: Task) -> bool:
        """The patch series as one document, or per commit if that is too big, or a link."""
        artifacts = ArtifactRepo(self._pool)
        names = {a.filename: a.size for a in await artifacts.for_task(task.id)}
        if "combined.mbox" not in names:
            return False  # no commits: nothing to deliver
        filename = f"{task.key}.mbox"
        if names["combined.mbox"] <= DOCUMENT_LIMIT:
            content = await artifacts.content(task.id, "combined.mbox")
            caption = texts.mbox_caption(task, mbox_stats(content), filename)
            await self._document(row, filename, content, caption)
            return True
        patches = sorted(n for n in names if n.endswith(".patch"))
        if not patches or any(names[n] > DOCUMENT_LIMIT for n in patches):
            text = texts.too_big(task, names["combined.mbox"], self._settings.status_page_url)
            await self._bot.send_message(
                row.chat_id, text, parse_mode=HTML, message_thread_id=row.thread_id
            )
            return True
        for number, name in enumerate(patches, 1):  # one row each: paced, retried, once
            await self._rows.add(
                row.chat_id,
                NoticeKind.PATCH,
                f"{row.dedupe_key}:{name}",
                thread_id=row.thread_id,
                task_id=task.id,
                payload={"filename": name, "number": number, "total": len(patches)},
            )
        return False

    async def _patch(self, row: Notification, task: Task) -> bool:
        """One commit of a series too big to send whole."""
        name = str(row.payload["filename"])
        content = await ArtifactRepo(self._pool).content(task.id, name)
        number, total = int(row.payload["number"]), int(row.payload["total"])
        await self._document(row, name, content, texts.split_patch_caption(task, number, total))
        return True

    async def _document(self, row: Notification, name: str, content: bytes, caption: str) -> None:
        document = BufferedInputFile(content, name)
        await self._bot.send_document(row.chat_id, document, caption=caption, parse_mode=HTML,
                                      message_thread_id=row.thread_id)  # fmt: skip


def _report(row: Notification) -> str:
    try:
        return report_texts.daily_report(DailyReport.from_payload(row.payload))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        log.warning("report notification unreadable", extra={"notification_id": row.id})
        return ""


@contextlib.asynccontextmanager
async def _listening(pool: Pool, wake: asyncio.Event) -> AsyncIterator[None]:
    """Set `wake` on every task event NOTIFY, on a connection of its own."""

    def on_notify(*_: object) -> None:
        wake.set()

    conn = await pool.acquire()
    try:
        await conn.add_listener(CHANNEL, on_notify)
        yield
    finally:
        with contextlib.suppress(Exception):
            await conn.remove_listener(CHANNEL, on_notify)
        await pool.release(conn)
