"""Telegram's parse_mode=HTML, as the real server parses it: visible text, entities, errors."""

from __future__ import annotations

import html
import re
from typing import Any

JSON = dict[str, Any]

_HTML_TOKEN = re.compile(r"""<(?:[^>"']|"[^"]*"|'[^']*')*>?|&[^;&<\s]*;?""")
_HTML_TAG = re.compile(r"<(/?)([^\s>]*)(.*?)(>?)", re.DOTALL)
_HTML_ATTR = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"']+)))?""")
_CHAR_REF = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_ENTITY_TYPES = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji",
}  # fmt: skip


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entity(tag: str, attrs: dict[str, str], start: int, end: int) -> JSON | None:
    if end == start or (tag == "a" and not attrs.get("href")):
        return None  # Telegram drops empty entities and links without a target
    entity: JSON = {"type": _ENTITY_TYPES[tag], "offset": start, "length": end - start}
    if tag == "a":
        entity["url"] = attrs["href"]
    elif tag == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    return entity


def _start_tag(name: str, rest: str, closed: str, where: str) -> dict[str, str]:
    """The attributes of a start tag that Telegram supports."""
    if name not in _ENTITY_TYPES:
        raise ValueError(f'Unsupported start tag "{name}" {where}')
    if not closed:
        raise ValueError(f"Unclosed start tag {where}")
    attrs = {
        m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
        for m in _HTML_ATTR.finditer(rest)
    }
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise ValueError(f'Tag "span" must have class "tg-spoiler" {where}')
    return attrs


def parse_html(source: str) -> tuple[str, list[JSON]]:
    """Visible text and entities (UTF-16 offsets); ValueError with Telegram's reason if bad."""
    parts: list[str] = []
    entities: list[JSON] = []
    open_tags: list[tuple[str, dict[str, str], int]] = []  # (tag, attributes, start offset)
    offset = position = 0
    for token in _HTML_TOKEN.finditer(source):
        text, where = token.group(), f"at byte offset {len(source[: token.start()].encode())}"
        visible, position = source[position : token.start()], token.end()
        tag = _HTML_TAG.fullmatch(text)  # every "<..." token: (/)(name)(rest)(>)
        if tag is None and not _CHAR_REF.fullmatch(text):
            raise ValueError(f"Unsupported HTML entity {text!r} {where}")
        parts.append(visible if tag else visible + html.unescape(text))
        offset += _utf16_len(parts[-1])
        if tag is None:
            continue
        closing, name, rest, closed = tag.group(1), tag.group(2).lower(), tag.group(3), tag.group(4)
        if not closed and not rest:
            raise ValueError(f"Unclosed {'end' if closing else 'start'} tag {where}")
        if not closing:
            open_tags.append((name, _start_tag(name, rest, closed, where), offset))
            continue
        if not open_tags:
            raise ValueError(f"Unexpected end tag {where}")
        opened, attrs, start = open_tags.pop()
        if name != opened:
            raise ValueError(
                f'Unmatched end tag {where}, expected "</{opened}>", found "</{name}>"'
            )
        if name == "code" and open_tags and open_tags[-1][0] == "pre":  # <pre><code class=…>
            open_tags[-1][1]["language"] = attrs.get("class", "").removeprefix("language-")
        elif entity := _entity(name, attrs, start, offset):
            entities.append(entity)
    parts.append(source[position:])
    if open_tags:
        raise ValueError(f'Can\'t find end tag corresponding to start tag "{open_tags[-1][0]}"')
    return "".join(parts), sorted(entities, key=lambda e: (e["offset"], -e["length"]))
