"""`devserver` as a user runs it: separate processes, a real repo, a scripted agent.

The worker fails the first check, gets the failure back, fixes it; the mbox it leaves
applies with `git am` to a fresh clone and reproduces the agent's change.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.gitrepos import git, make_repo

AGENT = Path(__file__).resolve().parent / "fakes" / "agents" / "pipeline_agent.py"
PY = shlex.quote(sys.executable)


def _devserver(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devserver", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_worker_process_takes_a_task_to_an_applicable_mbox(db_dsn: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": db_dsn, "DEVSERVER_HOME": str(tmp_path / "home"),
           "WORKER_CONCURRENCY": "2"}  # fmt: skip
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Calc\n"})
    upstream_head = git(upstream, "rev-parse", "HEAD")
    check = f'{PY} -c "import calc; assert calc.add(2, 3) == 5"'
    agent = f"{PY} {shlex.quote(str(AGENT))} {{prompt}} fix"

    added = _devserver(env, "repo", "add", "calc", str(upstream), "--test", check,
                       "--agent", "command", "--agent-command", agent)  # fmt: skip
    assert added.returncode == 0, added.stderr
    queued = _devserver(env, "task", "add", "calc", "Add an adder",
                        "--description", "calc.add(a, b) returns the sum")  # fmt: skip
    assert queued.stdout.strip() == "CALC-1 queued: Add an adder"

    log = tmp_path / "worker.log"
    with log.open("w") as sink:
        worker = subprocess.Popen([sys.executable, "-m", "devserver", "worker"], env=env,
                                  stdout=sink, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        shown = ""
        while time.monotonic() < deadline:
            shown = _devserver(env, "task", "show", "CALC-1").stdout
            if "status:   done" in shown or "status:   failed" in shown:
                break
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    output = log.read_text()
    assert worker.returncode == 0, output
    assert "worker stopped" in output
    assert "status:   done" in shown, shown + output
    assert "verify_failed" in shown  # the first attempt failed its check …
    assert "retry_scheduled" in shown  # … and the failure went back to the agent
    assert "#2 attempt" in shown

    mbox = tmp_path / "calc.mbox"
    exported = _devserver(env, "task", "mbox", "CALC-1", "-o", str(mbox))
    assert exported.returncode == 0, exported.stderr
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(upstream), str(clone)], check=True, env=env)
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid", "am", "-q",
                    str(mbox)], cwd=clone, check=True, env=env)  # fmt: skip
    assert (clone / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert subprocess.run([sys.executable, "-c", "import calc; assert calc.add(2, 3) == 5"],
                          cwd=clone, check=False).returncode == 0  # fmt: skip
    assert git(upstream, "rev-parse", "HEAD") == upstream_head  # upstream untouched
