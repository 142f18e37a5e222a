"""All routers, in priority order; each call builds new ones (a router joins one dispatcher)."""

from __future__ import annotations

from aiogram import Router

from bot.routers import budget, control, errors, new, night, plans, start, tasks


def all_routers() -> list[Router]:
    return [m.make_router() for m in (errors, start, new, plans, budget, tasks, control, night)]
