"""The `devserver` command: run the services, manage repos and tasks from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeAlias

import asyncpg

from devserver import logs, show
from devserver.forge_setup import (
    ForgeSetupError,
    add_forge_arguments,
    check_forge,
    forge_settings,
)
from devserver.runtime import open_database, serve
from devserver.settings import Settings
from storage.artifacts import ArtifactRepo
from storage.db import create_pool
from storage.errors import Conflict, NotFound
from storage.limits import parse_cost, parse_duration, parse_turns
from storage.repos import NewRepo, RepoRepo
from storage.task_events import TaskEventRepo
from storage.task_runs import TaskRunRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, TaskRepo
from worker.agents.registry import BACKENDS
from worker.forges.access import delivery_problem
from worker.forges.base import push_credentials
from worker.git import GitError
from worker.queue import submit_task
from worker.workspace import Workspace

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)
_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


SERVICES = ("up", "worker", "web", "bot")


class UserError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"devserver: error: {message}", file=sys.stderr)  # noqa: T201  # CLI output
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="devserver", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("up", help="run worker and web (and the bot when a token is set)")
    sub.add_parser("worker", help="run only the worker")
    sub.add_parser("web", help="run only the status page")
    sub.add_parser("bot", help="run only the Telegram bot")
    sub.add_parser("migrate", help="apply database migrations")

    repo = sub.add_parser("repo", help="manage repositories").add_subparsers(
        dest="action", required=True, parser_class=_Parser)  # fmt: skip
    add = repo.add_parser("add", help="register a repository")
    add.add_argument("name")
    add.add_argument("source", help="local path or clone URL")
    add.add_argument("--branch", help="default branch (detected when omitted)")
    for step in ("pre", "build", "test", "lint"):
        add.add_argument(f"--{step}", default="", metavar="CMD", help=f"{step} command")
    add.add_argument("--verify-timeout", type=int, default=600, metavar="SECONDS")
    add.add_argument("--agent", choices=BACKENDS, default="claude")
    add.add_argument("--agent-command", default="", metavar="TEMPLATE",
                     help="argv template for --agent command, with {prompt}")  # fmt: skip
    add.add_argument("--model")
    _fallback_arguments(add)
    add.add_argument("--max-attempts", type=int, default=3)
    add.add_argument("--key-prefix", default="", help="task key prefix (default: from name)")
    add.add_argument("--author-name", default="DevServer Agent")
    add.add_argument("--author-email", default="agent@devserver.invalid")
    _budget_arguments(add, "default budget of the repo's tasks")
    add.add_argument("--reality-threshold", type=int, metavar="0-100",
                     help="block tasks scoring below this before any agent run")  # fmt: skip
    add_forge_arguments(add)
    repo.add_parser("list", help="list repositories")

    task = sub.add_parser("task", help="manage tasks").add_subparsers(
        dest="action", required=True, parser_class=_Parser)  # fmt: skip
    tadd = task.add_parser("add", help="create and queue a task")
    tadd.add_argument("repo")
    tadd.add_argument("title")
    tadd.add_argument("--description", default="")
    tadd.add_argument("--acceptance", default="")
    tadd.add_argument("--flow", choices=("patch", "direct", "pr"), default="patch")
    _budget_arguments(tadd, "this task's budget (default: the repo's, then the global one)")
    tadd.add_argument("--priority", type=int, choices=(1, 2, 3, 4), default=3,
                      help="1 critical … 4 low")  # fmt: skip
    tadd.add_argument("--agent", choices=BACKENDS)
    tadd.add_argument("--model")
    tadd.add_argument("--skip-verify", action="store_true")
    tadd.add_argument("--later", action="store_true",
                      help="keep it in the backlog (pending) for the night cycle")  # fmt: skip
    tlist = task.add_parser("list", help="recent tasks")
    tlist.add_argument("--status", choices=[s.value for s in TaskStatus])
    tlist.add_argument("--limit", type=int, default=30)
    tshow = task.add_parser("show", help="status, runs, events and artifacts of a task")
    tshow.add_argument("key")
    tbudget = task.add_parser("budget", help="show or change a task's limits")
    tbudget.add_argument("key")
    _budget_arguments(tbudget, "new limits (the others stay)")
    tmbox = task.add_parser("mbox", help="write a task's combined.mbox (for git am)")
    tmbox.add_argument("key")
    tmbox.add_argument("-o", "--output", help="file to write (default: standard output)")
    return parser


def _argument_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except ArithmeticError:  # "NaN": Decimal reads it, then refuses to compare it
            raise argparse.ArgumentTypeError(f"not an amount of dollars: {text!r}") from None

    return convert


def _budget_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    group = parser.add_argument_group(title)
    group.add_argument("--max-cost", type=_argument_type(parse_cost), metavar="USD",
                       help="cost limit in dollars, e.g. 5 or 2.50")  # fmt: skip
    group.add_argument("--max-wall", type=_argument_type(parse_duration), metavar="TIME",
                       help="working-time limit: seconds, or 45m, 2h")  # fmt: skip
    group.add_argument("--max-turns", type=_argument_type(parse_turns), metavar="N",
                       help="agent turns over all attempts")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    serving = args.command in SERVICES
    level = settings.log_level if serving else "WARNING"  # commands print their results
    logs.configure(level, secrets=settings.secrets())
    try:
        return asyncio.run(_dispatch(args, settings))
    except UserError as exc:
        print(f"devserver: error: {exc}", file=sys.stderr)  # noqa: T201  # CLI output
        return 2
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command in SERVICES:
        names = {"up": ["worker", "web"], "worker": ["worker"], "web": ["web"], "bot": ["bot"]}
        services = names[args.command]
        if args.command == "up" and settings.bot.bot_token is not None:
            services.append("bot")
        problem = settings.bot.problem()
        if "bot" in services and problem is not None:
            raise UserError(problem)
        await serve(settings, services)
        return 0
    dsn = await open_database(settings)
    if args.command == "migrate":
        print("database is up to date")  # noqa: T201  # CLI output
        return 0
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        if args.command == "repo":
            return await (_repo_add(args, pool, settings) if args.action == "add"
                          else _repo_list(pool))  # fmt: skip
        if args.action == "add":
            return await _task_add(args, pool, settings)
        handlers = { "list": _task_list, "show": _task_show, "mbox": _task_mbox,
                    "budget": _task_budget}  # fmt: skip
        return await handlers[args.action](args, pool)
    except NotFound as exc:
        raise UserError(str(exc)) from exc
    finally:
        await pool.close()


async def _repo_add(args: argparse.Namespace, pool: Pool, settings: Settings) -> int:
    if not _REPO_NAME.match(args.name):
        raise UserError(f"invalid repo name {args.name!r}: use letters, digits, '.', '_', '-'")
    source = args.source
    if not _URL.match(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"path does not exist: {source}")
        source = str(path.resolve())
    if args.agent == "command" and not args.agent_command.strip():
        raise UserError("--agent command needs --agent-command TEMPLATE (with {prompt})")
    _check_fallback(args)
    if not 1 <= args.max_attempts <= 20:
        raise UserError("--max-attempts must be between 1 and 20")
    if args.reality_threshold is not None and not 0 <= args.reality_threshold <= 100:
        raise UserError("--reality-threshold must be between 0 and 100")
    try:
        forge = forge_settings(args, source, settings.environment)
        credentials = {} if forge.token is None else push_credentials(forge.target(), source)
        try:
            branch = args.branch or await Workspace(settings.home / "workspaces").default_branch(
                source, credentials=credentials)  # fmt: skip
        except GitError as exc:
            raise UserError(f"not a git repository (or unreachable): {args.source}") from exc
        await check_forge(forge, no_check=args.no_check)
    except ForgeSetupError as exc:
        raise UserError(str(exc)) from exc
    new = NewRepo(
        name=args.name, source=source, default_branch=branch, key_prefix=args.key_prefix.upper(),
        pre_command=args.pre, build_command=args.build, test_command=args.test,
        lint_command=args.lint, verify_timeout_seconds=args.verify_timeout,
        agent_backend=args.agent, agent_command=args.agent_command, agent_model=args.model,
        max_attempts=args.max_attempts, git_author_name=args.author_name,
        git_author_email=args.author_email, max_cost_usd=args.max_cost,
        max_wall_seconds=args.max_wall, max_turns=args.max_turns,
        reality_threshold=args.reality_threshold, forge_kind=forge.kind,
        forge_base_url=forge.base_url, forge_owner=forge.owner, forge_name=forge.name,
        forge_token_env=args.token_env, allow_binary=args.allow_binary,
        fallback_backend=args.fallback_agent, fallback_model=args.fallback_model or None,
    )  # fmt: skip
    try:
        repo = await RepoRepo(pool).add(new)
    except Conflict as exc:
        raise UserError(f"a repo named {args.name!r} (or its key prefix) exists already") from exc
    print(f"repo {repo.name} added: {repo.source} (branch {repo.default_branch}, "  # noqa: T201
          f"tasks {repo.key_prefix}-N)")  # fmt: skip
    return 0


def _fallback_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fallback-agent", choices=BACKENDS, metavar="NAME",
                        help="run an attempt the model API refused (rate limit, overload, "
                             "out of quota) again at once with this backend")  # fmt: skip
    parser.add_argument("--fallback-model", metavar="MODEL",
                        help="... and/or this model (alone: on the --agent backend)")  # fmt: skip


def _check_fallback(args: argparse.Namespace) -> None:
    """A fallback must be another backend or model than the repo's own (migration 0014)."""
    if args.fallback_agent is None and not args.fallback_model:
        return
    backend = args.fallback_agent or args.agent
    if (backend, args.fallback_model or None) == (args.agent, args.model or None):
        raise UserError("the fallback must differ from --agent/--model: another backend "
                        "(--fallback-agent) or model (--fallback-model)")  # fmt: skip
    if backend == "command" and not args.agent_command.strip():
        raise UserError("--fallback-agent command needs --agent-command TEMPLATE")


