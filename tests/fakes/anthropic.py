"""A fake Anthropic Messages API on 127.0.0.1, for running the real Claude Code CLI.

A test scripts what "the model" answers, one step per `POST /v1/messages`: a `Reply` (text
and `tool_use` blocks), an `ApiError` (a 429 …), or a function of the `Call` that returns one,
since tool inputs need absolute paths inside the CLI's working directory, which only the
request tells (`Call.cwd`). With `repeat_last`, the last step answers every further call.

The wire format follows Anthropic's documentation:
- streaming ("Streaming Messages", https://docs.anthropic.com/en/docs/build-with-claude/
  streaming, now platform.claude.com/docs/en/build-with-claude/streaming): named SSE events,
  `message_start` (a Message with empty content; usage with the input tokens and 1 output
  token), a `ping`, then per block `content_block_start`, `content_block_delta` (`text_delta`,
  or `input_json_delta` with `partial_json` pieces), `content_block_stop`; `message_delta`
  (stop_reason, cumulative output usage) and `message_stop`;
- without `stream`: the Message object;
- errors (https://docs.anthropic.com/en/api/errors): `{"type": "error", "error": {"type",
  "message"}, "request_id"}` with a `request-id` header; a 429 carries `retry-after` and the
  `anthropic-ratelimit-*` headers (https://docs.anthropic.com/en/api/rate-limits). The
  Stainless client in the CLI obeys `x-should-retry: false` (no retries of its own).

Each request is checked against the request shape (tests/fakes/anthropic_spec.py); what it
breaks goes to `violations`, as does a call past the end of the script; `assert_clean()` fails
the test on any. `count_tokens` and `GET /v1/models` are answered; any other path gets a 404
and lands in `unknown` (Claude Code 2.1.331 with its non-essential traffic off calls nothing
but `POST /v1/messages?beta=true`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from tests.fakes.anthropic_spec import request_violations

JSON = dict[str, Any]
MODEL = "claude-opus-5-5"  # what Claude Code 2.1.331 asks for when given no --model
_CWD = re.compile(r"Primary working directory: (/[^\s\"\\]+)")
_ids = itertools.count(1)
RATE_LIMIT_MESSAGE = ("This request would exceed the rate limit for your organization of 50 "
                      "requests per minute.")  # fmt: skip


@dataclass(frozen=True, slots=True)
class ToolUse:
    name: str
    input: JSON


@dataclass(frozen=True, slots=True)
class Reply:
    """One assistant message: its text, then its tool calls (stop_reason tool_use if any)."""

    text: str = ""
    tools: tuple[ToolUse, ...] = ()
    input_tokens: int = 100
    output_tokens: int = 20

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tools else "end_turn"

    def blocks(self) -> list[JSON]:
        found: list[JSON] = [{"type": "text", "text": self.text}] if self.text else []
        for n, tool in enumerate(self.tools):
            found.append({"type": "tool_use", "id": f"toolu_fake{next(_ids):04d}{n}",
                          "name": tool.name, "input": tool.input})  # fmt: skip
        return found


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error answer; a 429 by default, which the CLI is told not to retry."""

    status: int = 429
    type: str = "rate_limit_error"
    message: str = RATE_LIMIT_MESSAGE
    retry_after: int | None = 60
    should_retry: bool = False

    def headers(self, request_id: str) -> dict[str, str]:
        headers = {"request-id": request_id, "x-should-retry": str(self.should_retry).lower()}
        if self.retry_after is not None:
            reset = datetime.now(UTC) + timedelta(seconds=self.retry_after)
            headers["retry-after"] = str(self.retry_after)
            for limit in ("requests", "tokens", "input-tokens", "output-tokens"):
                prefix = f"anthropic-ratelimit-{limit}"
                headers |= {f"{prefix}-limit": "50", f"{prefix}-remaining": "0",
                            f"{prefix}-reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip
        return headers

    def body(self, request_id: str) -> JSON:
        return {"type": "error", "error": {"type": self.type, "message": self.message},
                "request_id": request_id}  # fmt: skip


@dataclass
class Call:
    """One `POST /v1/messages` as the fake saw it, and what it answered."""

    query: str
    headers: dict[str, str]
    body: JSON
    answer: str = ""  # "reply end_turn", "reply tool_use", "429 rate_limit_error", …

    @property
    def cwd(self) -> Path:
        """The CLI's working directory, from the environment section of its prompt."""
        found = _CWD.search(json.dumps(self.body.get("messages", [])))
        found = found or _CWD.search(json.dumps(self.body.get("system", "")))
        if found is None:
            raise AssertionError("the request names no working directory")
        return Path(found.group(1))

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    def texts(self) -> list[str]:
        """The text blocks (and string contents) of the user turns, in order."""
        found: list[str] = []
        for message in self.body.get("messages", []):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                found.append(content)
                continue
            found += [b["text"] for b in content if b.get("type") == "text"]
        return found

    def tool_results(self) -> list[JSON]:
        """The tool_result blocks of the last user turn: what the CLI's tools did."""
        users = [m for m in self.body.get("messages", []) if m.get("role") == "user"]
        content = users[-1].get("content") if users else None
        if not isinstance(content, list):
            return []
        return [b for b in content if b.get("type") == "tool_result"]


Answer = Reply | ApiError
Step = Answer | Callable[[Call], Answer]


@dataclass
class FakeAnthropic:
    script: list[Step] = field(default_factory=list)
    repeat_last: bool = False
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # "GET /v1/whatever"
    base_url: str = ""  # http://127.0.0.1:<port>, once started
    _runner: web.AppRunner | None = field(default=None, repr=False)

    # --- for tests ---

    def then(self, *steps: Step) -> None:
        """Script more answers (after the ones given so far)."""
        self.script += steps

    def assert_clean(self) -> None:
        problems = self.violations + [f"unexpected call {u}" for u in self.unknown]
        assert not problems, "Anthropic API violations:\n" + "\n".join(problems)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    async def __aenter__(self) -> Self:
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the API ---

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        number = len(self.calls) + 1
        for problem in request_violations(headers, body):
            self.violations.append(f"request {number}: {problem}")
        if not isinstance(body, dict):
            return _error(ApiError(400, "invalid_request_error", "body is not JSON", None))
        call = Call(request.query_string, headers, body)
        self.calls.append(call)
        answer = self._next(call)
        if isinstance(answer, ApiError):
            call.answer = f"{answer.status} {answer.type}"
            return _error(answer)
        call.answer = f"reply {answer.stop_reason}"
        message = _message(str(body.get("model", MODEL)), answer)
        if not call.stream:
            return web.json_response(message, headers={"request-id": _request_id()})
        return await _stream(request, message, answer)

    def _next(self, call: Call) -> Answer:
        index = len(self.calls) - 1
        if index >= len(self.script) and not (self.repeat_last and self.script):
            self.violations.append(f"request {index + 1} is past the end of the script")
            return ApiError(500, "api_error", "the fake's script is used up", None)
        step = self.script[min(index, len(self.script) - 1)]
        return step(call) if callable(step) else step

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body = await request.json()
        size = len(json.dumps(body.get("messages", []))) // 4
        return web.json_response({"input_tokens": max(1, size)})

    async def _models(self, request: web.Request) -> web.Response:
        model = {"type": "model", "id": MODEL, "display_name": "Claude (fake)",
                 "created_at": "2026-01-01T00:00:00Z"}  # fmt: skip
        return web.json_response({"data": [model], "has_more": False, "first_id": MODEL,
                                  "last_id": MODEL})  # fmt: skip

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path_qs}")
        error = ApiError(404, "not_found_error", f"Not found: {request.path}", None)
        return _error(error)


