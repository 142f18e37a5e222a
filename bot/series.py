"""A patch series sent to the bot: downloaded within a limit, unpacked if zipped, and checked
with the real git before anything is stored.

The checks: `git mailsplit` must split the file as an mbox, and in each message `git
mailinfo` must find an author (From) and a subject, and `git apply --numstat` must read its
diff. A cover letter (`[PATCH 0/n]`, no diff) is left out; any other message without a diff
refuses the file. Limits: MAX_FILE_BYTES for the file as sent (Telegram's own download limit
is 20 MB), MAX_UNPACKED_BYTES for what a zip holds (read up to the limit, never trusting the
sizes it declares), MAX_ZIP_ENTRIES and MAX_COMMITS. A zip with an entry whose name leaves
the archive (`../x`, `/x`, `C:x`), a link or an encrypted entry is refused whole. Entries are
never extracted to disk; git works on copies in a temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import stat
import subprocess
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from bot import patch_texts
from bot.actions import UserError
from bot.mbox import mbox_stats

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_UNPACKED_BYTES = 20 * 1024 * 1024
MAX_ZIP_ENTRIES = 100
MAX_COMMITS = 200
SERIES_SUFFIXES = (".mbox", ".patch")
ZIP_SUFFIX = ".zip"
DOWNLOAD_SECONDS = 60
GIT_SECONDS = 30  # for each git command
_CHUNK = 64 * 1024

_COVER = re.compile(rb"^Subject:[ \t]*\[[^\]\n]*?\b0+/\d+\]", re.MULTILINE | re.IGNORECASE)
_MBOX_START = re.compile(rb"From \S+")
_PLAIN_DIFF = (b"diff ", b"--- ", b"Index: ")
_DRIVE = re.compile(r"^[A-Za-z]:")
_REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                         "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES")  # fmt: skip


class SeriesError(UserError):
    """The file is not a patch series the bot takes; `html` says why. Nothing was stored."""


@dataclass(frozen=True, slots=True)
class Commit:
    subject: str
    author: str  # "Name <email>", as `git am` records it


@dataclass(frozen=True, slots=True)
class Series:
    name: str  # the file's name, as sent
    mbox: bytes  # what `git am` gets: every message with a change, cover letters left out
    commits: tuple[Commit, ...]
    files: int  # distinct paths the series touches
    added: int
    removed: int
    covers: int  # cover letters left out

    @property
    def id(self) -> str:
        """Short and stable: names the series in buttons (ApplyAction)."""
        return hashlib.sha256(self.mbox).hexdigest()[:12]

    @property
    def authors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.author for c in self.commits))


def _not_a_series(name: str, why: str) -> SeriesError:
    return SeriesError(patch_texts.not_a_series(name, why))


def _bad_zip(name: str, why: str) -> SeriesError:
    return SeriesError(patch_texts.bad_zip(name, why))


def accepted(name: str) -> bool:
    """Whether a file of this name is one the bot reads (.mbox, .patch, .zip)."""
    return name.lower().endswith((*SERIES_SUFFIXES, ZIP_SUFFIX))


async def download(
    bot: Bot, file_id: str, name: str, *, size: int | None = None, limit: int = MAX_FILE_BYTES
) -> bytes:
    """The file's bytes through getFile and the file URL; never more than `limit` of them."""
    if size is not None and size > limit:
        raise SeriesError(patch_texts.too_big(name, size, limit))
    try:
        file = await bot.get_file(file_id)
    except TelegramBadRequest as exc:
        if "too big" in exc.message:
            raise SeriesError(patch_texts.too_big(name, size, limit)) from None
        raise SeriesError(patch_texts.download_failed(name, exc.message)) from None
    if file.file_size is not None and file.file_size > limit:
        raise SeriesError(patch_texts.too_big(name, file.file_size, limit))
    if not file.file_path:
        raise SeriesError(patch_texts.download_failed(name, "Telegram gave no file path"))
    url = bot.session.api.file_url(bot.token, file.file_path)
    stream = bot.session.stream_content(url, timeout=DOWNLOAD_SECONDS, raise_for_status=True)
    data = bytearray()
    try:
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                data += chunk
                if len(data) > limit:
                    raise SeriesError(patch_texts.too_big(name, None, limit))
    except aiohttp.ClientResponseError as exc:  # its text holds the URL, and so the token
        raise SeriesError(patch_texts.download_failed(name, f"HTTP {exc.status}")) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SeriesError(patch_texts.download_failed(name, type(exc).__name__)) from None
    return bytes(data)


