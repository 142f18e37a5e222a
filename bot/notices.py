"""What each kind of notification sends to Telegram (storage/notifications.py NoticeKind):
task cards edited in place, alerts with their buttons, the mbox or its patches, and the
chat-level messages (night summaries, daily reports), rendered when they are sent.

The outbox (bot/outbox.py) decides when a row goes and what happens when it fails; this
says what it is. Writes that follow a message Telegram accepted wait out a database outage,
so the outbox never sends that message again.
"""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from bot import actions, keyboards, night_texts, plan_texts, report_texts, texts
from bot.deps import Pool
from bot.mbox import mbox_stats
from bot.replies import not_modified_is_fine, send_html
from bot.settings import BotSettings
from storage.artifacts import ArtifactRepo
from storage.nights import NightRepo
from storage.notifications import NoticeKind, Notification, NotificationRepo
from storage.outage import through_outage
from storage.reports import DailyReport
from storage.task_events import EventKind, TaskEventRepo
from storage.tasks import Task, TaskRepo

log = logging.getLogger(__name__)

HTML = ParseMode.HTML
DOCUMENT_LIMIT = 50 * 1000 * 1000  # Telegram's 50 MB for bots, with a margin
_CHAT_LEVEL = (NoticeKind.MESSAGE, NoticeKind.REPORT, NoticeKind.NIGHT)  # about no one task


class Notices:
    def __init__(self, bot: Bot, pool: Pool, settings: BotSettings) -> None:
        self._bot = bot
        self._pool = pool
        self._settings = settings
        self._rows = NotificationRepo(pool)

    async def send(self, row: Notification) -> bool:
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
                await through_outage(lambda: self._rows.settle_cards(task.id, upto))
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
        # Telegram has it: a database outage now must not get a second card sent.
        await through_outage(lambda: TaskRepo(self._pool).set_message(task.id, message.message_id))
        await through_outage(lambda: self._rows.settle_cards(task.id, upto))

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
        found = await actions.series(self._pool, task, limit=DOCUMENT_LIMIT)
        if not found.size:
            return False  # no commits: nothing to deliver
        if found.whole:
            filename = f"{task.key}.mbox"
            content = await ArtifactRepo(self._pool).content(task.id, actions.COMBINED_MBOX)
            caption = texts.mbox_caption(task, mbox_stats(content), filename)
            await self._document(row, filename, content, caption)
            return True
        if not found.files:
            text = texts.too_big(task, found.size, self._settings.status_page_url)
            await self._bot.send_message(
                row.chat_id, text, parse_mode=HTML, message_thread_id=row.thread_id
            )
            return True
        patches = found.files
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
