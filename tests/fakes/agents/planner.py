"""Scripted agent for the plan gate: plans in the plan phase, edits files when implementing.

Usage: planner.py PROMPT PHASE SCRIPT (cwd is the worktree). SCRIPT is a JSON file:

  {"calls": DIR,                      every call writes DIR/NN-PHASE.json: prompt, phase, and
                                      the DEVSERVER_* environment (phase, turns, dollars)
   "plans": [TEXT, ...],              what the Nth plan call prints (the last one repeats)
   "plan_exit": N,                    optional: the plan calls exit N instead
   "plan_writes": {PATH: TEXT},       optional: what a plan call (wrongly) writes anyway
   "implement": [{"write": {PATH: TEXT}, "delete": [PATH]}, ...]}
                                      what the Nth implement call does (the last one repeats)

Each call ends with a report line (session, cost, turns) on stdout, as CommandBackend reads it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def _nth(items: list[Any], n: int) -> Any:
    return items[min(n, len(items) - 1)]


def main() -> int:
    prompt, phase, script_path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    script = json.loads(script_path.read_text())
    calls = Path(script["calls"])
    calls.mkdir(parents=True, exist_ok=True)
    earlier = sorted(calls.glob(f"*-{phase}.json"))
    number = len(list(calls.iterdir())) + 1
    record = {"prompt": prompt, "phase": phase, "env_phase": os.environ.get("DEVSERVER_PHASE"),
              "max_turns": os.environ.get("DEVSERVER_MAX_TURNS"),
              "max_budget_usd": os.environ.get("DEVSERVER_MAX_BUDGET_USD")}  # fmt: skip
    (calls / f"{number:02d}-{phase}.json").write_text(json.dumps(record))
    here = Path.cwd()
    if phase == "plan":
        for name, text in script.get("plan_writes", {}).items():
            (here / name).write_text(text)
        if "plan_exit" in script:
            print("the planner fell over", file=sys.stderr)
            return int(script["plan_exit"])
        print(_nth(script["plans"], len(earlier)))
    else:
        step = _nth(script["implement"], len(earlier))
        for name, text in step.get("write", {}).items():
            (here / name).parent.mkdir(parents=True, exist_ok=True)
            (here / name).write_text(text)
        for name in step.get("delete", []):
            (here / name).unlink()
        print(f"implement call {len(earlier) + 1} done")
    print(json.dumps({"session_id": f"{phase}-{number}", "cost_usd": 0.5, "num_turns": 2}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
