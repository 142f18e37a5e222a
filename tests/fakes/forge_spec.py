"""A forge's API description (Swagger 2 or OpenAPI 3), and the checks the fake forges run.

`ApiSpec.route` finds the operation a request is for (path template and method);
`ApiSpec.check_request` lists what the request does that the description doesn't allow:
unknown query parameters or body properties, missing required ones, wrong types or enum
values, a path parameter of the wrong type, a body where none is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote

from aiohttp import web

JSON = Any
_PARAM = re.compile(r"\{([^}]+)\}")


class Answer(Exception):
    """An error answer from a handler; `violation` also records it as a client bug."""

    def __init__(
        self, status: int, message: str, *, violation: str | None = None,
        body: JSON = None, headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.violation = status, message, violation
        self.body, self.headers = body, dict(headers or {})


@dataclass(frozen=True)
class Operation:
    id: str
    method: str  # upper case
    template: str
    params: dict[str, JSON]  # name -> {"in": "path"|"query", "required": bool, "schema": ...}
    body: JSON | None  # the JSON body's schema; None when the operation takes no body
    responses: dict[int, JSON | None]  # status -> the response body's schema, if described
    tail: bool = False  # the last path parameter takes the rest of the path (slashes too)
    patterns: tuple[re.Pattern[str], ...] = field(init=False)  # one per path segment
    names: tuple[tuple[str, ...], ...] = field(init=False)  # parameter names, likewise

    def __post_init__(self) -> None:
        segments = self.template.strip("/").split("/")
        object.__setattr__(self, "patterns", tuple(map(_segment_pattern, segments)))
        object.__setattr__(self, "names", tuple(tuple(_PARAM.findall(s)) for s in segments))

    @property
    def literals(self) -> int:
        return sum(1 for names in self.names if not names)

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        """The path parameters when `segments` (decoded) fit this template, else None."""
        count = len(self.patterns)
        if len(segments) != count and not (self.tail and len(segments) > count):
            return None
        if self.tail and len(segments) > count:
            segments = [*segments[: count - 1], "/".join(segments[count - 1 :])]
        values: dict[str, str] = {}
        for pattern, names, segment in zip(self.patterns, self.names, segments, strict=True):
            found = pattern.fullmatch(segment)
            if found is None:
                return None
            values.update(zip(names, found.groups(), strict=True))
        return values


def _segment_pattern(segment: str) -> re.Pattern[str]:
    """A template segment as a regex with one group per {parameter}."""
    parts = _PARAM.split(segment)  # literal, name, literal, name, ...
    return re.compile("".join("(.+?)" if i % 2 else re.escape(p) for i, p in enumerate(parts)))


@dataclass(frozen=True)
class ApiSpec:
    operations: tuple[Operation, ...]
    root: JSON  # the whole description, for $ref

    def route(self, method: str, segments: Sequence[str]) -> tuple[Operation, dict[str, str]]:
        """The operation for a request, and its path parameters; an Answer when none fits."""
        fits = [(op, values) for op in self.operations
                if (values := op.match(segments)) is not None]  # fmt: skip
        if not fits:
            problem = f"no such path in the API description: /{'/'.join(segments)}"
            raise Answer(404, "Not Found", violation=problem)
        best = max(op.literals for op, _ in fits)  # /pulls/{index}/files before /pulls/{a}/{b}
        fits = [(op, values) for op, values in fits if op.literals == best]
        for op, values in fits:
            if op.method == method.upper():
                return op, values
        allowed = sorted({op.method for op, _ in fits})
        problem = f"{method} is not allowed on {fits[0][0].template} (only {allowed})"
        raise Answer(405, "Method Not Allowed", violation=problem)

    def check_request(
        self, op: Operation, path_params: Mapping[str, str], query: Mapping[str, list[str]],
        body: JSON, has_body: bool,
    ) -> list[str]:  # fmt: skip
        """What the request does that the description doesn't allow; [] when all is well."""
        problems: list[str] = []
        for name, value in path_params.items():
            param = op.params.get(name)
            if param is not None:
                problems += self._check_text(param["schema"], value, f"path parameter {name!r}")
        for name, values in query.items():
            param = op.params.get(name)
            if param is None or param["in"] != "query":
                problems.append(f"unknown query parameter {name!r}")
                continue
            schema = param["schema"]
            if schema.get("type") == "array":
                schema = schema.get("items", {})
            elif len(values) > 1:
                problems.append(f"query parameter {name!r} given {len(values)} times")
            for value in values:
                problems += self._check_text(schema, value, f"query parameter {name!r}")
        problems += [f"missing required query parameter {name!r}"
                     for name, p in op.params.items()
                     if p["in"] == "query" and p["required"] and name not in query]  # fmt: skip
        if op.body is None:
            if has_body:
                problems.append(f"{op.id} takes no body")
        elif has_body:
            problems += self.check_value(op.body, body, "body")
        elif op.body.get("required"):
            problems.append(f"{op.id} needs a JSON body")
        return problems

    def check_reply(self, op: Operation, status: int, body: JSON) -> list[str]:
        """The fake's own mistakes: a reply that doesn't fit the described response."""
        if status not in op.responses:
            return [f"fake bug: {op.id} answered {status}, which is not described"]
        schema = op.responses[status]
        problems = [] if schema is None else self.check_value(schema, body, "reply")
        return [f"fake bug: {problem}" for problem in problems]

    def check_value(self, schema: JSON, value: JSON, where: str) -> list[str]:
        """What is wrong with a JSON value as an instance of `schema`."""
        schema = resolve(self.root, schema)
        options = schema.get("oneOf") or schema.get("anyOf")
        if options:
            results = [self.check_value(option, value, where) for option in options]
            return [] if any(not r for r in results) else min(results, key=len)
        kind = schema.get("type") or ("object" if "properties" in schema else None)
        if value is None:
            problem = None if schema.get("nullable") else "null is not allowed"
        elif kind is not None and not _TYPES.get(kind, lambda v: True)(value):
            problem = f"expected {kind}, got {value!r:.60}"
        elif "enum" in schema and value not in schema["enum"]:
            problem = f"{value!r:.60} is not one of {schema['enum']}"
        elif "minimum" in schema and kind == "integer" and value < schema["minimum"]:
            problem = f"{value} is below the minimum {schema['minimum']}"
        elif kind == "array":
            items = schema.get("items", {})
            checks = (self.check_value(items, v, f"{where}[{i}]") for i, v in enumerate(value))
            return [problem for problems in checks for problem in problems]
        elif kind == "object":
            return self._check_object(schema, value, where)
        else:
            problem = None
        return [] if problem is None else [f"{where}: {problem}"]

    def _check_object(self, schema: JSON, value: dict[str, JSON], where: str) -> list[str]:
        properties = schema.get("properties", {})
        problems = [f"{where}: missing required property {name!r}"
                    for name in schema.get("required", []) if name not in value]  # fmt: skip
        for name, item in value.items():
            if name in properties:
                problems += self.check_value(properties[name], item, f"{where}.{name}")
            elif properties and not schema.get("additionalProperties"):
                problems.append(f"{where}: unknown property {name!r}")
        return problems

    def _check_text(self, schema: JSON, text: str, where: str) -> list[str]:
        """A path or query value (text) against a scalar schema: parsed by its type first."""
        kind = resolve(self.root, schema).get("type")
        value: JSON = text
        if kind == "integer" and re.fullmatch(r"-?\d+", text):
            value = int(text)
        elif kind == "boolean" and text in ("true", "false"):
            value = text == "true"
        return self.check_value(schema, value, where)