async def read_series(name: str, data: bytes) -> Series:
    """The series in `data` (an mbox, a patch, or a zip of them), checked; SeriesError if
    it is none."""
    return await asyncio.to_thread(_read, name, data)


def _read(name: str, data: bytes) -> Series:
    if name.lower().endswith(ZIP_SUFFIX):
        data = _unzip(name, data)
    elif len(data) > MAX_UNPACKED_BYTES:
        raise SeriesError(patch_texts.too_big(name, len(data), MAX_UNPACKED_BYTES))
    _looks_like_mail(name, data)
    with tempfile.TemporaryDirectory(prefix="devserver-series-") as tmp:
        kept, commits, covers = _split(name, data, Path(tmp))
    if not commits:
        raise _not_a_series(name, "it holds no commit, only a cover letter")
    mbox = b"".join(kept)
    stats = mbox_stats(mbox)
    return Series(name, mbox, tuple(commits), stats.files, stats.added, stats.removed, covers)


def _looks_like_mail(name: str, data: bytes) -> None:
    if not data.strip():
        raise SeriesError(patch_texts.empty(name))
    if b"\0" in data:
        raise SeriesError(patch_texts.binary(name))
    first = data.lstrip().split(b"\n", 1)[0]
    if first.startswith(_PLAIN_DIFF):
        why = "it is a plain diff, without a commit's author and message; use git format-patch"
        raise _not_a_series(name, why)
    if not _MBOX_START.match(data):
        raise _not_a_series(name, 'it does not start like an mbox (a "From …" line)')


def _split(name: str, data: bytes, tmp: Path) -> tuple[list[bytes], list[Commit], int]:
    """Each message with a change (as bytes, for the mbox), its commit, and the cover
    letters left out."""
    source, parts = tmp / "series.mbox", tmp / "parts"
    source.write_bytes(data)
    parts.mkdir()
    split = _git(tmp, "mailsplit", f"-o{parts}", str(source))
    if split.returncode != 0:
        why = f"git cannot split it into messages ({_first_line(split.stderr)})"
        raise _not_a_series(name, why)
    messages = sorted(parts.iterdir())
    if len(messages) > MAX_COMMITS:
        why = f"it holds {len(messages)} messages; at most {MAX_COMMITS} are taken"
        raise _not_a_series(name, why)
    kept: list[bytes] = []
    commits: list[Commit] = []
    covers = 0
    for number, path in enumerate(messages, 1):
        message = path.read_bytes()
        commit = _message(name, number, message, tmp)
        if commit is None:
            covers += 1
            continue
        commits.append(commit)
        kept.append(message if message.endswith(b"\n") else message + b"\n")
    return kept, commits, covers


