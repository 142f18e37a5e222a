"""What the bot's handlers need, built once by the app and passed as `deps`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

from bot.settings import BotSettings

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


@dataclass(frozen=True, slots=True)
class Operator:
    """The allow-listed person behind an update; recorded with every change they make."""

    user_id: int
    name: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.user_id})"


@dataclass(frozen=True, slots=True)
class BotDeps:
    pool: Pool
    settings: BotSettings
