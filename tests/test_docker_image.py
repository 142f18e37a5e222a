"""docker/Dockerfile, .dockerignore and docker/healthcheck.py, without a container engine.

The image is not built here (no engine on the test machines). The Dockerfile is read
instruction by instruction: every instruction is one Docker knows, everything it copies
exists and is in the build context .dockerignore leaves, it installs every package
pyproject.toml names, and its CMD is a real `devserver` subcommand. The healthcheck script
runs for real against the status page.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import socket
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from aiohttp import web
from pydantic import SecretStr
from pytest_aiohttp import AiohttpServer

from devserver.cli import build_parser
from web.app import create_app
from web.settings import WebSettings
from worker.secrets import scan_text

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
KNOWN = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
         "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
         "HEALTHCHECK", "SHELL"}  # fmt: skip
CLAUDE_CODE = "2.1.331"  # the pinned @anthropic-ai/claude-code, as the README says


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """Docker's reading: comment lines dropped (also inside a continuation), a trailing
    backslash continues the instruction on the next line."""
    found: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"unfinished instruction at the end: {pending!r}"
    return found


def of(keyword: str) -> list[str]:
    return [i.arguments for i in instructions(DOCKERFILE.read_text()) if i.keyword == keyword]


def final_stage() -> list[Instruction]:
    every = instructions(DOCKERFILE.read_text())
    last_from = max(n for n, i in enumerate(every) if i.keyword == "FROM")
    return every[last_from:]


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (exception, pattern): `*` and `?` stay within a path element,
    `**` spans any number of them."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.removeprefix("!").strip().removeprefix("./").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rules.append((exception, re.compile(regex + r"\Z")))
    return rules


def ignored(path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last rule matching it, or
    one of its parent folders, decides."""
    candidates = [path, *(str(p) for p in PurePosixPath(path).parents if str(p) != ".")]
    excluded = False
    for exception, pattern in ignore_rules():
        if any(pattern.match(candidate) for candidate in candidates):
            excluded = not exception
    return excluded


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not --from a stage)."""
    found = []
    for arguments in of("COPY"):
        words = shlex.split(arguments)
        if any(w.startswith("--from") for w in words):
            continue
        *sources, destination = [w for w in words if not w.startswith("--")]
        found.append((sources, destination))
    return found


def test_every_instruction_is_one_docker_knows() -> None:
    found = instructions(DOCKERFILE.read_text())
    assert {i.keyword for i in found} <= KNOWN
    assert found[0].keyword in {"FROM", "ARG"}
    for image in of("FROM"):
        name = image.split()[0]
        assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+", name), name  # a tag, always
        assert not name.endswith(":latest")
    assert final_stage()[0].arguments == "python:3.11-slim-bookworm"


def test_copied_sources_exist_and_are_in_the_build_context() -> None:
    assert copies()
    for sources, _ in copies():
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source), f"{source} is left out by .dockerignore"
            for path in (ROOT / source).rglob("*.py"):
                assert not ignored(path.relative_to(ROOT).as_posix()), path


def test_every_package_pyproject_names_is_installed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {source for sources, _ in copies() for source in sources}
    assert {p.rstrip("*") for p in packages} <= copied
    assert {"pyproject.toml", project["project"]["readme"]} <= copied
    assert any("pip install" in run and "/src" in run for run in of("RUN"))


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    for path in (".env", ".env.local", ".venv/bin/python", ".git/HEAD", ".mypy_cache/x.json",
                 ".devserver/pgdata/PG_VERSION", "tests/fixtures/compose-spec.json",
                 "devserver/__pycache__/cli.cpython-311.pyc", "devserver.egg-info/PKG-INFO",
                 "docker/compose.yaml", "build/lib/devserver/cli.py"):  # fmt: skip
        assert ignored(path), path
    for path in ("pyproject.toml", "devserver/cli.py", "migrations/0001_extensions.sql",
                 "web/templates/base.html", "docker/healthcheck.py"):  # fmt: skip
        assert not ignored(path), path


def test_the_container_runs_devserver_up_as_a_user_with_data_in_a_volume() -> None:
    [cmd] = of("CMD")
    program, *arguments = json.loads(cmd)  # the exec form: devserver itself gets SIGTERM
    assert program == "devserver"
    assert build_parser().parse_args(arguments).command == "up"
    stage = final_stage()
    keywords = [i.keyword for i in stage]
    [user] = [i.arguments for i in stage if i.keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert uid not in {"root", "0"}
    assert gid not in {"root", "0"}
    assert keywords.index("USER") < keywords.index("CMD")
    env = " ".join(i.arguments for i in stage if i.keyword == "ENV")
    assert "DEVSERVER_HOME=/data" in env
    assert "WEB_HOST=0.0.0.0" in env  # reachable through the published port
    assert of("VOLUME") == ['["/data"]']
    assert of("EXPOSE") == [str(WebSettings().port)]
    installs = " ".join(i.arguments for i in stage if i.keyword == "RUN")
    assert re.search(r"apt-get install [^&]*\bgit\b", installs)  # the worker runs git


def test_claude_code_is_pinned_and_optional() -> None:
    assert f"CLAUDE_CODE_VERSION={CLAUDE_CODE}" in of("ARG")
    [npm] = [run for run in of("RUN") if "npm install" in run]
    assert '"@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"' in npm
    assert 'if [ -n "$CLAUDE_CODE_VERSION" ]' in npm  # an empty build arg leaves it out
    assert f"CLAUDE_CODE_VERSION={CLAUDE_CODE}" in (ROOT / "README.md").read_text()


def test_the_healthcheck_is_the_one_compose_runs_and_the_image_copies() -> None:
    [healthcheck] = of("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--start-period=" in options
    argv = json.loads(command)
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    assert compose["services"]["app"]["healthcheck"]["test"] == ["CMD", *argv]
    assert (["docker/healthcheck.py"], argv[1]) in copies()


def test_no_secret_in_the_image_files() -> None:
    for path in (DOCKERFILE, HEALTHCHECK, ROOT / ".dockerignore"):
        assert scan_text(path.name, path.read_text()) == [], path


async def run_healthcheck(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HEALTHCHECK), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_healthcheck_passes_on_the_real_status_page_with_its_token(
    aiohttp_server: AiohttpServer, db_dsn: str
) -> None:
    settings = WebSettings(token=SecretStr("page-token-1234"))
    server = await aiohttp_server(create_app(db_dsn, settings))
    env = {"WEB_HOST": "0.0.0.0", "WEB_PORT": str(server.port)}  # noqa: S104  # a wildcard
    assert await run_healthcheck({**env, "WEB_TOKEN": "page-token-1234"}) == (0, "")
    code, stderr = await run_healthcheck(env)  # the token wall guards /healthz too
    assert code == 1
    assert f"http://127.0.0.1:{server.port}/healthz answered 401" in stderr


async def test_healthcheck_fails_when_the_database_does_not_answer(
    aiohttp_server: AiohttpServer,
) -> None:
    async def healthz(_: web.Request) -> web.Response:  # what web/views.healthz then answers
        return web.json_response({"ok": False, "database": "unreachable"}, status=503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    server = await aiohttp_server(app)
    code, stderr = await run_healthcheck({"WEB_HOST": "127.0.0.1", "WEB_PORT": str(server.port)})
    assert code == 1
    assert "answered 503" in stderr


async def test_healthcheck_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, stderr = await run_healthcheck({"WEB_HOST": "::", "WEB_PORT": str(port)})
    assert code == 1
    assert f"http://127.0.0.1:{port}/healthz did not answer" in stderr
