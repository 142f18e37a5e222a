"""Scripted agent: does a small, predictable job in the worktree.

Usage: scripted.py WORKDIR PROMPT [SESSION]. It writes PROMPT verbatim to prompt.txt, its
environment to env.json and a file hello.txt, then reports on its last stdout line as JSON.
FAKE_AGENT_EXIT=N makes it fail with exit code N; FAKE_AGENT_NO_REPORT=1 omits the report.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> None:
    workdir = Path(sys.argv[1])
    prompt = sys.argv[2]
    session = sys.argv[3] if len(sys.argv) > 3 else ""
    (workdir / "prompt.txt").write_text(prompt)
    (workdir / "env.json").write_text(json.dumps(dict(os.environ)))
    (workdir / "hello.txt").write_text("hello from the scripted agent\n")
    sys.stdout.write("wrote hello.txt\n")
    exit_code = int(os.environ.get("FAKE_AGENT_EXIT", "0"))
    if exit_code:
        sys.stderr.write("boom: the scripted agent failed\n")
        sys.exit(exit_code)
    if not os.environ.get("FAKE_AGENT_NO_REPORT"):
        report = {"session_id": f"{session or 'scripted'}-next", "cost_usd": 0.25, "num_turns": 2}
        sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
