"""A gate in front of a command: hold a pipeline phase for as long as a test wants.

Usage: gate.py NAME HOLDS [-- COMMAND ARGS...]. It appends its pid to HOLDS/NAME.seen, waits
while HOLDS/NAME exists, then runs COMMAND in its place (exec, same pid), or exits 0. As a
repo's test command it holds `verifying`; as git's remote.origin.uploadpack (receivepack) in
the worker's global git config it holds the fetch of `preparing` (the push of `delivering`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HOLD_SECONDS = 120.0


def main() -> int:
    name, holds = sys.argv[1], Path(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    with (holds / f"{name}.seen").open("a") as seen:
        seen.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + HOLD_SECONDS
    while (holds / name).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if command:
        os.execvp(command[0], command)  # noqa: S606  # it becomes the command it gates
    return 0


if __name__ == "__main__":
    sys.exit(main())
