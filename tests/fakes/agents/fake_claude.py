"""A stand-in for the `claude` CLI that replays one recorded sample.

FAKE_CLAUDE_SAMPLE names a directory holding stdout, stderr and exit_code. FAKE_CLAUDE_RECORD,
if set, receives the argv, stdin, cwd and environment it was started with, as JSON.
FAKE_CLAUDE_HANG=1 makes it print the start of a stream and then sleep until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    record = os.environ.get("FAKE_CLAUDE_RECORD")
    if record:
        call = {
            "argv": sys.argv[1:],
            "stdin": sys.stdin.read(),
            "cwd": str(Path.cwd()),
            "env": dict(os.environ),
        }
        Path(record).write_text(json.dumps(call))
    if os.environ.get("FAKE_CLAUDE_HANG"):
        sys.stdout.write('{"type":"system","subtype":"init","session_id":"hung"}\n')
        sys.stdout.flush()
        time.sleep(300)
    sample = Path(os.environ["FAKE_CLAUDE_SAMPLE"])
    sys.stdout.write((sample / "stdout").read_text())
    sys.stderr.write((sample / "stderr").read_text())
    sys.exit(int((sample / "exit_code").read_text().strip()))


if __name__ == "__main__":
    main()
