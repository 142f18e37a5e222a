"""What every forge client takes and returns, how to pick one, and how to push to a forge.

The token of a `ForgeTarget` reaches only the Authorization header of API requests and, for
`git push`, an http.extraHeader passed through the environment: never argv, a URL, a log
line or an error message.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

KINDS = ("gitea", "forgejo", "github")
GITHUB_API = "https://api.github.com"


@dataclass(frozen=True, slots=True)
class ForgeTarget:
    kind: str  # "gitea" | "forgejo" | "github"
    # Gitea/Forgejo: the web address, e.g. "https://git.example.com" (the client adds /api/v1).
    # GitHub: the API address as given, "https://api.github.com" or "https://ghe.host/api/v3".
    base_url: str
    owner: str
    name: str
    token: str = field(repr=False)  # never in repr, str(), logs or error messages

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True, slots=True)
class PullRequest:
    number: int
    url: str  # html_url, for people
    title: str
    head: str  # branch name
    base: str


@dataclass(frozen=True, slots=True)
class Published:
    pr: PullRequest
    created: bool  # False: an open pull request for the same head existed and was updated


class ForgeError(Exception):
    """A forge request failed. str() is one sentence for a person: it is shown in Telegram.

    `status` is the HTTP status when the forge answered; `retryable` says whether trying
    again later may help (timeouts, 5xx, rate limits), as opposed to a refused token, a
    missing repository or a rejected request.
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to ask; tests make the delays tiny."""

    tries: int = 4  # requests in all, the first one included
    first_delay: float = 1.0  # seconds before the second try
    factor: float = 2.0  # each further delay grows by this
    request_timeout: float = 30.0  # seconds for each phase of one request
    max_delay: float = 60.0  # cap for any one wait, Retry-After included

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first retry)."""
        wanted = self.first_delay * self.factor ** (retry - 1)
        if retry_after is not None:
            wanted = retry_after
        return max(0.0, min(wanted, self.max_delay))


class Forge(Protocol):
    target: ForgeTarget

    async def open_pull_requests(self) -> list[PullRequest]:
        """Every open pull request of the repository (at most MAX_PULL_REQUESTS)."""
        ...

    async def publish(self, *, head: str, base: str, title: str, body: str) -> Published:
        """Open a pull request from `head` into `base`, or update the open one's title/body."""
        ...

    async def comment(self, number: int, body: str) -> None: ...

    async def check(self) -> str:
        """A short line saying the token can push to the repository; ForgeError otherwise."""
        ...

    async def aclose(self) -> None: ...


MAX_PULL_REQUESTS = 500  # open_pull_requests stops after this many


def pull_request_from(data: Any, kind: str) -> PullRequest:
    """A PullRequest from the JSON object Gitea, Forgejo and GitHub all answer with."""
    try:
        return PullRequest(
            number=int(data["number"]),
            url=str(data["html_url"]),
            title=str(data["title"]),
            head=str(data["head"]["ref"]),
            base=str(data["base"]["ref"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ForgeError(f"{kind} answered with something that is not a pull request") from None


def can_push(repository: Any, target: ForgeTarget) -> str:
    """The check() line for a repository answer with `permissions`, or a ForgeError."""
    kind, repo = target.kind.lower(), target.full_name
    if not isinstance(repository, dict):
        raise ForgeError(f"{kind} answered with something that is not a repository")
    if repository.get("archived"):
        raise ForgeError(f"{repo} on {kind} is archived: it takes no pushes or pull requests")
    permissions = repository.get("permissions") or {}
    if not (isinstance(permissions, dict) and permissions.get("push")):
        raise ForgeError(
            f"the token can only read {repo} on {kind}: give it write access so DevServer can"
            " push branches and open pull requests"
        )
    return f"{repo} on {kind}: token can push"


def make_forge(
    target: ForgeTarget,
    *,
    retry: RetryPolicy = RetryPolicy(),  # frozen, so one shared default is safe
    transport: httpx.AsyncBaseTransport | None = None,
) -> Forge:
    """The client for `target.kind`; `transport` lets tests route requests anywhere."""
    # Imported here: the clients import this module's types.
    from worker.forges.gitea import GiteaForge  # noqa: PLC0415
    from worker.forges.github import GitHubForge  # noqa: PLC0415

    kind = target.kind.lower()
    if kind in ("gitea", "forgejo"):
        return GiteaForge(target, retry=retry, transport=transport)
    if kind == "github":
        return GitHubForge(target, retry=retry, transport=transport)
    raise ForgeError(f"unknown forge kind {target.kind!r}; known: {', '.join(KINDS)}")


def push_credentials(target: ForgeTarget, remote_url: str) -> dict[str, str]:
    """Environment for `git push` to an http(s) remote that authenticates with the token.

    The token travels as an http.extraHeader given through GIT_CONFIG_COUNT/KEY/VALUE, so it
    is in neither argv nor the URL, and the header is scoped to the remote's scheme, host and
    port. Other remotes (ssh, local paths) get {}: their own authentication applies. Merge
    the result into the push's environment; it sets GIT_CONFIG_COUNT, so don't pass other
    GIT_CONFIG_* pairs alongside.
    """
    parts = urlsplit(remote_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return {}
    if target.kind.lower() == "github":
        user, password = "x-access-token", target.token
    else:  # Gitea and Forgejo take a token as the user name with this password
        user, password = target.token, "x-oauth-basic"
    basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # IPv6 literal
        host = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{parts.scheme}://{host}/.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def parse_remote(url: str) -> tuple[str, str, str] | None:
    """Guess (web base URL, owner, name) from a clone URL; None when it names no forge repo.

    https://git.example.com/me/web.git -> ("https://git.example.com", "me", "web")
    https://h/gitea/me/web.git         -> ("https://h/gitea", "me", "web")  (a subpath install)
    git@github.com:me/web.git          -> ("https://github.com", "me", "web")
    ssh://git@host:2222/me/web.git     -> ("https://host", "me", "web")
    """
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        host = parts.netloc.rsplit("@", 1)[-1]  # drop any user:password
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 2:
            return None
        *prefix, owner, name = segments
        web = f"{parts.scheme}://{host}" + "".join(f"/{s}" for s in prefix)
        return _named(web, owner, name)
    if parts.scheme in ("ssh", "git+ssh") and parts.hostname:
        segments = [s for s in parts.path.split("/") if s]
        return _named(f"https://{parts.hostname}", *segments[-2:]) if len(segments) >= 2 else None
    scp = _SCP_LIKE.match(url)
    if scp is None or "://" in url:
        return None
    segments = [s for s in scp["path"].split("/") if s]
    return _named(f"https://{scp['host']}", *segments[-2:]) if len(segments) >= 2 else None


def _named(web: str, owner: str, name: str) -> tuple[str, str, str] | None:
    name = name.removesuffix(".git")
    return (web, owner, name) if owner and name else None


def api_base(kind: str, web_base: str) -> str:
    """The API address for a forge's web address (what ForgeTarget.base_url wants)."""
    web_base = web_base.rstrip("/")
    kind = kind.lower()
    if kind in ("gitea", "forgejo"):
        return web_base
    if kind == "github":
        host = (urlsplit(web_base).hostname or "").lower()
        return GITHUB_API if host in ("github.com", "www.github.com") else f"{web_base}/api/v3"
    raise ForgeError(f"unknown forge kind {kind!r}; known: {', '.join(KINDS)}")


def scrub(text: str, token: str) -> str:
    """`text` with the token replaced by ***, for messages that quote a server."""
    return text.replace(token, "***") if token else text
