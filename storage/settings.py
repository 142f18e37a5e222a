"""Database settings shared by every process."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    """`DATABASE_URL` points at an external PostgreSQL (with pgvector); when it is unset,
    the embedded server under the DevServer home is used."""

    model_config = SettingsConfigDict(env_prefix="DB_", env_file=".env", extra="ignore")

    url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    pool_min: int = 1
    pool_max: int = 10
