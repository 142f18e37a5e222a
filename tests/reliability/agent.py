"""Scripted agent of the reliability tests: argv is PROMPT LOG HOLDS; cwd is the worktree.

It appends "start KEY PID TIME CWD" to LOG, writes work-PID.txt (its change), then:
  HOLDS/kill-worker exists  SIGKILL its parent (the worker: no shell in between), as an
                            agent that exhausts memory takes its worker down with it
  HOLDS/running exists      start a child, append "PID CHILD_PID" to HOLDS/running.seen,
                            then append "alive KEY PID TIME" to LOG every 50 ms until
                            killed (or HOLDS/running is gone)
and, if still alive, appends "end KEY PID TIME" and exits 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HOLD_SECONDS = 120.0  # never forever, should the kill the test waits for not come


def main() -> int:
    log, holds = Path(sys.argv[2]), Path(sys.argv[3])
    key, pid = Path.cwd().name, os.getpid()

    def note(what: str, *more: str) -> None:
        with log.open("a") as sink:
            sink.write(" ".join([what, key, str(pid), f"{time.time():.6f}", *more]) + "\n")

    note("start", str(Path.cwd()))
    Path(f"work-{pid}.txt").write_text(f"partial work of {key}\n")
    if (holds / "kill-worker").exists():
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(HOLD_SECONDS)  # the kernel kills us too (PR_SET_PDEATHSIG)
    if (holds / "running").exists():
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with (holds / "running.seen").open("a") as seen:
            seen.write(f"{pid} {child.pid}\n")
        deadline = time.monotonic() + HOLD_SECONDS
        while (holds / "running").exists() and time.monotonic() < deadline:
            note("alive")
            time.sleep(0.05)
        child.kill()
    note("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
