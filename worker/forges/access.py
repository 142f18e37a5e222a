"""A repo's forge as the worker reaches it: which API, and which token from its environment.

Tokens live in the worker's environment only (GITEA_TOKEN, FORGEJO_TOKEN, GITHUB_TOKEN, or
the variable a repo names), never in the database, and never in an agent's environment
(worker/agents/environment.py copies an allow-list that has none of them).
"""

from __future__ import annotations

from collections.abc import Mapping

from storage.repos import Repo
from worker.forges.base import ForgeTarget, api_base, push_credentials

DEFAULT_TOKEN_ENV = {"gitea": "GITEA_TOKEN", "forgejo": "FORGEJO_TOKEN", "github": "GITHUB_TOKEN"}
API_FORGES = frozenset(DEFAULT_TOKEN_ENV)


class MissingToken(Exception):
    """The repo's forge needs a token the worker's environment does not have."""


def token_variable(repo: Repo) -> str | None:
    """The environment variable holding the repo's forge token; None for a local repo."""
    if repo.forge_kind not in API_FORGES:
        return None
    return repo.forge_token_env or DEFAULT_TOKEN_ENV[repo.forge_kind]


def target_of(repo: Repo, environ: Mapping[str, str]) -> ForgeTarget | None:
    """The forge API to open PRs on; None for a `local` repo (its branch is the PR)."""
    variable = token_variable(repo)
    if variable is None:
        return None
    token = environ.get(variable, "").strip()
    if not token:
        raise MissingToken(f"{repo.name}'s forge ({repo.forge_kind}) needs a token: set "
                           f"{variable} in the worker's environment")  # fmt: skip
    if not (repo.forge_base_url and repo.forge_owner and repo.forge_name):
        raise MissingToken(f"{repo.name} has no forge address (base URL, owner, name)")
    return ForgeTarget(kind=repo.forge_kind, owner=repo.forge_owner, name=repo.forge_name,
                       base_url=api_base(repo.forge_kind, repo.forge_base_url),
                       token=token)  # fmt: skip


def git_credentials(repo: Repo, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment for git to fetch from and push to the repo's source with its forge token;
    empty when git's own setup applies (a local repo, ssh remotes, no token set)."""
    try:
        target = target_of(repo, environ)
    except MissingToken:
        return {}
    return {} if target is None else push_credentials(target, repo.source)


def delivery_problem(repo: Repo, flow: str, environ: Mapping[str, str]) -> str | None:
    """Why a task of this flow could not be delivered, known before any work is spent."""
    if flow == "patch":
        return None
    try:
        target_of(repo, environ)
    except MissingToken as exc:
        return f"flow {flow!r} cannot be delivered: {exc}"
    return None
