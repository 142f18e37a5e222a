"""Scripted agent that never finishes: it starts a child, then both sleep until killed.

Usage: hang.py PID_FILE [--ignore-term] [--write NAME] [--until FILE]. PID_FILE receives
"<own pid> <child pid>" once both run. With --ignore-term both ignore SIGTERM, so only
SIGKILL stops them. --write NAME first writes NAME into the working directory (partial work
left uncommitted). --until FILE makes it finish (exit 0) once FILE exists, instead of never.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _option(name: str) -> str | None:
    args = sys.argv[2:]
    return args[args.index(name) + 1] if name in args else None


def main() -> None:
    pid_file = Path(sys.argv[1])
    if "--ignore-term" in sys.argv[2:]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the child across exec
    written = _option("--write")
    if written is not None:
        Path(written).write_text("partial work\n")
    until = _option("--until")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    pid_file.write_text(f"{os.getpid()} {child.pid}")
    sys.stdout.write("working on it\n")
    sys.stdout.flush()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if until is not None and Path(until).exists():
            child.kill()
            return
        time.sleep(0.05)


if __name__ == "__main__":
    main()