_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
}


def resolve(root: JSON, node: JSON) -> JSON:
    """`node`, or what its $ref points at inside `root` ("#/definitions/X" and the like)."""
    while isinstance(node, dict) and "$ref" in node:
        target = root
        for key in node["$ref"].removeprefix("#/").split("/"):
            target = target[key]
        node = target
    return node


# --- the server half shared by FakeGitea and FakeGitHub ---


@dataclass
class Recorded:
    """One request as the fake received it, and what the fake answered."""

    method: str
    path: str  # as sent, base path included, query excluded
    query: dict[str, list[str]]
    json: JSON  # the decoded body; None without one
    headers: dict[str, str]  # every header but Authorization
    operation: str | None = None  # the description's operationId, when one matched
    status: int = 0


@dataclass
class Call:
    """A valid request, as a handler of the fake sees it."""

    recorded: Recorded
    op: Operation
    path_params: dict[str, str]
    query: dict[str, str]  # the first value of each
    body: JSON
    url: str  # the request's URL without query, for Link headers


class FakeForge:
    """An aiohttp server on 127.0.0.1 that checks each request against `spec`, then lets the
    subclass's `op_<operationId>` handler answer. Use `async with`, or `make_app()` with
    pytest-aiohttp's aiohttp_server. Violations (client bugs) collect in `violations`."""

    flavour = "forge"

    def __init__(self, spec: ApiSpec, *, token: str, owner: str, name: str, prefix: str,
                 git_remote: Path | None) -> None:  # fmt: skip
        self.spec, self.token, self.owner, self.name = spec, token, owner, name
        self.prefix = prefix.rstrip("/")  # the API's base path: "/api/v1", "/api/v3" or ""
        self.git_remote = git_remote  # a bare repository whose branches pull requests need
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._failures: list[tuple[int, float | None, bool]] = []  # status, retry_after, committed
        self._delays: list[float] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.root_url = ""  # http://127.0.0.1:<port>, once started

    # --- for tests ---

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def __aenter__(self) -> Self:
        self._closing.clear()
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.root_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # ends injected delays still sleeping
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None,
                  committed: bool = False) -> None:  # fmt: skip
        """The next `times` valid requests are answered with `status`. With `committed`,
        each takes effect first (a proxy losing the answer of a request that worked)."""
        self._failures += [(status, retry_after, committed)] * times

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        """The next `times` valid requests take effect, then wait `seconds` to answer."""
        self._delays += [seconds] * times

    def requests_for(self, operation: str) -> list[Recorded]:
        """Recorded requests of one operation (its operationId), answered or not."""
        return [r for r in self.requests if r.operation == operation]

    def assert_clean(self) -> None:
        problems = "\n".join(self.violations)
        assert not problems, f"requests the API description does not allow:\n{problems}"

    async def branch_exists(self, branch: str) -> bool:
        """Whether `git_remote` has the branch; True when the fake has no remote."""
        if self.git_remote is None:
            return True
        process = await asyncio.create_subprocess_exec(
            "git", f"--git-dir={self.git_remote}", "rev-parse", "--verify", "--quiet",
            f"refs/heads/{branch}", stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return await process.wait() == 0

    # --- hooks for the subclass ---

    def error_body(self, status: int, message: str) -> JSON:
        raise NotImplementedError

    def token_of(self, authorization: str) -> str | None:
        """The token in an Authorization header of a scheme this forge takes, else None."""
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() in ("token", "bearer") and token.strip() else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.root_url = self.root_url or f"{request.scheme}://{request.host}"  # aiohttp_server
        raw = await request.read()
        query = {name: request.query.getall(name) for name in request.query}
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        recorded = Recorded(request.method, request.path, query, None, headers)
        self.requests.append(recorded)
        try:
            call = self._validate(request, recorded, raw)
            response = await self._answer(call)
        except Answer as answer:
            if answer.violation:
                self.violations.append(f"{request.method} {request.path}: {answer.violation}")
            body = (
                self.error_body(answer.status, answer.message)
                if answer.body is None
                else answer.body
            )
            response = web.json_response(body, status=answer.status, headers=answer.headers)
        recorded.status = response.status
        return response

    def _validate(self, request: web.Request, recorded: Recorded, raw: bytes) -> Call:
        if raw:
            try:
                recorded.json = json.loads(raw)
            except ValueError:
                raise Answer(400, "Bad Request", violation="the body is not JSON") from None
            if request.content_type != "application/json":
                raise Answer(415, "send JSON", violation=f"body sent as {request.content_type!r}")
        rest = request.raw_path.split("?", 1)[0]
        if not (rest == self.prefix or rest.startswith(f"{self.prefix}/")):
            raise Answer(404, "Not Found", violation=f"not under the API base path {self.prefix!r}")
        segments = [unquote(s) for s in rest[len(self.prefix) :].strip("/").split("/")]
        op, path_params = self.spec.route(request.method, segments)
        recorded.operation = op.id
        authorization = request.headers.get("Authorization", "")
        token = self.token_of(authorization)
        if token is None:
            violation = "no Authorization header" if not authorization else "unknown auth scheme"
            raise Answer(401, "Unauthorized", violation=violation)
        if token != self.token:  # a wrong token is the user's mistake, not a client bug
            raise Answer(401, "Unauthorized")
        problems = self.spec.check_request(
            op, path_params, recorded.query, recorded.json, bool(raw)
        )
        if problems:
            raise Answer(422, "; ".join(problems), violation="; ".join(problems))
        if (path_params.get("owner"), path_params.get("repo")) != (self.owner, self.name):
            raise Answer(404, "Not Found")
        query = {name: values[0] for name, values in recorded.query.items()}
        return Call(recorded, op, path_params, query, recorded.json, f"{self.root_url}{rest}")

    async def _answer(self, call: Call) -> web.Response:
        failure = self._failures.pop(0) if self._failures else None
        if failure is not None and not failure[2]:
            raise self._failed(*failure[:2])
        handler = getattr(self, "op_" + re.sub(r"\W", "_", call.op.id), None)
        if handler is None:
            missing = f"the fake does not implement {call.op.id}"
            raise Answer(501, "Not Implemented", violation=missing)
        status, body, headers = await handler(call)
        self.violations += self.spec.check_reply(call.op, status, body)
        if failure is not None:
            raise self._failed(*failure[:2])
        if self._delays:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._delays.pop(0))
        return web.json_response(body, status=status, headers=headers)

    def _failed(self, status: int, retry_after: float | None) -> Answer:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return Answer(status, HTTPStatus(status).phrase, headers=headers)

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()
