"""The access token wall (WEB_TOKEN): every request carries the token, or gets 401.

A request may carry it as `Authorization: Bearer <token>` (monitors, scripts), as
`?token=<token>` (a bookmark; the answer then sets a cookie, so links, downloads and the
live stream work without it), or as that cookie. Compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

COOKIE = "devserver_token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DENIED = (
    "<!doctype html><meta charset=utf-8><title>DevServer: token needed</title>"
    "<h1>Token needed</h1><p>This status page needs its access token: open it with "
    "<code>?token=…</code> once (a cookie keeps it), or send "
    "<code>Authorization: Bearer …</code>.</p>"
)


def token_wall(token: str) -> Middleware:
    expected = token.encode()

    def matches(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), expected)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        bearer = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        from_query = request.query.get("token")
        if not (matches(bearer) or matches(from_query) or matches(request.cookies.get(COOKIE))):
            raise web.HTTPUnauthorized(text=DENIED, content_type="text/html",
                                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        response = await handler(request)
        if matches(from_query) and not response.prepared:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict",
                                secure=request.secure, path="/")  # fmt: skip
        return response

    return middleware
