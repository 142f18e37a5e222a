"""The fake Anthropic API itself: its answers have the documented shapes, and it catches
requests that break the Messages API's (tests/fakes/anthropic_spec.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.anthropic import ApiError, FakeAnthropic, Reply, ToolUse
from tests.fakes.anthropic_spec import request_violations

HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-test"}
BODY: dict[str, Any] = {
    "model": "claude-opus-5-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
    "tools": [{"name": "Write", "description": "Write a file",
               "input_schema": {"type": "object", "properties": {}}}],
}  # fmt: skip
REPLY = Reply("Writing it.", (ToolUse("Write", {"file_path": "/w/a.txt", "content": "a\n"}),))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _events(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """Server-sent events: (event name, decoded data), in order."""
    found = []
    for chunk in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines())
        found.append((fields["event"], json.loads(fields["data"])))
    return found


def _assemble(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The Message a streaming client builds from the events (per the streaming docs)."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for name, data in events:
        assert data["type"] == name  # the SSE event name repeats the data's type
        if name == "message_start":
            message = data["message"]
        elif name == "content_block_start":
            assert data["index"] == len(message["content"])
            message["content"].append(data["content_block"])
        elif name == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            else:
                assert delta["type"] == "input_json_delta"
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
        elif name == "content_block_stop":
            if data["index"] in partial:
                message["content"][data["index"]]["input"] = json.loads(partial[data["index"]])
        elif name == "message_delta":
            message.update(data["delta"])
            message["usage"].update(data["usage"])
    return message


async def test_a_stream_assembles_into_the_message_sent_without_streaming(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeAnthropic([REPLY, REPLY]) as fake:
        url = f"{fake.base_url}/v1/messages"
        async with session.post(url, json={**BODY, "stream": True}, headers=HEADERS) as answer:
            assert answer.content_type == "text/event-stream"
            events = _events(await answer.text())
        async with session.post(url, json=BODY, headers=HEADERS) as answer:
            whole = await answer.json()
    fake.assert_clean()
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["stop_reason"] is None
    streamed = _assemble(events)
    for message in (streamed, whole):
        assert message["type"] == "message"
        assert message["role"] == "assistant"
        assert message["stop_reason"] == "tool_use"
        assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
        assert message["content"][0]["text"] == "Writing it."
        assert message["content"][1]["name"] == "Write"
        assert message["content"][1]["input"] == {"file_path": "/w/a.txt", "content": "a\n"}
        assert message["content"][1]["id"].startswith("toolu_")
        assert message["usage"]["output_tokens"] == REPLY.output_tokens
    assert [c.answer for c in fake.calls] == ["reply tool_use"] * 2


async def test_a_rate_limit_answer_has_the_documented_body_and_headers(
    session: aiohttp.ClientSession,
) -> None:
    fake = FakeAnthropic([ApiError(retry_after=30)])
    async with fake, session.post(f"{fake.base_url}/v1/messages", json=BODY,
                                  headers=HEADERS) as answer:  # fmt: skip
        body = await answer.json()
        headers = answer.headers
    fake.assert_clean()
    assert answer.status == 429
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["request_id"] == headers["request-id"]
    assert headers["retry-after"] == "30"
    assert headers["x-should-retry"] == "false"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert headers["anthropic-ratelimit-tokens-reset"].endswith("Z")


async def test_calls_off_the_script_and_off_the_api_are_recorded(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeAnthropic([Reply("one")]) as fake:
        for _ in range(2):
            async with session.post(f"{fake.base_url}/v1/messages", json=BODY, headers=HEADERS):
                pass
        async with session.get(f"{fake.base_url}/v1/organizations") as answer:
            assert answer.status == 404
        async with session.post(f"{fake.base_url}/v1/messages/count_tokens", json=BODY,
                                headers=HEADERS) as answer:  # fmt: skip
            assert (await answer.json())["input_tokens"] > 0
    assert fake.violations == ["request 2 is past the end of the script"]
    assert fake.unknown == ["GET /v1/organizations"]
    with pytest.raises(AssertionError, match="past the end"):
        fake.assert_clean()


def test_a_well_formed_request_passes_the_checks() -> None:
    assert request_violations(HEADERS, BODY) == []
    turns = [*BODY["messages"],
             {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                "name": "Write", "input": {}}]},
             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                           "content": "done"}]}]  # fmt: skip
    assert request_violations(HEADERS, {**BODY, "messages": turns}) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"max_tokens": None}, "max_tokens is not a positive integer: None"),
        ({"model": ""}, "model is not a non-empty string"),
        ({"temprature": 0.5}, "unknown field 'temprature'"),
        ({"context_management": {}}, "unknown field 'context_management'"),  # a beta, unasked
        ({"tools": [{"name": "Bash", "input_schema": {"type": "string"}}]},
         "tool Bash: input_schema is not an object schema"),
        ({"messages": [{"role": "system", "content": "be brief"}]}, "messages[0].role is 'system'"),
        ({"messages": [{"role": "user", "content": [{"type": "txt", "text": "hi"}]}]},
         "messages[0].content[0]: unknown block type 'txt'"),
        ({"messages": [{"role": "user", "content": "hi"},
                       {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                          "name": "Write", "input": {}}]},
                       {"role": "user", "content": "go on"}]},
         "tool_use ['toolu_1'] is not answered by a tool_result"),
        ({"messages": [{"role": "user", "content": [{"type": "tool_result",
                                                     "tool_use_id": "toolu_9"}]}]},
         "tool_result for ['toolu_9'] without its tool_use"),
    ],
)  # fmt: skip
def test_requests_that_break_the_shape_are_caught(change: dict[str, Any], expected: str) -> None:
    assert expected in request_violations(HEADERS, {**BODY, **change})


def test_missing_headers_are_caught_and_betas_allow_their_fields() -> None:
    assert request_violations({}, BODY) == ["header anthropic-version is missing",
                                            "no API key (x-api-key or authorization)"]  # fmt: skip
    beta = {**HEADERS, "anthropic-beta": "context-management-2025-06-27"}
    system_turn = {"role": "system", "content": [{"type": "text", "text": "# Environment"}]}
    body = {**BODY, "context_management": {"edits": []},
            "messages": [*BODY["messages"], system_turn]}  # fmt: skip
    assert request_violations(beta, body) == []
