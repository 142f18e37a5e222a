"""Gitea and Forgejo (the same API, under /api/v1): pull requests, comments, a token check.

Written against the Gitea 1.25 swagger (shared/specs/gitea). Details the swagger doesn't
say, from Gitea's handlers: creating a pull request needs head, base and title; a second
open pull request for the same head and base is refused with 409; editing answers 201;
GET /pulls/{base}/{head} is routed as /pulls/{base}/* so a head may contain slashes, and
answers with the newest pull request for the pair whatever its state.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from worker.forges.base import ForgeError, ForgeTarget, RetryPolicy
from worker.forges.client import RestForge
from worker.forges.http import JSON, ForgeHttp

PAGE_SIZE = 50  # Gitea's default MAX_RESPONSE_ITEMS; a smaller server limit still pages right


class GiteaForge(RestForge):
    size_param = "limit"
    page_size = PAGE_SIZE

    def __init__(
        self,
        target: ForgeTarget,
        *,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.kind = target.kind.lower()
        http = ForgeHttp(
            target,
            api_url=f"{target.base_url.rstrip('/')}/api/v1",
            headers={"Authorization": f"token {target.token}", "Accept": "application/json"},
            retry=retry,
            transport=transport,
        )
        super().__init__(target, http)

    async def _create(self, head: str, base: str, title: str, body: str) -> httpx.Response:
        repo = self.target.full_name
        return await self.http.send(
            "POST",
            f"{self._repo}/pulls",
            json={"head": head, "base": base, "title": title, "body": body},
            what=f"the pull request from {head} into {base}",
            accept=(201, 409),
            not_found=(
                f"{self.kind} found no branch {head!r} or {base!r} in {repo} (404): was"
                f" {head} pushed, and do {repo} and {base} exist?"
            ),
        )

    def _no_open_duplicate(self, head: str, base: str) -> Exception:
        return ForgeError(
            f"{self.kind} says a pull request from {head} into {base} already exists"
            f" in {self.target.full_name} (409), but none is open",
            status=409,
            retryable=True,
        )

    async def _comments_since(self, path: str, what: str, since: str) -> list[JSON]:
        # Gitea's issueGetComments has no paging parameters: one call answers all of them.
        response = await self.http.call("GET", path, what=what, params={"since": since})
        comments = self.http.json_of(response)
        return comments if isinstance(comments, list) else []

    async def _find_open(self, head: str, base: str) -> JSON | None:
        path = f"{self._repo}/pulls/{quote(base, safe='')}/{quote(head, safe='/')}"
        response = await self.http.call(
            "GET", path, what="the pull request lookup", accept=(200, 404)
        )
        if response.status_code == 404:
            return None
        data = self.http.json_of(response)
        if not isinstance(data, dict) or data.get("state") != "open":
            return None
        return data
