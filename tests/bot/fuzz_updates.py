"""A seeded generator of hostile but valid Telegram updates (tests/bot/test_fuzz.py).

Every update is one Telegram could send (checked against the Bot API spec, within its
limits: text up to 4096 characters, captions 1024, callback data 1-64 bytes), but its content
is hostile: random unicode (right-to-left, emoji, combining marks, control characters, NUL),
shell and path tricks, commands with odd arguments, forged and stale callback data, and
documents with odd names, types and sizes, from the allowed user and from strangers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tests.bot.updates import callback_update, document_update, message_update, user
from tests.bot.world import ALICE, MALLORY
from tests.fakes.telegram import FakeTelegram

JSON = dict[str, Any]
GROUP = -1001234567890  # a supergroup (a forum) both Alice and strangers write in
TEXT_LIMIT = 4096  # characters of a message's text (UTF-16 code units, to be safe)
CAPTION_LIMIT = 1024
BUTTONS_LOOKED_AT = 60  # the bot's latest messages in a chat whose buttons may be pressed
HUGE = (2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 + 7, 10**30)

# Code point ranges random text is drawn from (no surrogates: Telegram sends valid UTF-8).
_RANGES = (
    (0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E),  # mostly ASCII
    (0x01, 0x1F), (0x7F, 0x9F),  # control characters (NUL comes from HOSTILE, less often)
    (0x0300, 0x036F),  # combining marks
    (0x0590, 0x06FF),  # Hebrew and Arabic: right to left
    (0x2000, 0x206F),  # spaces, zero-width joiners, bidi overrides, line separators
    (0x4E00, 0x9FFF),  # CJK
    (0xE000, 0xF8FF), (0xFFF0, 0xFFFF),  # private use, specials and non-characters
    (0x1F300, 0x1FAFF),  # emoji
    (0x10000, 0x10FFFF),  # the astral planes
)  # fmt: skip
HOSTILE = (
    "$(touch /tmp/PWNED_fuzz)", "`touch /tmp/PWNED_fuzz`", "; rm -rf / #", "| cat /etc/passwd",
    "&& reboot", "../../etc/passwd", "..\\..\\windows\\win.ini", "/dev/zero", "~root/.ssh",
    "<b>bold</b>", "<script>alert(1)</script>", "</code>", "&amp;", "&", "<", ">", "\"'",
    "%s%s%n", "{0}{__class__}", "' OR '1'='1' --", "\x00", "a\x00b", "\u202e", "\u200d",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467", "Z\u0337\u0322\u0349a\u0334l\u0336g\u0335o",
    "\r\n", "\t", "\u2028", "\ufeff", "NaN", "-0", "1e309", "9" * 30, "\uff33\uff28\uff2f\uff30",
    "SHOP-1\u200b", "\U0001f1fa\U0001f1f3", "null", "undefined", "${HOME}", "$TELEGRAM_BOT_TOKEN",
)  # fmt: skip
COMMANDS = ("start", "help", "new", "task", "tasks", "cancel", "retry", "log", "repos", "budget",
            "idea", "ideas", "status", "night", "pause", "resume", "patches", "nope",
            "NEW", "new@devserver_test_bot", "task@some_other_bot")  # fmt: skip
# Each callback prefix of bot/callbacks.py and how many fields its data has; and some others.
FIELDS = {"t": 2, "tp": 2, "to": 1, "n": 2, "p": 3, "b": 3, "i": 4, "ic": 5, "a": 2}
PREFIXES = (*FIELDS, "x", "task", "")
TIMES = ("until 99:99", "until 23:59", "24:00", "7", "until 06:30", "6.30", "stop", "STATUS",
         "until 25:61", "-1:00", "until \u0661\u0662:\u0663\u0660")  # fmt: skip
STATUSES = ("failed", "FAILED", "queued", "done", "awaiting_approval", "nope", "")
# Every command gets each of these (KEY: a real task's key), once, before the random ones.
ODD_ARGS = ("KEY", "KEY extra", "../../etc/passwd", "SHOP-99999999999999999999", "-5", "NaN",
            "$(touch /tmp/PWNED_fuzz)", "`touch /tmp/PWNED_fuzz`", "a\x00b", "KEY\x00", "x" * 4000,
            "\u202eKEY", "KEY cost NaN", "KEY cost -5", "KEY cost 1e309", "KEY wall 99999999999h",
            "KEY turns 99999999999999999999", "KEY cost off", "KEY wall \u0665m", "KEY -5",
            "KEY cost", "KEY turns 0", "shop $(touch /tmp/PWNED_fuzz)", "shop a\x00b",
            "shop \u202e" + "y" * 4000, *TIMES, *STATUSES)  # fmt: skip
NUMBERS = ("-5", "0", "1", "50", "100", "-100", "1e309", "99999999999999999999", "NaN", "inf",
           "0x10", "5$", "\u0665")  # fmt: skip


@dataclass
class Targets:
    """What exists (or existed) in the database, for arguments and callback data that hit."""

    task_ids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    repo_ids: list[int] = field(default_factory=list)
    repo_names: list[str] = field(default_factory=list)
    idea_ids: list[int] = field(default_factory=list)  # deleted ones too
    plans: list[tuple[int, int]] = field(default_factory=list)  # (task id, plan round)


@dataclass
class Counted:
    """Updates from Alice that could create a task: the most the task count may grow by."""

    creating: int = 0


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int) -> str:
    while utf16_len(text) > limit:
        text = text[: max(0, len(text) - (utf16_len(text) - limit))]
    return text


class Fuzzer:
    def __init__(self, rng: random.Random, targets: Targets, fake: FakeTelegram,
                 documents: list[JSON]) -> None:  # fmt: skip
        self.rng = rng
        self.targets = targets
        self.fake = fake
        self.documents = documents  # downloadable files (FakeTelegram.add_file)
        self.counted = Counted()

    # -- pieces ------------------------------------------------------------------------

    def text(self, limit: int = TEXT_LIMIT) -> str:
        """Random text, mostly short, sometimes up to the limit, often with hostile bits."""
        rng = self.rng
        size = rng.choice((1, 3, 10, 40, 200, 1000, limit))
        parts: list[str] = []
        while sum(map(len, parts)) < rng.randint(1, size):
            if rng.random() < 0.25:
                parts.append(rng.choice(HOSTILE))
            else:
                low, high = rng.choice(_RANGES)
                parts.append("".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 8))))
        return fit("".join(parts), limit) or "x"

    def key(self) -> str:
        rng, targets = self.rng, self.targets
        if targets.keys and rng.random() < 0.5:
            key = rng.choice(targets.keys)
            return rng.choice((key, key.lower(), f" {key} ", key + "\u200b", key.replace("-", "")))
        return rng.choice(("SHOP-99999999999999999999", "SHOP-0", "SHOP--1", "NOPE-1", "SHOP-1.5",
                           "../../etc/passwd", "SHOP-1/../../x", "%00", "SHOP-1;ls", "-1",
                           f"SHOP-{rng.choice(HUGE)}", self.text(60)))  # fmt: skip

    def repo_name(self) -> str:
        names = self.targets.repo_names
        return self.rng.choice(names) if names and self.rng.random() < 0.6 else self.text(40)

    def number(self) -> int:
        rng, targets = self.rng, self.targets
        pools = [list(HUGE), [-1, 0, -(2**63), -(2**70)], targets.task_ids, targets.idea_ids,
                 targets.repo_ids]  # fmt: skip
        return int(rng.choice(rng.choice([p for p in pools if p])))

    def args(self, command: str) -> str:
        rng = self.rng
        base = command.partition("@")[0].lower()
        options = [self.text(200), rng.choice(HOSTILE), self.key(), ""]
        if base in ("task", "cancel", "retry", "log", "patches"):
            options += [self.key()] * 3
        elif base == "tasks":
            options += list(STATUSES)
        elif base == "night":
            options += list(TIMES)
        elif base == "budget":
            what = rng.choice(("cost", "wall", "turns", "COST", "nope", ""))
            options += [f"{self.key()} {what} {rng.choice((*NUMBERS, 'off', '45m', '9999999h'))}"]
            options += [f"{self.key()} {rng.choice(NUMBERS)}"]
        elif base == "new":
            title = rng.choice((self.text(300), rng.choice(HOSTILE), "Fix it", "x" * 4000))
            options += [f"{self.repo_name()} {title}\n{self.text(2000)}"] * 3
        elif base == "idea":
            options += [f"{self.text(300)}\n{self.text(3000)}"] * 2
        return rng.choice(options)

    # -- updates -----------------------------------------------------------------------

    def corpus(self) -> list[JSON]:
        """Every command with every odd argument, and data of every callback prefix with
        bad fields, from Alice in her chat: the cases random choice may miss."""
        rng, keys = self.rng, self.targets.keys
        texts = [f"/{command} {arg.replace('KEY', rng.choice(keys))}".strip()
                 for command in COMMANDS for arg in ODD_ARGS]  # fmt: skip
        updates = [self._message(text, ALICE, ALICE) for text in texts]
        for prefix, count in FIELDS.items():
            for _ in range(20):
                data = ":".join([prefix, *(str(self._field()) for _ in range(count))])
                updates.append(callback_update(data.encode()[:64].decode("utf-8", "ignore"),
                                               user_id=ALICE, message_id=1))  # fmt: skip
        for task_id, plan_round in self.targets.plans:  # a plan's review, revised by text
            presses = (("revise", plan_round), ("approve", 2**31 - 1), ("reject", plan_round - 1))
            updates += [callback_update(f"p:{action}:{task_id}:{number}", user_id=ALICE,
                                        message_id=1) for action, number in presses]  # fmt: skip
            updates.append(self._message("Less $(touch /tmp/PWNED_fuzz) please", ALICE, ALICE))
            updates.append(callback_update(f"p:approve:{task_id}:{plan_round}", user_id=ALICE,
                                           message_id=1))  # fmt: skip
        self.counted.creating += sum(
            1 for u in updates if u.get("message", {}).get("text", "").startswith("/new ")
        ) + len(FIELDS) * 20  # fmt: skip
        return updates

    def update(self, *, stranger: bool) -> JSON:
        rng = self.rng
        user_id = self._stranger() if stranger else ALICE
        chat_id = rng.choice((user_id, user_id, GROUP))
        kind = rng.choices(("command", "text", "callback", "document", "other"),
                           weights=(35, 20, 30, 10, 5))[0]  # fmt: skip
        match kind:
            case "command":
                return self._command(user_id, chat_id)
            case "text":
                return self._message(self.text(), user_id, chat_id)
            case "callback":
                return self._callback(user_id, chat_id)
            case "document":
                return self._document(user_id, chat_id)
        return self._other(user_id, chat_id)

    def _stranger(self) -> int:
        rng = self.rng
        return rng.choice((MALLORY, rng.randint(1, 2**52), ALICE + 1, 42, 1087968824))

    def _message(self, text: str, user_id: int, chat_id: int) -> JSON:
        topic = chat_id == GROUP and self.rng.random() < 0.3
        return message_update(fit(text, TEXT_LIMIT) or "x", user_id=user_id, chat_id=chat_id,
                              thread_id=self.rng.randint(1, 10**6) if topic else None,
                              is_topic=topic)  # fmt: skip

    def _command(self, user_id: int, chat_id: int) -> JSON:
        rng = self.rng
        command = rng.choice(COMMANDS)
        args = self.args(command)
        text = f"/{command}" + (rng.choice((" ", "  ", "\n", "\t")) + args if args else "")
        repo = args.partition(" ")[0]
        if user_id == ALICE and command.partition("@")[0].lower() == "new":
            self.counted.creating += repo in self.targets.repo_names
        return self._message(text, user_id, chat_id)

    def callback_data(self) -> str:
        rng = self.rng
        prefix = rng.choice(PREFIXES)
        count = FIELDS.get(prefix, 2) if rng.random() < 0.6 else rng.randint(0, 6)
        fields = [str(self._field()) for _ in range(count)]
        data = ":".join([prefix, *fields]) if rng.random() < 0.85 else self.text(64)
        encoded = data.encode()[:64]
        return encoded.decode("utf-8", "ignore") or "x"

    def _field(self) -> str | int:
        rng = self.rng
        plan = rng.choice(self.targets.plans) if self.targets.plans else (1, 1)
        return rng.choice((
            self.number(), self.number(), rng.choice(("cancel", "retry", "log", "patches",
            "refresh", "approve", "revise", "reject", "ls", "show", "new", "mv", "mvto", "del",
            "rm", "repo", "mode", "flow", "budget", "confirm", "yes", "no", "autonomous",
            "interactive", "patch", "pr", "direct", "1", "0", "True", "")),
            plan[0], plan[1], plan[1] - 1, "0123456789ab", "zzzz", self.text(10),
        ))  # fmt: skip

    def _callback(self, user_id: int, chat_id: int) -> JSON:
        rng = self.rng
        pressed = self._button(chat_id) if rng.random() < 0.5 else None
        if pressed is not None:  # a button the bot sent: as is, pressed late, or tampered with
            message, data = pressed
        else:
            message, data = None, self.callback_data()
        if user_id == ALICE and data.startswith(("n:confirm", "a:", "ic:")):
            self.counted.creating += 1  # may make a task: a dialog's confirm, apply, convert
        where = "stored" if message else rng.choice(("stub", "stored", "inaccessible", "inline"))
        if where == "stored":
            message = message or self.fake.add_message(chat_id, self.text(200))
            return callback_update(data, user_id=user_id, message=message)
        raw = callback_update(data, user_id=user_id, chat_id=chat_id,
                              message_id=rng.randint(1, 2**31 - 1))  # fmt: skip
        query = raw["callback_query"]
        if where == "inaccessible":
            stub = query["message"]
            query["message"] = {"chat": stub["chat"], "message_id": stub["message_id"], "date": 0}
        elif where == "inline":
            del query["message"]
            query["inline_message_id"] = f"inline-{rng.randint(1, 10**9)}"
        return raw

    def _button(self, chat_id: int) -> tuple[JSON, str] | None:
        """A message of the bot's in the chat, with buttons, and the data of one of them;
        one time in three with a field of the data replaced."""
        rng = self.rng
        recent = [m for m in self.fake.messages(chat_id)[-BUTTONS_LOOKED_AT:]
                  if m.get("reply_markup")]  # fmt: skip
        if not recent:
            return None
        message = rng.choice(recent)
        buttons = [b["callback_data"] for row in message["reply_markup"]["inline_keyboard"]
                   for b in row if "callback_data" in b]  # fmt: skip
        if not buttons:
            return None
        data = rng.choice(buttons)
        if rng.random() < 0.33 and ":" in data:
            fields = data.split(":")
            fields[rng.randrange(1, len(fields))] = str(self._field())
            data = ":".join(fields).encode()[:64].decode("utf-8", "ignore")
        return message, data

    def _document(self, user_id: int, chat_id: int) -> JSON:
        rng = self.rng
        caption = self.text(CAPTION_LIMIT) if rng.random() < 0.3 else None
        forwarded = user(MALLORY) if rng.random() < 0.2 else None
        if self.documents and rng.random() < 0.1:
            return document_update(rng.choice(self.documents), user_id=user_id, chat_id=chat_id,
                                   caption=caption, forwarded_from=forwarded)  # fmt: skip
        name = rng.choice(("series.mbox", "0001-fix.patch", "p.zip", "../../etc/passwd.patch",
                           "a\x00b.mbox", ".mbox", "x" * 250 + ".patch", "evil.ZIP", "noext",
                           "\u202egpj.patch", self.text(60), self.text(20) + ".mbox"))  # fmt: skip
        mime = rng.choice(("application/octet-stream", "text/x-patch", "application/zip",
                           "image/png", "text/html", "x/\x00"))  # fmt: skip
        size = rng.choice((0, 1, 4096, 5 * 1024 * 1024, 5 * 1024 * 1024 + 1, 20 * 1024 * 1024,
                           100 * 1024 * 1024))  # fmt: skip
        return document_update(name, mime, user_id=user_id, file_size=size, chat_id=chat_id,
                               caption=caption, forwarded_from=forwarded)  # fmt: skip

    def _other(self, user_id: int, chat_id: int) -> JSON:
        """A photo, a location, or an edited message: nothing the bot handles."""
        rng = self.rng
        raw = message_update("x", user_id=user_id, chat_id=chat_id)
        message = raw["message"]
        del message["text"]
        match rng.choice(("photo", "location", "edited")):
            case "photo":
                message["photo"] = [{"file_id": "p1", "file_unique_id": "u1", "width": 90,
                                     "height": 90}]  # fmt: skip
                if rng.random() < 0.5:
                    message["caption"] = self.text(CAPTION_LIMIT)
            case "location":
                message["location"] = {"latitude": 52.5, "longitude": 13.4}
            case _:
                message["text"] = fit("/" + rng.choice(COMMANDS) + " " + self.key(), TEXT_LIMIT)
                message["edit_date"] = message["date"]
                return {"update_id": raw["update_id"], "edited_message": message}
        return raw
