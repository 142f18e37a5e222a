"""Scripted agent that never finishes: it starts a child, then both sleep until killed.

Usage: hang.py PID_FILE [--ignore-term]. PID_FILE receives "<own pid> <child pid>" once
both run. With --ignore-term both ignore SIGTERM, so only SIGKILL stops them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    pid_file = Path(sys.argv[1])
    if "--ignore-term" in sys.argv[2:]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the child across exec
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    pid_file.write_text(f"{os.getpid()} {child.pid}")
    sys.stdout.write("working on it\n")
    sys.stdout.flush()
    time.sleep(300)


if __name__ == "__main__":
    main()
