"""All settings of one DevServer installation, composed from each package's own section."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.settings import BotSettings
from storage.settings import DatabaseSettings
from web.settings import WebSettings
from worker.embedder import EmbedderSettings
from worker.settings import AiderSettings, ClaudeSettings, CodexSettings, WorkerSettings


class HomeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEVSERVER_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".devserver")
    log_level: str = "INFO"


class Settings:
    """Built once per process by the entry point, then passed down."""

    def __init__(self) -> None:
        home = HomeSettings()
        self.home = home.home.expanduser().resolve()
        self.log_level = home.log_level
        self.db = DatabaseSettings()
        self.worker = WorkerSettings()
        self.claude = ClaudeSettings()
        self.codex = CodexSettings()
        self.aider = AiderSettings()
        self.memory = EmbedderSettings()
        self.web = WebSettings()
        self.bot = BotSettings()
        # Forge tokens are named per repo (GITEA_TOKEN, …): read from the environment, or
        # from .env like every other setting (the environment wins).
        dotenv = {k: v for k, v in dotenv_values(".env").items() if v is not None}
        self.environment: dict[str, str] = {**dotenv, **os.environ}

    def secrets(self) -> list[str]:
        """Values that must never appear in a log line."""
        values = [self.bot.bot_token, self.claude.api_key, self.web.token,
                  self.memory.embeddings_api_key, self.codex.api_key]  # fmt: skip
        found = [v.get_secret_value() for v in values if v is not None]
        found += list(self.aider.api_key_map().values())  # and the list itself, whole:
        if self.aider.api_keys is not None:
            found.append(self.aider.api_keys.get_secret_value())
        # Forge tokens (GITEA_TOKEN, or the variable a repo names: always *_TOKEN).
        found += [value for name, value in self.environment.items()
                  if name.endswith("_TOKEN") and len(value.strip()) >= 8]  # fmt: skip
        if self.db.url is not None and (
            password := urlsplit(self.db.url.get_secret_value()).password
        ):
            found.append(password)  # the DSN itself helps to read errors; its password not
        return list(dict.fromkeys(found))