def _request_id() -> str:
    return f"req_fake{next(_ids):06d}"


def _error(error: ApiError) -> web.Response:
    request_id = _request_id()
    return web.json_response(error.body(request_id), status=error.status,
                             headers=error.headers(request_id))  # fmt: skip


def _message(model: str, reply: Reply) -> JSON:
    usage = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}  # fmt: skip
    return {"id": f"msg_fake{next(_ids):06d}", "type": "message", "role": "assistant",
            "model": model, "content": reply.blocks(), "stop_reason": reply.stop_reason,
            "stop_sequence": None, "usage": usage}  # fmt: skip


def _sse(kind: str, data: JSON) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def _deltas(block: JSON) -> list[JSON]:
    """A block's content in two pieces, as the API streams it."""
    if block["type"] == "text":
        text = block["text"]
        half = len(text) // 2
        return [{"type": "text_delta", "text": piece} for piece in (text[:half], text[half:])]
    encoded = json.dumps(block["input"])
    half = len(encoded) // 2
    pieces = (encoded[:half], encoded[half:])
    return [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]


async def _stream(request: web.Request, message: JSON, reply: Reply) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
        "request-id": _request_id(),
    })  # fmt: skip
    await response.prepare(request)
    started = {**message, "content": [], "stop_reason": None,
               "usage": {**message["usage"], "output_tokens": 1}}  # fmt: skip
    events: list[tuple[str, JSON]] = [
        ("message_start", {"type": "message_start", "message": started}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        empty = {**block, "text": ""} if block["type"] == "text" else {**block, "input": {}}
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": empty}))  # fmt: skip
        events += [("content_block_delta", {"type": "content_block_delta", "index": index,
                                            "delta": delta})
                   for delta in _deltas(block)]  # fmt: skip
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events += [
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                           "usage": {"output_tokens": reply.output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    for kind, data in events:
        await response.write(_sse(kind, data))
        await asyncio.sleep(0)
    await response.write_eof()
    return response


def tool_turn(*calls: Callable[[Path], ToolUse], text: str = "") -> Callable[[Call], Reply]:
    """A step whose tool calls are made from the CLI's working directory."""
    return lambda call: Reply(text, tuple(make(call.cwd) for make in calls))


def write_file(name: str, content: str) -> Callable[[Path], ToolUse]:
    """The Write tool on `name` inside the working directory."""
    return lambda cwd: ToolUse("Write", {"file_path": str(cwd / name), "content": content})


def bash(command: str, description: str = "") -> Callable[[Path], ToolUse]:
    return lambda cwd: ToolUse("Bash", {"command": command, "description": description or command})
