"""Scripted agent whose Nth call follows the Nth step of a script (the last step repeats).

Usage: sequence.py PROMPT PHASE SESSION SCRIPT (cwd is the worktree). SCRIPT is a JSON file:

  {"calls": DIR,          every call writes DIR/NN.json: prompt, phase, session, the
                          DEVSERVER_* environment and the time it started
   "steps": [{"write": {PATH: TEXT},   files to write first
              "sleep": SECONDS,        then take this long
              "hang": true,            or never finish: start a child, write "<pid> <child
                                       pid>" to DIR/NN.pids, sleep until killed
              "report": {...},         the last stdout line (session_id, cost_usd, num_turns)
              "exit": N}, ...]}        the exit code (default 0)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    prompt, phase, session, script_path = sys.argv[1:5]
    script = json.loads(Path(script_path).read_text())
    calls = Path(script["calls"])
    calls.mkdir(parents=True, exist_ok=True)
    number = len(list(calls.glob("*.json"))) + 1
    steps = script["steps"]
    step = steps[min(number, len(steps)) - 1]
    env = {k: v for k, v in os.environ.items() if k.startswith("DEVSERVER_")}
    record = {"prompt": prompt, "phase": phase, "session": session, "env": env,
              "started": time.time()}  # fmt: skip
    (calls / f"{number:02d}.json").write_text(json.dumps(record))
    for name, text in step.get("write", {}).items():
        Path(name).write_text(text)
    if step.get("hang"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        (calls / f"{number:02d}.pids").write_text(f"{os.getpid()} {child.pid}")
        print("working on it", flush=True)
        time.sleep(300)
    time.sleep(float(step.get("sleep", 0)))
    print(f"step {number} done")
    if "report" in step:
        print(json.dumps(step["report"]))
    return int(step.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