async def _repo_list(pool: Pool) -> int:
    for repo in await RepoRepo(pool).all():
        print(show.repo_line(repo))  # noqa: T201  # CLI output
    return 0


def _refuse_nul(**fields: str | None) -> None:
    """PostgreSQL text cannot hold NUL: say so, rather than fail in the INSERT. (A shell
    cannot put one in argv, but a program calling main() can.)"""
    for name, value in fields.items():
        if value is not None and "\0" in value:
            raise UserError(f"the {name} has a NUL character (\\0), which cannot be stored")


async def _task_add(args: argparse.Namespace, pool: Pool, settings: Settings) -> int:
    _refuse_nul(title=args.title, description=args.description, acceptance=args.acceptance,
                model=args.model, repo=args.repo)  # fmt: skip
    if not args.title.strip():
        raise UserError("the task title is empty")
    if len(args.title) > 500:
        raise UserError("the task title is longer than 500 characters")
    repo = await RepoRepo(pool).by_name(args.repo)
    problem = delivery_problem(repo, args.flow, settings.environment)
    if problem is not None:  # this shell's environment; the worker's may differ
        print(f"warning: {problem}, unless the worker has it", file=sys.stderr)  # noqa: T201
    new = NewTask(
        repo_id=repo.id, title=args.title.strip(), description=args.description,
        acceptance=args.acceptance, priority=args.priority, git_flow=args.flow,
        skip_verify=args.skip_verify, agent_backend=args.agent, agent_model=args.model,
        max_turns=args.max_turns, max_cost_usd=args.max_cost, max_wall_seconds=args.max_wall,
    )  # fmt: skip
    async with pool.acquire() as conn:
        task = await submit_task(conn, new, later=args.later)
    where = "added to the backlog" if args.later else "queued"
    print(f"{task.key} {where}: {task.title}")  # noqa: T201  # CLI output
    return 0


