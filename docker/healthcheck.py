"""The container's healthcheck: exit 0 when the status page answers /healthz with 200 and ok.

The slim image has no curl, so this is plain Python (standard library only). It asks the web
server of this container (WEB_PORT; WEB_HOST unless that is a wildcard address), carrying
WEB_TOKEN as a bearer token when one is set: the token wall guards /healthz too.

Why the workers' heartbeat is not required: /healthz answers 200 whenever PostgreSQL answers,
and reports `workers_alive` separately. In a `devserver up` container the worker runs in the
same process as the page: when it fails, `devserver up` stops the whole process and the
restart policy brings it back, so a live page already means a live worker. And
`workers_alive` is about any worker of the database (a crashed worker's row counts for two
minutes), while a fresh container has not beaten yet; requiring it would mark
a healthy container unhealthy at start, and keep marking a web-only one unhealthy for good.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

WILDCARDS = {"", "0.0.0.0", "::", "[::]"}  # noqa: S104  # names, not a bind


def healthz_url() -> str:
    host = os.environ.get("WEB_HOST", "127.0.0.1").strip()
    if host in WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    port = os.environ.get("WEB_PORT", "8787").strip() or "8787"
    return f"http://{host}:{port}/healthz"


def check() -> str | None:
    """None when healthy, else why not (one line)."""
    request = urllib.request.Request(healthz_url())  # noqa: S310  # http to ourselves only
    token = os.environ.get("WEB_TOKEN", "").strip()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        return f"{request.full_url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{request.full_url} did not answer: {exc}"
    if not isinstance(body, dict) or body.get("ok") is not True:
        return f"{request.full_url} answered {body!r}"
    return None


def main() -> int:
    problem = check()
    if problem is not None:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