def _message(name: str, number: int, message: bytes, tmp: Path) -> Commit | None:
    """The commit one message makes; None for a cover letter."""
    info = _git(tmp, "mailinfo", str(tmp / "msg"), str(tmp / "patch"), stdin=message)
    if info.returncode != 0:
        why = f"message {number} is not a readable mail ({_first_line(info.stderr)})"
        raise _not_a_series(name, why)
    fields = dict(line.partition(": ")[::2] for line in
                  info.stdout.decode("utf-8", "replace").splitlines())  # fmt: skip
    subject = fields.get("Subject", "").strip()
    author, email = fields.get("Author", "").strip(), fields.get("Email", "").strip()
    what = f"message {number}" + (f" ({subject[:80]})" if subject else "")
    if not (tmp / "patch").read_bytes().strip():
        header = message.split(b"\n\n", 1)[0]
        if _COVER.search(header):
            return None
        raise _not_a_series(name, f"{what} has no diff")
    if not author or not email:
        raise _not_a_series(name, f"{what} has no author (From:)")
    if not subject:
        raise _not_a_series(name, f"{what} has no subject")
    check = _git(tmp, "apply", "--numstat", str(tmp / "patch"))
    if check.returncode != 0:
        why = f"the diff of {what} is corrupt ({_first_line(check.stderr)})"
        raise _not_a_series(name, why)
    return Commit(subject, f"{author} <{email}>")


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run git outside any repository (discovery stops at `cwd`), without hooks or prompts."""
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_CEILING_DIRECTORIES=str(cwd.parent))
    try:
        return subprocess.run(["git", *args], cwd=cwd, env=env, input=stdin,
                              capture_output=True, timeout=GIT_SECONDS, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(["git", *args], 1, b"", b"git took too long")


def _first_line(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace").strip()
    return (text.splitlines() or ["no reason given"])[0].removeprefix("error: ")[:200]


# -- zip ------------------------------------------------------------------------------------


def _unzip(name: str, data: bytes) -> bytes:
    """The .patch and .mbox entries of a zip, in name order, as one mbox."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        raise _bad_zip(name, "not a readable zip file") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ZIP_ENTRIES:
            why = f"it holds {len(entries)} entries; at most {MAX_ZIP_ENTRIES} are read"
            raise _bad_zip(name, why)
        for entry in entries:
            _refuse_unsafe(name, entry)
        files = sorted(
            (e for e in entries if not e.is_dir() and not e.filename.startswith("__MACOSX/")),
            key=lambda e: e.filename,
        )
        for entry in files:
            if not entry.filename.lower().endswith(SERIES_SUFFIXES):
                raise _bad_zip(name, f"{entry.filename} in it is not a .patch or .mbox file")
        if not files:
            raise _bad_zip(name, "it holds no .patch or .mbox file")
        if sum(e.file_size for e in files) > MAX_UNPACKED_BYTES:
            raise SeriesError(patch_texts.unpacks_too_big(name, MAX_UNPACKED_BYTES))
        parts: list[bytes] = []
        left = MAX_UNPACKED_BYTES
        for entry in files:
            content = _read_entry(name, archive, entry, left)
            left -= len(content)
            if b"\0" in content:
                raise SeriesError(patch_texts.binary(f"{name}: {entry.filename}"))
            parts.append(content if content.endswith(b"\n") or not content else content + b"\n")
    return b"".join(parts)


def _refuse_unsafe(name: str, entry: zipfile.ZipInfo) -> None:
    entry_name = entry.filename.replace("\\", "/")
    path = PurePosixPath(entry_name)
    if path.is_absolute() or ".." in path.parts or _DRIVE.match(entry_name) or "\0" in entry_name:
        why = f"its entry {entry.filename} points outside the archive; such a zip is refused"
        raise _bad_zip(name, why)
    if stat.S_ISLNK(entry.external_attr >> 16):
        raise _bad_zip(name, f"its entry {entry.filename} is a link")
    if entry.flag_bits & 0x1:
        raise _bad_zip(name, f"its entry {entry.filename} is encrypted")


def _read_entry(name: str, archive: zipfile.ZipFile, entry: zipfile.ZipInfo, left: int) -> bytes:
    """An entry's bytes, reading no more than `left` (what it declares is not trusted)."""
    data = bytearray()
    try:
        with archive.open(entry) as stream:
            while chunk := stream.read(_CHUNK):
                data += chunk
                if len(data) > left:
                    raise SeriesError(patch_texts.unpacks_too_big(name, MAX_UNPACKED_BYTES))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise _bad_zip(name, f"it is corrupt ({exc})") from None
    return bytes(data)
