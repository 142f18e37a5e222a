"""The `pr` flow against fake forges on 127.0.0.1 (checked against their specs), with a
local bare repository as the forge's git remote; and no secret anywhere after a full run."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from storage.artifacts import ArtifactRepo
from storage.task_events import EventKind, TaskEventRepo
from storage.task_status import TaskStatus
from storage.tasks import TaskRepo
from tests.fakes.gitea import FakeForgejo, FakeGitea
from tests.fakes.github import FakeGitHub
from tests.gitrepos import git
from tests.worker.delivery import Pool, add_repo, agent, bare_upstream, submit
from worker import jobs
from worker.deps import WorkerDeps

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw9"  # noqa: S105  # test values
ANTHROPIC_KEY = "sk-ant-api03-testkey-never-to-be-seen-0123456789abcdefABCDEF"
WRITE = 'pathlib.Path("hello.txt").write_text("hello\\n")\n'


def _forge_repo(fake: FakeGitea | FakeGitHub) -> dict[str, str]:
    return {"forge_kind": fake.flavour, "forge_base_url": fake.root_url,
            "forge_owner": fake.owner, "forge_name": fake.name}  # fmt: skip


@pytest.mark.parametrize("fake_type", [FakeGitea, FakeForgejo])
async def test_pr_flow_opens_a_pull_request_on_gitea_and_forgejo(
    pool: Pool, deps: WorkerDeps, tmp_path: Path, fake_type: type[FakeGitea]
) -> None:
    bare = bare_upstream(tmp_path)
    async with fake_type(git_remote=bare) as forge:
        env = {"GITEA_TOKEN": forge.token, "FORGEJO_TOKEN": forge.token}
        deps = dataclasses.replace(deps, forge_env=env)
        repo = await add_repo(pool, bare, agent(tmp_path, WRITE), test_command="test -f hello.txt",
                              **_forge_repo(forge))  # fmt: skip
        task = await submit(pool, repo, "pr")
        await jobs.run_task(task.id, deps)
        forge.assert_clean()

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    [pr] = forge.pulls.values()
    assert (pr["head"], pr["base"], pr["state"]) == (f"agent/{task.key}", "main", "open")
    assert pr["title"] == f"{task.key}: Add a greeting"
    body = pr["body"]
    assert "Say hello." in body  # the task
    assert "| test | `test -f hello.txt` | passed |" in body  # the checks
    assert "1 attempt(s)" in body
    assert "### Preflight\n\npassed: 1 commit(s), 1 file(s)" in body
    url = f"{forge.root_url}/me/web/pulls/1"
    assert done.pr_url == url
    assert done.status_reason == f"PR #1 opened: {url}"
    [opened] = [e for e in await TaskEventRepo(pool).for_task(task.id)
                if e.kind is EventKind.PR_OPENED]  # fmt: skip
    assert opened.payload == {"number": 1, "url": url, "forge": forge.flavour, "created": True,
                              "head": f"agent/{task.key}", "base": "main"}  # fmt: skip
    assert git(bare, "rev-parse", f"agent/{task.key}") == done.head_commit


async def test_pr_flow_on_github_enterprise_updates_the_open_pr_of_its_branch(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    bare = bare_upstream(tmp_path)
    async with FakeGitHub(git_remote=bare, enterprise=True) as forge:
        deps = dataclasses.replace(deps, forge_env={"GITHUB_TOKEN": forge.token})
        repo = await add_repo(pool, bare, agent(tmp_path, WRITE), **_forge_repo(forge))
        task = await submit(pool, repo, "pr")
        git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "earlier"))
        git(tmp_path / "earlier", "push", "-q", "origin", f"main:agent/{task.key}")
        forge.add_pull(head=f"agent/{task.key}", base="main", title="an earlier try", body="old")
        await jobs.run_task(task.id, deps)
        forge.assert_clean()

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    [pr] = forge.pulls.values()  # no second PR for the same branch
    assert pr["title"] == f"{task.key}: Add a greeting"
    assert "Say hello." in pr["body"]
    assert done.status_reason.startswith("PR #1 updated: ")
    [comment] = forge.comments[1]
    assert comment["body"] == (f"DevServer ran {task.key} again: the branch now has 1 commit(s), "
                               "preflight passed; the description is up to date.")  # fmt: skip
    assert all(r.path.startswith("/api/v3/") for r in forge.requests)


async def test_a_forge_that_keeps_failing_fails_the_task_with_the_branch_and_patches_kept(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    bare = bare_upstream(tmp_path)
    async with FakeGitea(git_remote=bare) as forge:
        deps = dataclasses.replace(deps, forge_env={"GITEA_TOKEN": forge.token})
        repo = await add_repo(pool, bare, agent(tmp_path, WRITE), **_forge_repo(forge))
        task = await submit(pool, repo, "pr")
        forge.fail_next(502, times=50, committed=False)
        await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert failed.status_reason.startswith(f"agent/{task.key} is pushed and the patches are "
                                           "kept, but the pull request failed: ")  # fmt: skip
    assert "502" in failed.status_reason
    assert "3 tries" in failed.status_reason
    assert forge.pulls == {}
    assert git(bare, "rev-parse", f"agent/{task.key}") == failed.head_commit
    assert "combined.mbox" in [a.filename for a in await ArtifactRepo(pool).for_task(task.id)]


async def test_a_wrong_token_is_named_in_the_failure(
    pool: Pool, deps: WorkerDeps, tmp_path: Path
) -> None:
    bare = bare_upstream(tmp_path)
    async with FakeGitea(git_remote=bare) as forge:
        deps = dataclasses.replace(deps, forge_env={"GITEA_TOKEN": "not-the-token-0000"})
        repo = await add_repo(pool, bare, agent(tmp_path, WRITE), **_forge_repo(forge))
        task = await submit(pool, repo, "pr")
        await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED
    assert "401" in failed.status_reason
    assert "me/web" in failed.status_reason
    assert "not-the-token-0000" not in failed.status_reason


async def test_no_secret_reaches_events_logs_pr_bodies_or_the_agent(
    pool: Pool, deps: WorkerDeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A full run with every secret set, then everything the run wrote is searched."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    bare = bare_upstream(tmp_path)
    dump, check_env = tmp_path / "agent-env.json", tmp_path / "check-env.txt"
    code = f"pathlib.Path({str(dump)!r}).write_text(__import__('json').dumps(dict(os.environ)))\n"
    async with FakeGitea(git_remote=bare) as forge:
        monkeypatch.setenv("GITEA_TOKEN", forge.token)
        environment = {"GITEA_TOKEN": forge.token, "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
                       "ANTHROPIC_API_KEY": ANTHROPIC_KEY}  # fmt: skip
        deps = dataclasses.replace(deps, forge_env=environment)
        repo = await add_repo(pool, bare, agent(tmp_path, code + WRITE),
                              test_command=f"env > {check_env}; test -f hello.txt",
                              **_forge_repo(forge))  # fmt: skip
        task = await submit(pool, repo, "pr")
        with caplog.at_level(logging.DEBUG):
            await jobs.run_task(task.id, deps)
        forge.assert_clean()

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    secrets = [forge.token, BOT_TOKEN, ANTHROPIC_KEY]
    events = json.dumps([e.payload for e in await TaskEventRepo(pool).for_task(task.id)])
    notifications = json.dumps([dict(r) for r in await pool.fetch(
        "SELECT kind, payload::text FROM notifications")])  # fmt: skip
    artifacts = b"".join([await ArtifactRepo(pool).content(task.id, a.filename)
                          for a in await ArtifactRepo(pool).for_task(task.id)])  # fmt: skip
    sent = json.dumps([r.json for r in forge.requests])
    logs = "\n".join(r.getMessage() + " " + json.dumps(r.__dict__, default=str)
                     for r in caplog.records)  # fmt: skip
    agent_env = dump.read_text() + check_env.read_text()
    runs = json.dumps([dict(r) for r in await pool.fetch("SELECT * FROM task_runs")], default=str)
    assert forge.pulls[1]["body"]
    assert "GITEA_TOKEN" not in agent_env
    assert "HOME=" in check_env.read_text()  # the check's environment was written
    for secret in secrets:
        for name, text in (("events", events), ("notifications", notifications),
                           ("PR requests", sent), ("logs", logs), ("agent env", agent_env),
                           ("runs", runs), ("status", done.status_reason)):  # fmt: skip
            assert secret not in text, f"a secret leaked into {name}"
        assert secret.encode() not in artifacts
