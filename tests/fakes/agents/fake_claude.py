"""A stand-in for the `claude` CLI that replays recorded samples.

FAKE_CLAUDE_SAMPLE names a directory holding stdout, stderr and exit_code; several, joined
with os.pathsep, are replayed one per call (the last one repeats), counting the calls in
FAKE_CLAUDE_CALLS. FAKE_CLAUDE_RECORD, if set, receives the argv, stdin, cwd and environment
it was started with, as JSON; FAKE_CLAUDE_CALLS, if set, is a directory that receives the
same for every call, as NN.json. FAKE_CLAUDE_WRITE=NAME makes call N write NAME-N.txt into
the working directory first (a change to the repository). FAKE_CLAUDE_HANG=1 makes it print
the start of a stream and then sleep until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    call = {
        "argv": sys.argv[1:],
        "stdin": sys.stdin.read(),
        "cwd": str(Path.cwd()),
        "env": dict(os.environ),
    }
    record = os.environ.get("FAKE_CLAUDE_RECORD")
    if record:
        Path(record).write_text(json.dumps(call))
    number = 1
    calls = os.environ.get("FAKE_CLAUDE_CALLS")
    if calls:
        folder = Path(calls)
        folder.mkdir(parents=True, exist_ok=True)
        number = len(list(folder.iterdir())) + 1
        (folder / f"{number:02d}.json").write_text(json.dumps(call))
    written = os.environ.get("FAKE_CLAUDE_WRITE")
    if written:
        Path(f"{written}-{number}.txt").write_text(f"change {number}\n")
    if os.environ.get("FAKE_CLAUDE_HANG"):
        sys.stdout.write('{"type":"system","subtype":"init","session_id":"hung"}\n')
        sys.stdout.flush()
        time.sleep(300)
    samples = os.environ["FAKE_CLAUDE_SAMPLE"].split(os.pathsep)
    sample = Path(samples[min(number, len(samples)) - 1])
    sys.stdout.write((sample / "stdout").read_text())
    sys.stderr.write((sample / "stderr").read_text())
    sys.exit(int((sample / "exit_code").read_text().strip()))


if __name__ == "__main__":
    main()
