"""GitHub and GitHub Enterprise Server (REST API version 2022-11-28).

The target's base_url is the API address as given: https://api.github.com, or
https://<host>/api/v3 for Enterprise. A second pull request for the same head is refused
with 422 and an errors[].message "A pull request already exists for owner:branch.".
"""

from __future__ import annotations

import httpx

from worker.forges.base import ForgeError, ForgeTarget, RetryPolicy
from worker.forges.client import RestForge
from worker.forges.http import JSON, ForgeHttp

API_VERSION = "2022-11-28"
PAGE_SIZE = 100  # GitHub's largest per_page


class GitHubForge(RestForge):
    kind = "github"
    size_param = "per_page"
    page_size = PAGE_SIZE

    def __init__(
        self,
        target: ForgeTarget,
        *,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        http = ForgeHttp(
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
        super().__init__(target, http)

    async def _create(self, head: str, base: str, title: str, body: str) -> httpx.Response:
        what = f"the pull request from {head} into {base}"
        response = await self.http.send(
            "POST",
            f"{self._repo}/pulls",
            json={"title": title, "head": head, "base": base, "body": body},
            what=what,
            accept=(201, 422),
        )
        if response.status_code == 422 and "already exists" not in self.http.server_message(
            response
        ):
            raise self.http.error_for(response, what=what)
        return response

    def _no_open_duplicate(self, head: str, base: str) -> Exception:
        return ForgeError(
            f"github says a pull request for {head} already exists in {self.target.full_name}"
            f" (422), but none from {head} into {base} is open",
            status=422,
            retryable=False,
        )

    async def _find_open(self, head: str, base: str) -> JSON | None:
        """The open pull request from `head` (in this repository) into `base`, or None."""
        params = {"state": "open", "head": f"{self.target.owner}:{head}", "base": base}
        for item in await self._pages(f"{self._repo}/pulls", "the pull request lookup", params):
            if not isinstance(item, dict):
                continue
            refs = (item.get("head") or {}).get("ref"), (item.get("base") or {}).get("ref")
            if refs == (head, base):
                return item
        return None
