"""What the Gitea and GitHub clients do alike: list, publish and comment, each safe to retry.

A create or a comment whose answer was lost (a timeout, a 5xx after the forge acted) is
looked up before it is sent again, so a retry never makes a second pull request or comment.
A client says how its forge pages, finds the open pull request of a branch, reads recent
comments and refuses a duplicate create.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from worker.forges.base import (
    MAX_PULL_REQUESTS,
    ForgeTarget,
    Published,
    PullRequest,
    can_push,
    pull_request_from,
)
from worker.forges.http import JSON, ForgeHttp

COMMENT_LOOKBACK = timedelta(minutes=5)  # clock skew allowance when looking for our comment


class RestForge:
    kind: str
    size_param: str  # the page-size query parameter
    page_size: int

    def __init__(self, target: ForgeTarget, http: ForgeHttp) -> None:
        self.target = target
        self.http = http
        self._repo = f"/repos/{quote(target.owner, safe='')}/{quote(target.name, safe='')}"

    async def aclose(self) -> None:
        await self.http.aclose()

    async def open_pull_requests(self) -> list[PullRequest]:
        items = await self._pages(f"{self._repo}/pulls", "the list of pull requests",
                                  {"state": "open"})  # fmt: skip
        return [pull_request_from(item, self.kind) for item in items]

    async def publish(self, *, head: str, base: str, title: str, body: str) -> Published:
        async def create() -> Published:
            response = await self._create(head, base, title, body)
            if response.status_code == 201:
                return Published(pull_request_from(self.http.json_of(response), self.kind), True)
            existing = await self._find_open(head, base)  # a duplicate: update that one
            if existing is None:
                raise self._no_open_duplicate(head, base)
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
            comments = await self._comments_since(path, what, since)
            found = any(isinstance(c, dict) and c.get("body") == body for c in comments)
            return True if found else None

        await self.http.retrying(post, before_retry=posted_meanwhile)

    async def check(self) -> str:
        response = await self.http.call("GET", self._repo, what="the request")
        return can_push(self.http.json_of(response), self.target)

    async def _pages(self, path: str, what: str, params: dict[str, Any]) -> list[JSON]:
        return await self.http.pages(path, what=what, params=params, size_param=self.size_param,
                                     size=self.page_size, cap=MAX_PULL_REQUESTS)  # fmt: skip

    async def _comments_since(self, path: str, what: str, since: str) -> list[JSON]:
        return await self._pages(path, what, {"since": since})

    async def _edit(self, number: int, title: str, body: str) -> PullRequest:
        response = await self.http.call(
            "PATCH",
            f"{self._repo}/pulls/{number}",
            json={"title": title, "body": body},
            what=f"the update of pull request #{number}",
            accept=(200, 201),  # GitHub 200, Gitea 201
        )
        return pull_request_from(self.http.json_of(response), self.kind)

    async def _create(self, head: str, base: str, title: str, body: str) -> httpx.Response:
        """POST the pull request: 201, or the forge's answer to a duplicate."""
        raise NotImplementedError

    def _no_open_duplicate(self, head: str, base: str) -> Exception:
        """The forge refused a duplicate, yet no open pull request is found."""
        raise NotImplementedError

    async def _find_open(self, head: str, base: str) -> JSON | None:
        """The open pull request from `head` into `base`, as JSON; None if there is none."""
        raise NotImplementedError
