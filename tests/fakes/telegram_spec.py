"""The Telegram Bot API spec (api.json): decode call parameters and check calls and objects."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.specs import spec_path

DEFAULT_SPEC = spec_path("telegram-bot-api/api.json")

_INTEGER = re.compile(r"-?\d+")


def _is_float(value: Any) -> bool:
    with contextlib.suppress(TypeError, ValueError):
        return not isinstance(value, bool) and math.isfinite(float(value))
    return False


# Scalars as they may arrive: form fields are strings, JSON values are typed.
_SCALARS: dict[str, Callable[[Any], bool]] = {
    "Integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, str) and _INTEGER.fullmatch(v) is not None)
    ),
    "Float": _is_float,
    "Boolean": lambda v: isinstance(v, bool) or v in ("true", "false"),
    "String": lambda v: isinstance(v, str),
    # The fake turns every uploaded file part into an "attach://<part>" reference.
    "InputFile": lambda v: isinstance(v, str) and v.startswith("attach://"),
}


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    types: tuple[str, ...]
    required: bool


@dataclass(frozen=True)
class Spec:
    methods: dict[str, dict[str, Field]]
    types: dict[str, dict[str, Field]]
    subtypes: dict[str, tuple[str, ...]]  # abstract types, e.g. MaybeInaccessibleMessage

    @classmethod
    def load(cls, path: Path) -> Spec:
        raw = json.loads(path.read_text(encoding="utf-8"))

        def fields(entry: Mapping[str, Any]) -> dict[str, Field]:
            return {
                f["name"]: Field(f["name"], tuple(f["types"]), f["required"])
                for f in entry.get("fields", [])
            }

        return cls(
            methods={name: fields(entry) for name, entry in raw["methods"].items()},
            types={name: fields(entry) for name, entry in raw["types"].items()},
            subtypes={
                name: tuple(entry["subtypes"])
                for name, entry in raw["types"].items()
                if "subtypes" in entry
            },
        )

    def decode(self, method: str, name: str, value: Any) -> Any:
        """A form value typed by its field: ints, bools, floats, and JSON for objects/arrays."""
        field = self.methods.get(method, {}).get(name)
        if field is None or not isinstance(value, str):
            return value
        kinds = field.types
        if "Integer" in kinds and _INTEGER.fullmatch(value):
            return int(value)
        if "Boolean" in kinds and value in ("true", "false"):
            return value == "true"
        if "Float" in kinds and _is_float(value):
            return float(value)
        if any(k.startswith("Array of ") or (k in self.types and k != "InputFile") for k in kinds):
            with contextlib.suppress(ValueError):
                return json.loads(value)
        return value

    def check_call(self, method: str, params: Mapping[str, Any]) -> list[str]:
        """Problems with a call (decoded params), each naming the parameter; [] if all is well."""
        fields = self.methods.get(method)
        if fields is None:
            return ["unknown method"]
        return self._check_fields(fields, params)

    def check_object(self, type_name: str, value: Any, path: str = "") -> list[str]:
        """Problems with a JSON value (an update, a reply) as an instance of a spec type."""
        return self._check(type_name, value, path or type_name)

    def _check_any(self, kinds: Sequence[str], value: Any, path: str) -> list[str]:
        results = [self._check(kind, value, path) for kind in kinds]
        if any(not problems for problems in results):
            return []
        return min(results, key=len)

    def _check(self, kind: str, value: Any, path: str) -> list[str]:
        if kind.startswith("Array of ") and isinstance(value, list):
            item = kind.removeprefix("Array of ")
            return [p for i, v in enumerate(value) for p in self._check(item, v, f"{path}[{i}]")]
        if kind in _SCALARS and _SCALARS[kind](value):
            return []
        if kind in self.subtypes:
            return self._check_any(self.subtypes[kind], value, path)
        if kind in self.types and kind not in _SCALARS and isinstance(value, dict):
            return self._check_fields(self.types[kind], value, path, kind)
        return [f"{path}: expected {kind}, got {value!r:.80}"]

    def _check_fields(
        self, fields: dict[str, Field], value: Mapping[str, Any], path: str = "",
        kind: str | None = None,
    ) -> list[str]:  # fmt: skip
        """A call's parameters (no kind), or an object's fields."""
        what, at = ("field", f"{path} ({kind}): ") if kind else ("parameter", "")
        problems = [f"{at}unknown {what} {name!r}" for name in value if name not in fields]
        problems += [
            f"{at}missing required {what} {f.name!r}"
            for f in fields.values()
            if f.required and f.name not in value
        ]
        for name, item in value.items():
            if name in fields:
                problems += self._check_any(fields[name].types, item, f"{path}.{name}".lstrip("."))
        return problems


@functools.cache
def load_spec() -> Spec:
    """The Bot API spec shared next to the repository (see tests/specs.py)."""
    return Spec.load(DEFAULT_SPEC)
