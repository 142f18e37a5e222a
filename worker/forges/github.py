"""GitHub and GitHub Enterprise Server (REST API version 2022-11-28).

The target's base_url is the API address as given: https://api.github.com, or
https://<host>/api/v3 for Enterprise. A second pull request for the same head is refused
with 422 and an errors[].message "A pull request already exists for owner:branch.".
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

API_VERSION = "2022-11-28"
PAGE_SIZE = 100  # GitHub's largest per_page
COMMENT_LOOKBACK = timedelta(minutes=5)


class GitHubForge:
    def __init__(
        self,
        target: ForgeTarget,
        *,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.target = target
        self.kind = "github"
        self.http = ForgeHttp(
            target,
            api_url=target.base_url,
            headers={
                "Authorization": f"Bearer {target.token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
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
            size_param="per_page",
            size=PAGE_SIZE,
            cap=MAX_PULL_REQUESTS,
        )
        return [pull_request_from(item, self.kind) for item in items]

    async def publish(self, *, head: str, base: str, title: str, body: str) -> Published:
        payload = {"title": title, "head": head, "base": base, "body": body}
        repo = self.target.full_name

        async def create() -> Published:
            response = await self.http.send(
                "POST",
                f"{self._repo}/pulls",
                json=payload,
                what=f"the pull request from {head} into {base}",
                accept=(201, 422),
            )
            if response.status_code == 201:
                return Published(pull_request_from(self.http.json_of(response), self.kind), True)
            if "already exists" not in self.http.server_message(response):
                raise self.http.error_for(
                    response, what=f"the pull request from {head} into {base}"
                )
            existing = await self._find_open(head, base)
            if existing is None:
                raise ForgeError(
                    f"github says a pull request for {head} already exists in {repo} (422),"
                    f" but none from {head} into {base} is open",
                    status=422,
                    retryable=False,
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
            comments = await self.http.pages(
                path,
                what=what,
                params={"since": since},
                size_param="per_page",
                size=PAGE_SIZE,
                cap=MAX_PULL_REQUESTS,
            )
            found = any(isinstance(c, dict) and c.get("body") == body for c in comments)
            return True if found else None

        await self.http.retrying(post, before_retry=posted_meanwhile)

    async def check(self) -> str:
        response = await self.http.call("GET", self._repo, what="the request")
        return can_push(self.http.json_of(response), self.target)

    async def _find_open(self, head: str, base: str) -> JSON | None:
        """The open pull request from `head` (in this repository) into `base`, or None."""
        params = {"state": "open", "head": f"{self.target.owner}:{head}", "base": base}
        items = await self.http.pages(
            f"{self._repo}/pulls",
            what="the pull request lookup",
            params=params,
            size_param="per_page",
            size=PAGE_SIZE,
            cap=MAX_PULL_REQUESTS,
        )
        for item in items:
            if not isinstance(item, dict):
                continue
            refs = (item.get("head") or {}).get("ref"), (item.get("base") or {}).get("ref")
            if refs == (head, base):
                return item
        return None

    async def _edit(self, number: int, title: str, body: str) -> PullRequest:
        response = await self.http.call(
            "PATCH",
            f"{self._repo}/pulls/{number}",
            json={"title": title, "body": body},
            what=f"the update of pull request #{number}",
        )
        return pull_request_from(self.http.json_of(response), self.kind)
