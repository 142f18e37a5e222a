"""Gitea and Forgejo (the same API, under /api/v1): pull requests, comments, a token check.

Written against the Gitea 1.25 swagger (shared/specs/gitea). Details the swagger doesn't
say, from Gitea's handlers: creating a pull request needs head, base and title; a second
open pull request for the same head and base is refused with 409; editing answers 201;
GET /pulls/{base}/{head} is routed as /pulls/{base}/* so a head may contain slashes, and
answers with the newest pull request for the pair whatever its state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx

from worker.forges.base import (
    MAX_PULL_REQUESTS,
    ForgeError,
    ForgeTarget,
    Published,
    PullRequest,
    RetryPolicy,
    can_push,
    pull_request_from,
)
from worker.forges.http import JSON, ForgeHttp

PAGE_SIZE = 50  # Gitea's default MAX_RESPONSE_ITEMS; a smaller server limit still pages right
COMMENT_LOOKBACK = timedelta(minutes=5)  # clock skew allowance when looking for our comment


class GiteaForge:
    def __init__(
        self,
        target: ForgeTarget,
        *,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.target = target
        self.kind = target.kind.lower()
        self.http = ForgeHttp(
            target,
            api_url=f"{target.base_url.rstrip('/')}/api/v1",
            headers={"Authorization": f"token {target.token}", "Accept": "application/json"},
            retry=retry,
            transport=transport,
        )
        self._repo = f"/repos/{quote(target.owner, safe='')}/{quote(target.name, safe='')}"

    async def aclose(self) -> None:
        await self.http.aclose()

    async def open_pull_requests(self) -> list[PullRequest]:
        items = await self.http.pages(
            f"{self._repo}/pulls",
            what="the list of pull requests",
            params={"state": "open"},
            size_param="limit",
            size=PAGE_SIZE,
            cap=MAX_PULL_REQUESTS,
        )
        return [pull_request_from(item, self.kind) for item in items]

    async def publish(self, *, head: str, base: str, title: str, body: str) -> Published:
        payload = {"head": head, "base": base, "title": title, "body": body}
        repo = self.target.full_name

        async def create() -> Published:
            response = await self.http.send(
                "POST",
                f"{self._repo}/pulls",
                json=payload,
                what=f"the pull request from {head} into {base}",
                accept=(201, 409),
                not_found=(
                    f"{self.kind} found no branch {head!r} or {base!r} in {repo} (404): was"
                    f" {head} pushed, and do {repo} and {base} exist?"
                ),
            )
            if response.status_code == 201:
                return Published(pull_request_from(self.http.json_of(response), self.kind), True)
            existing = await self._find_open(head, base)
            if existing is None:
                raise ForgeError(
                    f"{self.kind} says a pull request from {head} into {base} already exists"
                    f" in {repo} (409), but none is open",
                    status=409,
                    retryable=True,
                )
            return Published(await self._edit(existing["number"], title, body), created=False)

        async def created_meanwhile() -> Published | None:
            existing = await self._find_open(head, base)
            if existing is None:
                return None
            if existing.get("title") == title and (existing.get("body") or "") == body:
                return Published(pull_request_from(existing, self.kind), created=True)
            return Published(await self._edit(existing["number"], title, body), created=False)

        return await self.http.retrying(create, before_retry=created_meanwhile)

    async def comment(self, number: int, body: str) -> None:
        path = f"{self._repo}/issues/{number}/comments"
        since = (datetime.now(UTC) - COMMENT_LOOKBACK).strftime("%Y-%m-%dT%H:%M:%SZ")
        what = f"the comment on #{number}"
        not_found = f"#{number} not found in {self.target.full_name} (404)"

        async def post() -> bool:
            await self.http.send(
                "POST", path, json={"body": body}, what=what, accept=(201,), not_found=not_found
            )
            return True

        async def posted_meanwhile() -> bool | None:
            response = await self.http.call("GET", path, what=what, params={"since": since})
            comments = self.http.json_of(response)
            found = isinstance(comments, list) and any(
                isinstance(c, dict) and c.get("body") == body for c in comments
            )
            return True if found else None

        await self.http.retrying(post, before_retry=posted_meanwhile)

    async def check(self) -> str:
        response = await self.http.call("GET", self._repo, what="the request")
        data = self.http.json_of(response)
        return can_push(data, self.target)

    async def _find_open(self, head: str, base: str) -> JSON | None:
        """The open pull request from `head` into `base`, as JSON; None if there is none."""
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

    async def _edit(self, number: int, title: str, body: str) -> PullRequest:
        response = await self.http.call(
            "PATCH",
            f"{self._repo}/pulls/{number}",
            json={"title": title, "body": body},
            what=f"the update of pull request #{number}",
            accept=(200, 201),
        )
        return pull_request_from(self.http.json_of(response), self.kind)
