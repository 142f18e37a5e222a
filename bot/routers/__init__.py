"""All routers, in priority order."""

from __future__ import annotations

from aiogram import Router

from bot.routers import start


def all_routers() -> list[Router]:
    return [start.router]
