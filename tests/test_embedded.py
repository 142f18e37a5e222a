"""With no DATABASE_URL, DevServer starts its own PostgreSQL and several processes share it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_processes_share_the_embedded_server_without_database_url(tmp_path: Path) -> None:
    home = tmp_path / "h"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env |= {"DEVSERVER_HOME": str(home), "WEB_PORT": str(port)}
    log = tmp_path / "web.log"
    with log.open("w") as sink:
        web = subprocess.Popen([sys.executable, "-m", "devserver", "web"], env=env,
                               stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        health = None
        for _ in range(150):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, log.read_text()
        assert health.json() == {"ok": True, "database": "ok", "worker_heartbeat_age_s": None,
                                 "workers_alive": False}  # only the web runs here  # fmt: skip
        # a second process joins the same server and sees the same database
        out = subprocess.run([sys.executable, "-m", "devserver", "migrate"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "database is up to date"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
    assert web.returncode == 0, log.read_text()
    assert (home / "pgdata" / "PG_VERSION").exists()
    assert not (home / "pgdata" / "postmaster.pid").exists()  # the last process stopped it
