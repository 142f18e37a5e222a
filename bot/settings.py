"""Telegram bot settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return [int(item) for item in value.replace(" ", ",").split(",") if item.strip()]
    return value


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELEGRAM_", env_file=".env", extra="ignore")

    bot_token: SecretStr | None = None
    allowed_users: Annotated[frozenset[int], NoDecode] = Field(default_factory=frozenset)
    # When set, the bot also answers only in these chats (groups, or private chats by user id).
    allowed_chats: Annotated[frozenset[int], NoDecode] = Field(default_factory=frozenset)
    api_base_url: str | None = None  # a local Bot API server, or the fake one in tests
    # Where the status page is reachable from a phone, for links (e.g. too-large patches).
    status_page_url: str | None = None
    # Seconds between two messages to one chat (Telegram allows about 1/s; groups 20/min).
    private_chat_interval: float = Field(default=1.0, ge=0)
    group_chat_interval: float = Field(default=3.0, ge=0)
    # The timezone of times people type (/night until 06:30): an IANA name such as
    # Europe/Berlin; unset, the server's own.
    timezone: str | None = None

    _split = field_validator("allowed_users", "allowed_chats", mode="before")(_split_ids)

    def problem(self) -> str | None:
        """Why the bot cannot start, or None. It fails closed: no allow-list, no bot."""
        if self.bot_token is None:
            return "TELEGRAM_BOT_TOKEN is not set (see .env.example)"
        if not self.allowed_users:
            return "TELEGRAM_ALLOWED_USERS is empty: the bot would answer nobody"
        return None
