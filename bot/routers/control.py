"""/repos, /status, /pause and /resume."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ParseMode
from aiogram.filters import Command
from aiogram.types import Message

from bot import actions, texts
from bot.deps import BotDeps, Operator
from storage.repos import RepoRepo

HTML = ParseMode.HTML


async def cmd_repos(message: Message, deps: BotDeps) -> None:
    repos = [r for r in await RepoRepo(deps.pool).all() if r.active]
    await message.answer(texts.repo_list(repos), parse_mode=HTML)


async def cmd_status(message: Message, deps: BotDeps) -> None:
    view = await actions.overview(deps.pool)
    await message.answer(texts.status(view.counts, view.paused, view.running), parse_mode=HTML)


async def cmd_pause(message: Message, deps: BotDeps, operator: Operator) -> None:
    await actions.set_paused(deps.pool, True, operator)
    await message.answer(texts.PAUSED, parse_mode=HTML)


async def cmd_resume(message: Message, deps: BotDeps, operator: Operator) -> None:
    await actions.set_paused(deps.pool, False, operator)
    await message.answer(texts.RESUMED, parse_mode=HTML)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_repos, Command("repos"))
    router.message.register(cmd_status, Command("status"))
    router.message.register(cmd_pause, Command("pause"))
    router.message.register(cmd_resume, Command("resume"))
    return router
