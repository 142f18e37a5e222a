"""`kill -9` of a real `devserver worker` in each phase of a task, then a new worker.

Each phase is held deterministically, and the worker killed while the task is in it:
  preparing   the mirror's fetch waits at a gate (git's uploadpack, in its global config)
  running     the scripted agent holds (and has started a child of its own)
  verifying   the repo's test command is a gate
  delivering  the push of a `pr` task waits at a gate (git's receivepack)
The new worker (WORKER_HEARTBEAT_SECONDS=2) takes the stale job over; the task must end
done, with the work on its branch, after agent runs that never overlapped, and with nothing
the killed worker started still running (PR_SET_PDEATHSIG, and the sweep of the ledger the
dead worker left: worker/orphans.py).

The git processes of the killed worker (the held fetch or push) are its direct children,
not in a session of their own; they are left to finish once their gate opens.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from storage.tasks import NewTask, Task
from tests.gitrepos import git, make_repo
from tests.procs import is_gone
from tests.reliability.conftest import (
    add_repo,
    agent_command,
    assert_runs_never_overlap,
    env_for,
    gate_command,
    gated_git_config,
    services,
    start,
    status_of,
    takeovers,
    wait_file,
    wait_gone,
    wait_status,
)
from tests.worker.running import Pool
from worker.queue import submit_task

PHASES = ["preparing", "running", "verifying", "delivering"]


def _agent_lines(log: Path) -> list[tuple[str, int, float]]:
    """(what, pid, time) of each line agent.py wrote."""
    lines = [line.split() for line in log.read_text().splitlines()]
    return [(words[0], int(words[2]), float(words[3])) for words in lines]


def assert_agents_one_at_a_time(log: Path) -> None:
    """Every line an agent wrote comes before the next agent's start."""
    lines = _agent_lines(log)
    starts = [(t, pid) for what, pid, t in lines if what == "start"]
    for (_, pid), (next_start, _) in itertools.pairwise(starts):
        last = max(t for _, p, t in lines if p == pid)
        assert last < next_start, f"agent {pid} wrote at {last}, after the next began"


@pytest.mark.parametrize("phase", PHASES)
async def test_a_worker_killed_in_each_phase_leaves_nothing_lost_or_running(
    phase: str, pool: Pool, db_dsn: str, tmp_path: Path, holds: Path
) -> None:
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})
    agents = tmp_path / "agents.log"
    check = gate_command("verifying", holds) if phase == "verifying" else ""
    repo = await add_repo(pool, upstream, "demo", agent_command(agents, holds), test_command=check)
    flow = "pr" if phase == "delivering" else "patch"
    async with pool.acquire() as conn:
        task: Task = await submit_task(conn, NewTask(repo_id=repo.id, title="Hello", git_flow=flow))
    home, gitconfig = tmp_path / "home", gated_git_config(tmp_path / "gitconfig", holds)
    env = env_for(db_dsn, home, WORKER_HEARTBEAT_SECONDS="2", WORKER_CONCURRENCY="1",
                  GIT_CONFIG_GLOBAL=str(gitconfig))  # fmt: skip
    (holds / phase).touch()

    first = start("worker", env, tmp_path / "worker-1.log")
    with services(first):
        held = (await wait_file(holds / f"{phase}.seen")).split()
        assert await status_of(pool, task.key) == phase
        first.kill()
    held_pid = int(held[0])  # the held agent, check or git helper

    if phase in ("preparing", "delivering"):  # the killed worker's git finishes by itself
        (holds / phase).unlink()
        await wait_gone(held_pid, f"the {phase} gate")
    elif phase == "running":  # PR_SET_PDEATHSIG: the kernel killed the agent with the worker
        await wait_gone(held_pid, "the killed worker's agent", within=5)
    # The agent's own child; the check (the shell that ran it died with the worker).
    survivor = int(held[1]) if phase == "running" else held_pid
    if phase in ("running", "verifying"):
        assert not is_gone(survivor)  # out of the kernel's reach: the ledger's job

    second = start("worker", env, tmp_path / "worker-2.log")
    with services(second):
        if phase in ("running", "verifying"):
            await wait_gone(survivor, "what the killed worker's command started")  # swept
            (holds / phase).unlink()
        status = await wait_status(pool, task.key, "done", "failed", "blocked", within=60)
        assert status == "done", second.output()
        assert second.stop() == 0, second.output()

    [takeover] = await takeovers(pool, task.id)
    assert takeover["takeover"] is True
    assert takeover["recovery"] == 1
    assert takeover["reason"].endswith(f"while it was {phase}")
    if phase in ("running", "verifying"):
        assert "killed what a dead worker left running" in second.output()

    mirror = home / "workspaces" / "mirrors" / "demo.git"
    branch = f"agent/{task.key}"
    files = git(mirror, "ls-tree", "--name-only", branch).split()
    subjects = git(mirror, "log", "--format=%s", f"origin/main..{branch}").splitlines()
    if phase == "running":  # what the killed agent wrote was kept, on the task's branch
        assert f"work-{held_pid}.txt" in files
        assert f"WIP: partial work, {task.key}: the worker running it stopped" in subjects
    assert any(name.startswith("work-") for name in files)
    if phase == "delivering":  # the branch went out, once the new worker pushed it
        assert git(upstream, "rev-parse", branch) == git(mirror, "rev-parse", branch)

    await assert_runs_never_overlap(pool, task.id)
    assert_agents_one_at_a_time(agents)
