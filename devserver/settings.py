"""All settings of one DevServer installation, composed from each package's own section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.settings import BotSettings
from storage.settings import DatabaseSettings
from web.settings import WebSettings
from worker.settings import ClaudeSettings, WorkerSettings


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
        self.web = WebSettings()
        self.bot = BotSettings()
