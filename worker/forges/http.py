"""The HTTP half shared by the forge clients: retries, timeouts, and errors a person can read.

A request is retried after a timeout, a connection error, a 5xx or a rate limit (429, or
GitHub's 403 with Retry-After or an exhausted X-RateLimit-Remaining), with the policy's
growing delays and Retry-After honoured up to `max_delay`. 401, 403, 404, 409 and 422 are
final. A request that may have changed something on the server before its answer was lost
(a create after a read timeout or a 502) is not simply sent again: `retrying` first asks
`before_retry` whether the change is already there.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

import httpx

from worker.forges.base import ForgeError, ForgeTarget, RetryPolicy, scrub

log = logging.getLogger(__name__)

T = TypeVar("T")
JSON = Any
Params = Mapping[str, str | int]

SERVER_MESSAGE_CHARS = 300


def _phrase(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class Transient(Exception):
    """An outcome worth another try. `maybe_applied`: the server may have acted on it."""

    def __init__(
        self,
        what: str,
        status: int | None,
        *,
        maybe_applied: bool,
        retry_after: float | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(what)
        self.what = what  # "502 Bad Gateway", "timeout", or the connection error
        self.status = status
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after
        self.timed_out = timed_out


class ForgeHttp:
    """An httpx client bound to one forge API, with the retry loop and error wording."""

    def __init__(
        self,
        target: ForgeTarget,
        *,
        api_url: str,
        headers: Mapping[str, str],
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.target = target
        self.kind = target.kind.lower()
        self.retry = retry
        self.api_url = api_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.api_url,
            headers=dict(headers),
            timeout=retry.request_timeout,
            transport=transport,
            follow_redirects=True,  # httpx drops Authorization when a redirect leaves the host
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- one request ---

    async def send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: JSON = None,
        params: Params | None = None,
        accept: Collection[int] = (200,),
        not_found: str | None = None,
    ) -> httpx.Response:
        """One request. Answers with a status in `accept`; raises Transient or ForgeError."""
        try:
            response = await self._client.request(method, path, json=json, params=params)
        except httpx.TimeoutException as error:
            applied = not isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise Transient("timeout", None, maybe_applied=applied, timed_out=True) from None
        except httpx.TransportError as error:
            applied = not isinstance(error, httpx.ConnectError)
            reason = scrub(str(error) or type(error).__name__, self.target.token)
            raise Transient(reason, None, maybe_applied=applied) from None
        status = response.status_code
        if status in accept:
            return response
        limited, wait = _rate_limit(response)
        if limited:
            raise Transient(_phrase(status), status, maybe_applied=False, retry_after=wait)
        if status >= 500:
            raise Transient(_phrase(status), status, maybe_applied=True)
        raise self.error_for(response, what=what, not_found=not_found)

    def error_for(
        self, response: httpx.Response, *, what: str, not_found: str | None = None
    ) -> ForgeError:
        """The final error for an answer nobody retries: a sentence naming the repo."""
        status, repo, kind = response.status_code, self.target.full_name, self.kind
        detail = self.server_message(response)
        if status == 401:
            message = (
                f"{kind} refused the token ({_phrase(status)}): check that it is valid and can"
                f" write to {repo}"
            )
        elif status == 403:
            message = f"{kind} forbade {what} on {repo} ({_phrase(status)})" + (
                f": {detail}" if detail else ": the token lacks write access"
            )
        elif status == 404:
            message = not_found or (
                f"{repo} not found on {self.target.base_url} (404): wrong owner/name, or the"
                " token cannot see it"
            )
        else:
            message = f"{kind} rejected {what} on {repo} ({_phrase(status)})" + (
                f": {detail}" if detail else ""
            )
        return ForgeError(message, status=status, retryable=False)

    def server_message(self, response: httpx.Response) -> str:
        """What the server said about an error, on one line, without the token."""
        try:
            data = response.json()
        except ValueError:
            data = response.text
        parts: list[str] = []
        if isinstance(data, dict):
            if isinstance(data.get("message"), str):
                parts.append(data["message"])
            for item in data.get("errors") or ():
                if isinstance(item, str):
                    parts.append(item)
                elif isinstance(item, dict):
                    fields = (item.get("field"), item.get("code"))
                    parts.append(item.get("message") or " ".join(str(f) for f in fields if f))
        elif isinstance(data, str):
            parts.append(data)
        text = " ".join(scrub("; ".join(p for p in parts if p), self.target.token).split())
        return text[:SERVER_MESSAGE_CHARS]

    def json_of(self, response: httpx.Response) -> JSON:
        try:
            return response.json()
        except ValueError:
            raise ForgeError(
                f"{self.kind} answered {response.request.url.path} with something that is not"
                " JSON: is the forge address right?",
                status=response.status_code,
            ) from None

    # --- retries ---

    async def retrying(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        before_retry: Callable[[], Awaitable[T | None]] | None = None,
    ) -> T:
        """`attempt()` until it gives an answer, at most `retry.tries` times.

        When an attempt may have been applied by the server, `before_retry()` runs before
        the next one; a result other than None ends the loop with that result.
        """
        last: Transient | None = None
        for number in range(1, self.retry.tries + 1):
            if last is not None:
                delay = self.retry.delay(number - 1, last.retry_after)
                log.warning(
                    "forge request will be retried",
                    extra={
                        "forge": self.kind,
                        "forge_repo": self.target.full_name,
                        "outcome": last.what,
                        "attempt": number - 1,
                        "delay_seconds": delay,
                    },
                )
                await asyncio.sleep(delay)
                if before_retry is not None and last.maybe_applied:
                    done = await before_retry()
                    if done is not None:
                        return done
            try:
                return await attempt()
            except Transient as transient:
                last = transient
        raise self._exhausted(last)

    def _exhausted(self, last: Transient | None) -> ForgeError:
        tries, kind = self.retry.tries, self.kind
        if last is None:  # tries < 1
            return ForgeError(f"{kind}: no request was made (tries={tries})")
        if last.timed_out:
            seconds = f"{self.retry.request_timeout:g} s"
            message = f"{kind} did not answer within {seconds} ({tries} tries)"
        elif last.status is None:
            message = f"could not reach {kind} at {self.api_url}: {last.what} ({tries} tries)"
        else:
            message = f"{kind} kept failing ({last.what}) after {tries} tries"
        return ForgeError(message, status=last.status, retryable=True)

    async def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: JSON = None,
        params: Params | None = None,
        accept: Collection[int] = (200,),
        not_found: str | None = None,
    ) -> httpx.Response:
        """`send` with retries: for requests that are safe to repeat (reads, PATCH)."""

        async def attempt() -> httpx.Response:
            return await self.send(
                method,
                path,
                what=what,
                json=json,
                params=params,
                accept=accept,
                not_found=not_found,
            )

        return await self.retrying(attempt)

    async def pages(
        self, path: str, *, what: str, params: Params, size_param: str, size: int, cap: int
    ) -> list[JSON]:
        """Every item of a paginated list, following pages until the last one or `cap`."""
        items: list[JSON] = []
        page = 1
        while len(items) < cap:
            query = {**params, size_param: size, "page": page}
            response = await self.call("GET", path, what=what, params=query)
            batch = self.json_of(response)
            if not isinstance(batch, list):
                raise ForgeError(f"{self.kind} answered {what} with something that is not a list")
            items.extend(batch)
            if not batch or not _has_next(response, len(batch), size):
                return items
            page += 1
        log.warning(
            "forge list cut short",
            extra={"forge": self.kind, "forge_repo": self.target.full_name, "cap": cap},
        )
        return items[:cap]


def _has_next(response: httpx.Response, got: int, asked: int) -> bool:
    """Is there a page after this one? The Link header says; without one, a full page."""
    link = response.headers.get("link")
    if link:
        return 'rel="next"' in link
    return got >= asked


def _rate_limit(response: httpx.Response) -> tuple[bool, float | None]:
    """Is the answer a rate limit, and how many seconds it asks to wait (None: not said)."""
    status, headers = response.status_code, response.headers
    exhausted = headers.get("x-ratelimit-remaining") == "0"
    if status != 429 and not (status == 403 and (exhausted or "retry-after" in headers)):
        return False, None
    if (after := _retry_after(headers.get("retry-after"))) is not None:
        return True, after
    reset = headers.get("x-ratelimit-reset", "")
    if exhausted and reset.isdigit():
        return True, max(0.0, int(reset) - time.time())
    return True, None


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
