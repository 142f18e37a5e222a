"""The Messages API request shape, for checking what a client (the Claude Code CLI) sends.

Follows Anthropic's API reference for `POST /v1/messages` (https://docs.anthropic.com/en/api/
messages, now platform.claude.com/docs/en/api/messages): `model`, `max_tokens` and `messages`
are required; a message is `{role, content}` with content a string or a list of typed blocks;
a custom tool has `name` and an object `input_schema`; every `tool_use` of an assistant turn
must be answered by a `tool_result` in the next user turn, and a `tool_result` must name a
`tool_use` of the turn before it. Headers: `anthropic-version` and an API key.

Beta parts the CLI enables with its `anthropic-beta` header are accepted: the top-level fields
in BETA_FIELDS, and `system` turns inside `messages` (mid-conversation system messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REQUIRED_FIELDS = ("model", "max_tokens", "messages")
DOCUMENTED_FIELDS = frozenset({
    "model", "max_tokens", "messages", "system", "tools", "tool_choice", "metadata", "stream",
    "stop_sequences", "temperature", "top_k", "top_p", "thinking", "service_tier", "container",
    "mcp_servers",
})  # fmt: skip
BETA_FIELDS = frozenset({"context_management", "output_config"})
BLOCK_TYPES = frozenset({
    "text", "image", "document", "search_result", "tool_use", "tool_result", "thinking",
    "redacted_thinking", "server_tool_use", "web_search_tool_result", "container_upload",
})  # fmt: skip
TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})


def request_violations(headers: Mapping[str, str], body: Any) -> list[str]:
    """Every way the request breaks the documented shape; empty when it is well-formed."""
    found: list[str] = []
    if "anthropic-version" not in headers:
        found.append("header anthropic-version is missing")
    if "x-api-key" not in headers and "authorization" not in headers:
        found.append("no API key (x-api-key or authorization)")
    if not isinstance(body, dict):
        return [*found, "the body is not a JSON object"]
    found += [f"{name} is missing" for name in REQUIRED_FIELDS if name not in body]
    betas = "anthropic-beta" in headers
    for name in body:
        if name not in DOCUMENTED_FIELDS and not (betas and name in BETA_FIELDS):
            found.append(f"unknown field {name!r}")
    if "model" in body and not (isinstance(body["model"], str) and body["model"]):
        found.append("model is not a non-empty string")
    max_tokens = body.get("max_tokens", 1)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        found.append(f"max_tokens is not a positive integer: {max_tokens!r}")
    if "stream" in body and not isinstance(body["stream"], bool):
        found.append("stream is not a boolean")
    found += _system_violations(body.get("system"))
    found += _messages_violations(body.get("messages", []), system_turns=betas)
    found += _tools_violations(body.get("tools", []))
    choice = body.get("tool_choice")
    if choice is not None and not (isinstance(choice, dict) and choice.get("type") in TOOL_CHOICES):
        found.append(f"tool_choice is malformed: {choice!r:.80}")
    return found


def _system_violations(system: Any) -> list[str]:
    if system is None or isinstance(system, str):
        return []
    if not isinstance(system, list):
        return ["system is neither a string nor a list of text blocks"]
    return [f"system[{i}] is not a text block" for i, block in enumerate(system)
            if not (isinstance(block, dict) and block.get("type") == "text"
                    and isinstance(block.get("text"), str))]  # fmt: skip


def _messages_violations(messages: Any, *, system_turns: bool) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return ["messages is not a non-empty list"]
    roles = {"user", "assistant", "system"} if system_turns else {"user", "assistant"}
    found: list[str] = []
    turns = [m for m in messages if isinstance(m, dict)]
    if len(turns) != len(messages):
        found.append("a message is not an object")
    for i, message in enumerate(turns):
        where = f"messages[{i}]"
        if message.get("role") not in roles:
            found.append(f"{where}.role is {message.get('role')!r}")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            found.append(f"{where}.content is neither a string nor a list")
            continue
        for j, block in enumerate(content):
            found += [f"{where}.content[{j}]: {problem}" for problem in _block_violations(block)]
    found += _pairing_violations([m for m in turns if m.get("role") != "system"])
    if turns and turns[0].get("role") == "assistant":
        found.append("the first message is the assistant's")
    return found


def _block_violations(block: Any) -> list[str]:
    if not isinstance(block, dict):
        return ["not an object"]
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        return [f"unknown block type {kind!r}"]
    checks = {
        "text": [(isinstance(block.get("text"), str), "text block without text")],
        "tool_use": [
            (isinstance(block.get("id"), str), "tool_use without id"),
            (isinstance(block.get("name"), str), "tool_use without name"),
            (isinstance(block.get("input"), dict), "tool_use input is not an object"),
        ],
        "tool_result": [
            (isinstance(block.get("tool_use_id"), str), "tool_result without tool_use_id"),
            (isinstance(block.get("content", ""), str | list),
             "tool_result content is neither a string nor a list"),
        ],
    }  # fmt: skip
    return [problem for passed, problem in checks.get(kind, []) if not passed]


def _blocks(message: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _pairing_violations(turns: list[Mapping[str, Any]]) -> list[str]:
    """tool_use ids of each assistant turn are answered, each exactly, in the next user turn."""
    found: list[str] = []
    for i, message in enumerate(turns):
        answered = {str(b.get("tool_use_id")) for b in _blocks(message, "tool_result")}
        if not answered:
            continue
        before = turns[i - 1] if i > 0 else {}
        asked = {str(b.get("id")) for b in _blocks(before, "tool_use")}
        if before.get("role") != "assistant" or not answered <= asked:
            found.append(f"tool_result for {sorted(answered - asked)} without its tool_use")
    for i, message in enumerate(turns[:-1]):
        asked = {str(b.get("id")) for b in _blocks(message, "tool_use")}
        answered = {str(b.get("tool_use_id")) for b in _blocks(turns[i + 1], "tool_result")}
        if asked - answered:
            found.append(f"tool_use {sorted(asked - answered)} is not answered by a tool_result")
    return found


def _tools_violations(tools: Any) -> list[str]:
    if not isinstance(tools, list):
        return ["tools is not a list"]
    found: list[str] = []
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            found.append(f"tools[{i}] has no name")
            continue
        name = tool["name"]
        if name in names:
            found.append(f"tool {name} is offered twice")
        names.add(name)
        if "type" in tool and tool["type"] != "custom":  # a server or client tool by version
            continue
        schema = tool.get("input_schema")
        if not (isinstance(schema, dict) and schema.get("type") == "object"):
            found.append(f"tool {name}: input_schema is not an object schema")
        if "description" in tool and not isinstance(tool["description"], str):
            found.append(f"tool {name}: description is not a string")
    return found
