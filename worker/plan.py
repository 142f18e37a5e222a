"""The plan an agent proposes in interactive mode: read from its text, stored on the task.

The agent is asked for one JSON object; what comes back may wrap it in prose or a ```json
fence, or offer a draft before the final one. `parse_plan` finds the last object that looks
like a plan and checks it field by field; a plan that cannot be read raises PlanError with
a one-line reason. `files_to_touch` becomes the allow-list the scope check enforces, so it
must name real repo-relative files and may not be empty.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

REQUIRED_KEYS = ("summary", "approach", "steps", "files_to_touch", "risks", "acceptance_check")
RAW_CHARS = 20_000  # of an unreadable answer, kept for the person to see
_JSON_FENCE = re.compile(r"```[ \t]*json[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_DECODER = json.JSONDecoder()


class PlanError(Exception):
    """The agent's text holds no usable plan; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Plan:
    summary: str
    approach: str
    steps: tuple[str, ...]
    files_to_touch: tuple[str, ...]  # exact repo-relative paths; the allow-list
    risks: tuple[str, ...]
    acceptance_check: str


@dataclass(frozen=True, slots=True)
class UnreadablePlan:
    """An earlier answer that could not be read, as stored on the task."""

    error: str
    raw: str


def parse_plan(text: str) -> Plan:
    """The last plan-like JSON object in `text`, checked; raises PlanError."""
    candidate = _find_candidate(text)
    return _validate(candidate)


def plan_json(plan: Plan) -> dict[str, Any]:
    """What `tasks.plan` holds for a readable plan."""
    return {
        "ok": True,
        "summary": plan.summary,
        "approach": plan.approach,
        "steps": list(plan.steps),
        "files_to_touch": list(plan.files_to_touch),
        "risks": list(plan.risks),
        "acceptance_check": plan.acceptance_check,
    }


def failed_plan_json(error: str, raw: str) -> dict[str, Any]:
    """What `tasks.plan` holds when the agent's answer could not be read."""
    line = " ".join(error.split())
    return {"ok": False, "error": line, "raw": raw[-RAW_CHARS:]}


def plan_from_json(stored: dict[str, Any] | None) -> Plan | None:
    """The Plan of a stored readable plan; None for none, an unreadable one, or a bad row."""
    if not stored or stored.get("ok") is not True:
        return None
    try:
        return _validate(stored)
    except PlanError:
        return None


def previous_from_json(stored: dict[str, Any] | None) -> Plan | UnreadablePlan | None:
    """What the last round produced, for the next round's prompt."""
    if not stored:
        return None
    plan = plan_from_json(stored)
    if plan is not None:
        return plan
    return UnreadablePlan(str(stored.get("error", "unreadable")), str(stored.get("raw", "")))


def render_markdown(plan: Plan) -> str:
    """plan.md: the plan as a person reads it."""
    lines = ["# Plan", "", plan.summary, ""]
    if plan.approach:
        lines += ["## Approach", "", plan.approach, ""]
    lines += ["## Steps", ""]
    lines += [f"{n}. {step}" for n, step in enumerate(plan.steps, 1)]
    lines += ["", "## Files to touch", ""]
    lines += [f"- `{path}`" for path in plan.files_to_touch]
    if plan.risks:
        lines += ["", "## Risks", ""]
        lines += [f"- {risk}" for risk in plan.risks]
    if plan.acceptance_check:
        lines += ["", "## Acceptance check", "", plan.acceptance_check]
    return "\n".join(lines) + "\n"


def render_unreadable_markdown(error: str, raw: str) -> str:
    """plan.md for an answer that was not a plan: the reason on top, then the text."""
    return (
        f"# Plan could not be read\n\n{' '.join(error.split())}\n\n"
        f"## The agent wrote\n\n````text\n{raw[-RAW_CHARS:]}\n````\n"
    )