async def _task_list(args: argparse.Namespace, pool: Pool) -> int:
    status = TaskStatus(args.status) if args.status else None
    statuses = None if status is None else [status]
    for task in await TaskRepo(pool).page(statuses=statuses, limit=args.limit):
        print(show.task_line(task))  # noqa: T201  # CLI output
    return 0


async def _task_show(args: argparse.Namespace, pool: Pool) -> int:
    task = await TaskRepo(pool).by_key(args.key)
    repo = await RepoRepo(pool).by_id(task.repo_id)
    runs = await TaskRunRepo(pool).for_task(task.id)
    events = await TaskEventRepo(pool).for_task(task.id)
    artifacts = await ArtifactRepo(pool).for_task(task.id)
    print(show.task_report(task, repo, runs, events, artifacts))  # noqa: T201  # CLI output
    return 0


async def _task_budget(args: argparse.Namespace, pool: Pool) -> int:
    tasks = TaskRepo(pool)
    task = await tasks.by_key(args.key)
    if (args.max_cost, args.max_wall, args.max_turns) != (None, None, None):
        task = await tasks.set_budget(
            task.id, cost_usd=args.max_cost or task.max_cost_usd,
            wall_seconds=args.max_wall or task.max_wall_seconds,
            turns=args.max_turns or task.max_turns,
        )  # fmt: skip
    print(show.budget_lines(task))  # noqa: T201  # CLI output
    return 0


async def _task_mbox(args: argparse.Namespace, pool: Pool) -> int:
    task = await TaskRepo(pool).by_key(args.key)
    try:
        data = await ArtifactRepo(pool).content(task.id, "combined.mbox")
    except NotFound as exc:
        raise UserError(f"{task.key} has no patches (status {task.status.value})") from exc
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
    return 0
