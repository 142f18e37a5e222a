"""Files of the fake Bot API: what users upload and the bot sends, for getFile and downloads.

As on Telegram, a file has a file_id (to use it again, or download it), a file_unique_id, and
once getFile was called for it a file_path, which the bot downloads from
`/file/bot<token>/<file_path>`. Bots can download files up to 20 MB; getFile refuses bigger
ones with "Bad Request: file is too big".
"""

from __future__ import annotations

import mimetypes
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from aiohttp import web

from tests.fakes.telegram_spec import Spec

JSON = dict[str, Any]
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024


class FileTooBig(Exception):
    pass


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_name: str
    mime_type: str
    content: bytes
    file_path: str | None = None  # handed out by getFile

    def document(self) -> JSON:
        """The Document object of a message carrying this file."""
        return {"file_id": self.file_id, "file_unique_id": self.file_unique_id,
                "file_name": self.file_name, "mime_type": self.mime_type,
                "file_size": len(self.content)}  # fmt: skip


class FileStore:
    def __init__(self) -> None:
        self._by_id: dict[str, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}
        self.downloads: list[str] = []  # the file paths downloaded, in order

    def add(self, content: bytes, file_name: str, mime_type: str | None = None) -> StoredFile:
        """Store a file; the same bytes under the same name keep their ids (as on Telegram)."""
        unique_id = f"{zlib.crc32(content):08x}{len(content):x}"
        file_id = f"doc-{unique_id}-{zlib.crc32(file_name.encode()):08x}"
        mime = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        stored = StoredFile(file_id, unique_id, file_name, mime, content)
        return self._by_id.setdefault(file_id, stored)

    def get_file(self, file_id: str) -> JSON:
        """The File object getFile answers with; KeyError for an unknown file_id."""
        stored = self._by_id[file_id]
        if len(stored.content) > MAX_DOWNLOAD_BYTES:
            raise FileTooBig(file_id)
        if stored.file_path is None:
            suffix = PurePosixPath(stored.file_name).suffix
            stored.file_path = f"documents/file_{len(self._by_path)}{suffix}"
            self._by_path[stored.file_path] = stored
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.content), "file_path": stored.file_path}  # fmt: skip

    def download(self, file_path: str) -> bytes | None:
        """The bytes at a path getFile handed out; None for any other path."""
        stored = self._by_path.get(file_path)
        return None if stored is None else stored.content


class FileMethods:
    """FakeTelegram's file half: add_file for tests, getFile, and the download route."""

    token: str
    spec: Spec
    violations: list[str]
    files: FileStore

    def _error(self, status: int, description: str, *, violation: str | None = None) -> Exception:
        raise NotImplementedError  # FakeTelegram makes its TelegramError

    def _notify(self) -> None:
        raise NotImplementedError

    def add_file(self, content: bytes, file_name: str, mime_type: str | None = None) -> JSON:
        """A file a user uploaded: its Document, for a message (tests/bot/updates.py
        document_update); the bot can getFile and download it."""
        document = self.files.add(content, file_name, mime_type).document()
        if problems := self.spec.check_object("Document", document):
            raise AssertionError(f"invalid document: {problems}")
        return document

    async def _api_getFile(self, call: Any) -> JSON:
        try:
            return self.files.get_file(call.params["file_id"])
        except KeyError:
            raise self._error(400, "Bad Request: invalid file_id") from None
        except FileTooBig:
            raise self._error(400, "Bad Request: file is too big") from None

    async def _download(self, request: web.Request) -> web.Response:
        """GET /file/bot<token>/<file_path>: only a path getFile handed out, with the token."""
        path = request.match_info["path"]
        content = self.files.download(path)
        if request.match_info["token"] != self.token:
            problem = "a wrong token"
        elif content is None:
            problem = f"{path!r}, a path getFile did not hand out"
        else:
            self.files.downloads.append(path)
            self._notify()
            return web.Response(body=content, content_type="application/octet-stream")
        self.violations.append(f"download: {problem}")
        self._notify()
        body = {"ok": False, "error_code": 404, "description": "Not Found"}
        return web.json_response(body, status=404)
