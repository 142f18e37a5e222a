"""A stand-in for the `codex` CLI (`codex exec --json`) that replays recorded samples.

FAKE_CODEX_CASE names a case of tests/fixtures/codex/ (CASE.jsonl is stdout, CASE.stderr
and CASE.exit_code the rest, captured from codex-cli 0.169.0; see FACTS.md there); several,
joined with os.pathsep, are replayed one per call (the last one repeats), counting the
calls in FAKE_CODEX_CALLS, a directory that receives the argv, stdin, cwd and environment
of every call as NN.json. FAKE_CODEX_WRITE=NAME makes call N write NAME-N.txt into the
working directory first (a change to the repository). FAKE_CODEX_HANG=1 prints the start
of a stream and then sleeps until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "codex"


def main() -> None:
    call = {"argv": sys.argv[1:], "stdin": sys.stdin.read(), "cwd": str(Path.cwd()),
            "env": dict(os.environ)}  # fmt: skip
    number = 1
    calls = os.environ.get("FAKE_CODEX_CALLS")
    if calls:
        folder = Path(calls)
        folder.mkdir(parents=True, exist_ok=True)
        number = len(list(folder.iterdir())) + 1
        (folder / f"{number:02d}.json").write_text(json.dumps(call))
    written = os.environ.get("FAKE_CODEX_WRITE")
    if written:
        Path(f"{written}-{number}.txt").write_text(f"change {number}\n")
    if os.environ.get("FAKE_CODEX_HANG"):
        sys.stdout.write('{"type":"thread.started","thread_id":"hung-thread"}\n')
        sys.stdout.flush()
        time.sleep(300)
    cases = os.environ["FAKE_CODEX_CASE"].split(os.pathsep)
    case = cases[min(number, len(cases)) - 1]
    sys.stdout.write((SAMPLES / f"{case}.jsonl").read_text())
    sys.stderr.write((SAMPLES / f"{case}.stderr").read_text())
    sys.exit(int((SAMPLES / f"{case}.exit_code").read_text().strip()))


if __name__ == "__main__":
    main()
