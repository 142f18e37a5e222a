"""A stand-in for `aider --message ... --yes-always` that replays recorded samples.

FAKE_AIDER_CASE names a case of tests/fixtures/aider/ (CASE.stdout, CASE.stderr and
CASE.exit_code, captured from aider-chat 0.86.2; see FACTS.md there); several, joined with
os.pathsep, are replayed one per call (the last one repeats), counting the calls in
FAKE_AIDER_CALLS, a directory that receives the argv, cwd, environment and message of every
call as NN.json. As aider does, it appends the message to --chat-history-file and makes its
repo-map cache, .aider.tags.cache.v4/, in the working directory. FAKE_AIDER_WRITE=NAME makes
call N write NAME-N.txt there too (a change). FAKE_AIDER_HANG=1 sleeps until killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "aider"


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def main() -> None:
    argv = sys.argv[1:]
    message_file = _option(argv, "--message-file")
    message = Path(message_file).read_text() if message_file else _option(argv, "--message")
    call = {"argv": argv, "cwd": str(Path.cwd()), "env": dict(os.environ), "message": message}
    number = 1
    calls = os.environ.get("FAKE_AIDER_CALLS")
    if calls:
        folder = Path(calls)
        folder.mkdir(parents=True, exist_ok=True)
        number = len(list(folder.iterdir())) + 1
        (folder / f"{number:02d}.json").write_text(json.dumps(call))
    history = _option(argv, "--chat-history-file")
    if history:
        with Path(history).open("a") as chat:
            chat.write(f"\n# aider chat started\n\n#### {message}\n")
    Path(".aider.tags.cache.v4").mkdir(exist_ok=True)
    (Path(".aider.tags.cache.v4") / "cache.db").write_text("tags\n")
    written = os.environ.get("FAKE_AIDER_WRITE")
    if written:
        Path(f"{written}-{number}.txt").write_text(f"change {number}\n")
    if os.environ.get("FAKE_AIDER_HANG"):
        sys.stdout.write("Aider v0.86.2\n")
        sys.stdout.flush()
        time.sleep(300)
    cases = os.environ["FAKE_AIDER_CASE"].split(os.pathsep)
    case = cases[min(number, len(cases)) - 1]
    sys.stdout.write((SAMPLES / f"{case}.stdout").read_text())
    sys.stderr.write((SAMPLES / f"{case}.stderr").read_text())
    sys.exit(int((SAMPLES / f"{case}.exit_code").read_text().strip()))


if __name__ == "__main__":
    main()
