"""A scripted coding agent for pipeline tests: argv is PROMPT MODE; cwd is the worktree.

Modes:
  write      create hello.txt and change README.md (a normal, successful task)
  fix        first run writes a buggy calc.py; a run whose prompt carries the failed check's
             output (it must quote "assert calc.add(2, 3) == 5") writes the fix
  commit     make a commit itself (git), then leave one more file uncommitted
  noop       change nothing
  fail       exit 3 with a message on stderr
  marker     write the name of the newest file in docs/ into seen.txt (upstream freshness)
"""

import subprocess
import sys
from pathlib import Path

BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"


def main() -> int:
    prompt, mode = sys.argv[1], sys.argv[2]
    here = Path.cwd()
    if mode == "write":
        (here / "hello.txt").write_text("hello from the agent\n")
        readme = here / "README.md"
        readme.write_text(readme.read_text() + "Edited by the agent.\n")
    elif mode == "fix":
        fixed = "assert calc.add(2, 3) == 5" in prompt and "AssertionError" in prompt
        (here / "calc.py").write_text(FIXED if fixed else BUGGY)
    elif mode == "commit":
        (here / "first.txt").write_text("committed by the agent\n")
        subprocess.run(["git", "add", "first.txt"], check=True)
        subprocess.run(["git", "-c", "user.name=Agent", "-c", "user.email=agent@example.invalid",
                        "commit", "-qm", "Agent's own commit"], check=True)  # fmt: skip
        (here / "second.txt").write_text("left for DevServer to commit\n")
    elif mode == "marker":
        newest = sorted(p.name for p in (here / "docs").iterdir())[-1]
        (here / "seen.txt").write_text(newest + "\n")
    elif mode == "fail":
        print("agent exploded", file=sys.stderr)
        return 3
    print(f"mode {mode} done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