def _find_candidate(text: str) -> dict[str, Any]:
    objects, furthest_error = _json_objects(text)
    plans = [o for o in (_plan_like(obj) for obj in objects) if o is not None]
    complete = [o for o in plans if all(key in o for key in REQUIRED_KEYS)]
    if complete:
        return complete[-1]
    if plans:
        return plans[-1]  # validation names the missing fields
    fence = _JSON_FENCE.search(text)
    if fence is not None:
        try:
            json.loads(fence.group(1))
        except ValueError as exc:
            raise PlanError(f"the ```json block is not valid JSON: {exc}") from None
    if furthest_error is not None:
        raise PlanError(f"no valid JSON object with the plan's fields: {furthest_error}")
    if not text.strip():
        raise PlanError("the agent's answer was empty")
    raise PlanError("no JSON object found in the agent's answer")


def _json_objects(text: str) -> tuple[list[Any], str | None]:
    """Every top-level JSON object in `text`, in order, and the error of the broken one
    that got furthest (most likely the plan itself, when none parses)."""
    found: list[Any] = []
    furthest: tuple[int, str] | None = None
    position = text.find("{")
    while position != -1:
        try:
            value, end = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            reach = exc.pos - position
            if furthest is None or reach > furthest[0]:
                furthest = (reach, f"{exc.msg} at line {exc.lineno} column {exc.colno}")
            position = text.find("{", position + 1)
            continue
        found.append(value)
        position = text.find("{", end)
    return found, None if furthest is None else furthest[1]


def _plan_like(value: Any) -> dict[str, Any] | None:
    """The object itself if it has any plan field, else a plan-like object one level down
    (`{"plan": {...}}`)."""
    if not isinstance(value, dict):
        return None
    if any(key in value for key in REQUIRED_KEYS):
        return value
    for inner in value.values():
        if isinstance(inner, dict) and any(key in inner for key in REQUIRED_KEYS):
            return inner
    return None


def _validate(raw: dict[str, Any]) -> Plan:
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise PlanError(f"missing field(s): {', '.join(missing)}")
    summary = _text(raw, "summary", required=True)
    steps = _texts(raw, "steps")
    if not steps:
        raise PlanError("steps is empty: the plan needs at least one step")
    return Plan(
        summary=summary,
        approach=_text(raw, "approach"),
        steps=steps,
        files_to_touch=_files(raw["files_to_touch"]),
        risks=_texts(raw, "risks"),
        acceptance_check=_text(raw, "acceptance_check"),
    )


def _text(raw: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = raw[key]
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise PlanError(f"{key} must be a string, not {_type_name(value)}")
    if required and not value.strip():
        raise PlanError(f"{key} is empty")
    return value.strip()


def _texts(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw[key]
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PlanError(f"{key} must be a list of strings, not {_type_name(value)}")
    items: list[str] = []
    for n, item in enumerate(value):
        if not isinstance(item, str):
            raise PlanError(f"{key}[{n}] must be a string, not {_type_name(item)}")
        if item.strip():
            items.append(item.strip())
    return tuple(items)


def _files(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PlanError(f"files_to_touch must be a list of paths, not {_type_name(value)}")
    paths: list[str] = []
    for n, item in enumerate(value):
        if not isinstance(item, str):
            raise PlanError(f"files_to_touch[{n}] must be a string, not {_type_name(item)}")
        path = normalise_path(item)
        problem = _path_problem(path)
        if problem:
            raise PlanError(f"files_to_touch[{n}] {item.strip()!r} {problem}")
        if path not in paths:
            paths.append(path)
    if not paths:
        raise PlanError("files_to_touch is empty: nothing could be approved")
    return tuple(paths)


def normalise_path(path: str) -> str:
    """Strip blanks and any leading "./"; the form git prints paths in."""
    path = path.strip()
    while path.startswith("./"):
        path = path[2:].lstrip("/")
    return path


def _path_problem(path: str) -> str:
    if not path:
        return "is empty"
    if path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        return "is absolute; list paths relative to the repository root"
    if path.endswith("/"):
        return "is a directory; list each file"
    if any(part in ("..", ".") for part in path.split("/")):
        return "has a '.' or '..' segment"
    if "//" in path or "\\" in path or "\n" in path:
        return "is not a plain relative path"
    return ""


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)
