"""All routers, in priority order; each call builds new ones (a router joins one dispatcher)."""

from __future__ import annotations

from aiogram import Router

from bot.routers import (
    budget,
    control,
    errors,
    ideas,
    new,
    night,
    patches,
    plans,
    start,
    tasks,
)


def all_routers() -> list[Router]:
    # ideas before tasks: a plain /cancel while naming a folder ends that prompt
    routers = (errors, start, new, ideas, plans, budget, tasks, control, night, patches)
    return [m.make_router() for m in routers]
