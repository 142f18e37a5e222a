"""Clients for bench/web_status.py: timed HTTP requests (first byte, whole body) and
Server-Sent Events streams, and the live-latency runs over them."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from web_data import Payloads

from storage.task_events import EventKind, TaskEventRepo

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
Payload: TypeAlias = dict[str, Any]

WARMUP = 10


# --- measuring -----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest rank."""
    rank = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


@dataclass(frozen=True, slots=True)
class Fetch:
    status: int
    first_ms: float  # request written -> first byte of the answer
    total_ms: float  # request written -> last byte of the body
    size: int


class HttpConnection:
    """HTTP/1.1 GETs on one keep-alive connection, over plain asyncio streams: the first
    read that returns any byte of the answer stops the first-byte clock."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> Fetch:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        request = (f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                   "Accept: text/html\r\nUser-Agent: bench\r\n\r\n")  # fmt: skip
        started = time.perf_counter()
        writer.write(request.encode())
        data = bytearray(await reader.read(65536))
        first = time.perf_counter()
        while (end := data.find(b"\r\n\r\n")) < 0:
            more = await reader.read(65536)
            if not more:
                raise ConnectionError(f"closed before the headers of {path}")
            data += more
        lines = bytes(data[:end]).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}  # fmt: skip
        length = int(headers["content-length"])  # pages are plain web.Responses
        body = len(data) - end - 4
        if body < length:
            await reader.readexactly(length - body)
        return Fetch(int(lines[0].split()[1]), (first - started) * 1000,
                     (time.perf_counter() - started) * 1000, length)  # fmt: skip

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


@dataclass(frozen=True, slots=True)
class Page:
    label: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    match_info: dict[str, str]
    queries: Callable[[Pool], Awaitable[object]]  # what the handler asks the database


@dataclass(frozen=True, slots=True)
class PageResult:
    page: Page
    size: int
    first: list[float]
    total: list[float]


async def time_pages(host: str, port: int, pages: list[Page], requests: int) -> list[PageResult]:
    results = []
    for page in pages:
        connection = HttpConnection(host, port)
        try:
            for _ in range(WARMUP):
                warm = await connection.get(page.path)
                assert warm.status == 200, (page.path, warm.status)
            fetches = [await connection.get(page.path) for _ in range(requests)]
        finally:
            await connection.close()
        assert all(f.status == 200 for f in fetches), page.path
        results.append(PageResult(page, fetches[-1].size, sorted(f.first_ms for f in fetches),
                                  sorted(f.total_ms for f in fetches)))  # fmt: skip
    return results


# --- live: SSE clients ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SseMessage:
    event: str
    event_id: int | None
    at: float  # perf_counter when its last byte was read


class SseStream:
    """A raw HTTP/1.1 SSE client: reads chunks as they come, splits messages on blank lines."""

    def __init__(self, host: str, port: int, path: str,
                 on_message: Callable[[SseMessage], None] | None = None) -> None:  # fmt: skip
        self.host, self.port, self.path = host, port, path
        self.messages: list[SseMessage] = []
        self.opened = asyncio.Event()  # the server's first comment line arrived
        self._on_message = on_message
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                            "Accept: text/event-stream\r\n\r\n").encode())  # fmt: skip
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        assert head.split()[1] == "200", head
        chunked = "transfer-encoding: chunked" in head.lower()
        self._pump = asyncio.create_task(self._read(reader, chunked))

    async def _read(self, reader: asyncio.StreamReader, chunked: bool) -> None:
        text = ""
        while True:
            if chunked:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    return
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    return
            now = time.perf_counter()
            text += data.decode()
            while "\n\n" in text:
                block, text = text.split("\n\n", 1)
                self._message(block, now)

    def _message(self, block: str, now: float) -> None:
        lines = block.split("\n")
        if all(line.startswith(":") for line in lines):
            self.opened.set()  # ": open", ": connected", ": keepalive"
            return
        event, event_id = "message", None
        for line in lines:
            name, _, value = line.partition(":")
            if name == "event":
                event = value.strip()
            elif name == "id":
                event_id = int(value)
        message = SseMessage(event, event_id, now)
        self.messages.append(message)
        if self._on_message is not None:
            self._on_message(message)

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._pump
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()


@dataclass(frozen=True, slots=True)
class Written:
    event_id: int
    # perf_counter when add() was called. The commit happens before add() returns, and the
    # NOTIFY leaves at the commit, so a nudge can beat add()'s own answer to this process:
    # the clock starts at the call (an upper bound on commit -> page, by add()'s p50 ~2 ms).
    written: float
    insert_ms: float


LIVE_KINDS = [EventKind.AGENT_STARTED, EventKind.AGENT_FINISHED, EventKind.VERIFY_STARTED,
              EventKind.VERIFY_FAILED, EventKind.ERROR_CLASSIFIED, EventKind.RETRY_SCHEDULED,
              EventKind.REPO_MAP_BUILT, EventKind.MEMORY_RECALL, EventKind.REALITY_SIGNAL,
              EventKind.BUDGET_WARNING, EventKind.OPERATOR_ACTION]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Live:
    """A running status page, the pool events are written with, and the running task."""

    host: str
    port: int
    pool: Pool
    key: str
    task_id: int
    pay: Payloads
    rng: random.Random
    gap_ms: tuple[float, float]  # between two events written


async def write_events(live: Live, count: int) -> list[Written]:
    """`count` events, one by one through the storage API (event + outbox rows, autocommit),
    a random gap_ms apart."""
    repo, written = TaskEventRepo(live.pool), []
    for _ in range(count):
        kind = live.rng.choice(LIVE_KINDS)
        before = time.perf_counter()
        event = await repo.add(live.task_id, kind, live.pay.pick_dict(kind))
        after = time.perf_counter()
        written.append(Written(event.id, before, (after - before) * 1000))
        await asyncio.sleep(live.rng.uniform(*live.gap_ms) / 1000)
    return written


async def _until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.perf_counter() + seconds
    while not check():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@dataclass(frozen=True, slots=True)
class LiveResult:
    label: str
    clients: int
    events: int
    latencies: list[float]  # ms, one per event and client that got it, sorted
    lost: int
    insert_ms: list[float]


async def live_task_page(live: Live, clients: int, count: int) -> LiveResult:
    """`clients` streams of the running task's page; each event's `timeline` message is
    matched by its SSE id."""
    after = await live.pool.fetchval("SELECT max(id) FROM task_events WHERE task_id = $1",
                                     live.task_id)  # fmt: skip
    path = f"/tasks/{live.key}/live?after={after}"  # as task.html opens it
    streams = [SseStream(live.host, live.port, path) for _ in range(clients)]
    try:
        for stream in streams:
            await stream.open()
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 10)
        await asyncio.sleep(0.5)  # ": open" comes just before the subscription
        written = await write_events(live, count)
        wanted = {w.event_id for w in written}

        def arrived() -> bool:
            return all(wanted <= {m.event_id for m in s.messages} for s in streams)

        await _until(arrived, 10)
    finally:
        for stream in streams:
            await stream.close()
    latencies, lost = [], 0
    for stream in streams:
        seen = {m.event_id: m.at for m in reversed(stream.messages) if m.event == "timeline"}
        for w in written:
            if w.event_id in seen:
                latencies.append((seen[w.event_id] - w.written) * 1000)
            else:
                lost += 1
    return LiveResult(f"task page stream `/tasks/{live.key}/live`", clients, count,
                      sorted(latencies), lost, sorted(w.insert_ms for w in written))  # fmt: skip


async def live_dashboard(live: Live, clients: int, count: int) -> list[LiveResult]:
    """`clients` dashboards: each event is one notice, and each notice pushes every open
    dashboard its new body (rendered once, after the notice, and shared); the k-th
    `dashboard` message answers the k-th event."""
    streams = [SseStream(live.host, live.port, "/live", lambda _m: None) for _ in range(clients)]
    try:
        for stream in streams:
            await stream.open()
        await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams)), 10)
        written = await write_events(live, count)

        def arrived() -> bool:
            return all(sum(m.event == "dashboard" for m in s.messages) >= count
                       for s in streams)  # fmt: skip

        await _until(arrived, 30)
    finally:
        for stream in streams:
            await stream.close()
    latencies, lost = [], 0
    for stream in streams:
        bodies = [m.at for m in stream.messages if m.event == "dashboard"]
        lost += max(0, count - len(bodies))
        latencies += [(at - w.written) * 1000 for w, at in zip(written, bodies, strict=False)]
    inserts = sorted(w.insert_ms for w in written)
    return [LiveResult("dashboard stream `/live`: the new body pushed", clients, count,
                       sorted(latencies), lost, inserts)]  # fmt: skip
