"""Hostile task text and names: never run by a shell, never used as a path.

A task whose title and description are full of shell syntax runs through the real worker with
the scripted command agent: the prompt reaches the agent verbatim (it writes prompt.txt, which
comes back in the patches), no marker file appears, and a canary directory outside the
worktree is untouched. NUL, which PostgreSQL cannot store, is refused by `devserver task add`
with a clear message. Task keys with path tricks are refused as unknown by every command that
takes one, and by the status page's task and file routes (404, never 500). A forwarded series
whose paths leave the worktree (../, through a symlink, into .git/) is refused by git am.
"""

from __future__ import annotations

import shlex
import sys
import uuid
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient
from yarl import URL

from devserver.cli import main
from storage.artifacts import ArtifactKind, ArtifactRepo
from storage.repos import NewRepo, RepoRepo
from storage.task_status import TaskStatus
from storage.tasks import NewTask, TaskRepo
from tests.gitrepos import apply_mbox, make_repo
from tests.worker.running import AGENTS, Pool, add_repo, worker_deps
from web.app import create_app
from worker import jobs
from worker.queue import submit_task
from worker.settings import WorkerSettings

SCRIPTED = (f"{shlex.quote(sys.executable)} {shlex.quote(str(AGENTS / 'scripted.py'))} "
            "{workdir} {prompt} {session}")  # fmt: skip
TRAVERSAL_KEYS = ("../../etc/passwd", "SHOP-1/../../x", "..", "/etc/passwd", "SHOP-1%2F..",
                  "-rf", "SHOP-99999999999999999999", "$(touch /tmp/PWNED_key)")  # fmt: skip


def _hostile(markers: list[Path], canary: Path, pwned: Path) -> tuple[str, str]:
    """A title and a description that would touch `markers` and `pwned`, or empty `canary`,
    if any of it reached a shell."""
    one, two, three, four, five = markers
    title = (f"Fix $(touch {one}) and `touch {two}`; touch {three} | touch {four} "
             f"&& touch {five}")  # fmt: skip
    description = "\n".join([
        f"; rm -rf {canary} #", f"$(rm -rf {canary})", f"> {canary}/keep.txt",
        f"../../{canary.name}/keep.txt", f"$(touch {pwned})", "{prompt} {workdir} {session}",
        "%s %n {0} ${IFS} $HOME \\n \"double\" 'single' \u202eright-to-left \U0001f600",
    ])  # fmt: skip
    return title, description


async def test_hostile_task_text_reaches_the_agent_verbatim_and_never_a_shell(
    pool: Pool, tmp_path: Path
) -> None:
    upstream = make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("keep me\n")
    markers = [tmp_path / f"marker-{n}" for n in range(5)]
    pwned = Path(f"/tmp/PWNED_{uuid.uuid4().hex}")  # the classic target
    title, description = _hostile(markers, canary, pwned)
    repo = await add_repo(pool, upstream, SCRIPTED, test_command="test -f hello.txt")
    async with pool.acquire() as conn:
        task = await submit_task(conn, NewTask(repo_id=repo.id, title=title,
                                               description=description))  # fmt: skip
    deps = worker_deps(pool, tmp_path, settings=WorkerSettings(agent_timeout_seconds=20))
    await jobs.run_task(task.id, deps)

    done = await TaskRepo(pool).by_id(task.id)
    assert done.status is TaskStatus.DONE, done.status_reason
    assert [p for p in [*markers, pwned] if p.exists()] == []
    assert [p.name for p in canary.iterdir()] == ["keep.txt"]
    assert (canary / "keep.txt").read_text() == "keep me\n"
    artifacts = ArtifactRepo(pool)
    names = [a.filename for a in await artifacts.for_task(task.id)]
    assert all("/" not in n and ".." not in n and not n.startswith("-") for n in names), names
    clone = apply_mbox(upstream, await artifacts.content(task.id, "combined.mbox"),
                       tmp_path / "applied")  # fmt: skip
    prompt = (clone / "prompt.txt").read_text()
    assert f"# {title}\n\n{description}\n" in prompt  # verbatim, through git and back


@pytest.fixture
def cli_env(db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    monkeypatch.setenv("DEVSERVER_HOME", str(tmp_path / "home"))
    return make_repo(tmp_path / "upstream", {"README.md": "# Demo\n"})


def _refused(args: list[str], capsys: pytest.CaptureFixture[str], message: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("devserver: error: ")
    assert message in err
    assert "Traceback" not in err


def test_the_cli_refuses_nul_and_keys_with_path_tricks(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["repo", "add", "web", str(cli_env)]) == 0
    assert main(["task", "add", "web", "A fine task"]) == 0
    capsys.readouterr()
    nul = "has a NUL character (\\0), which cannot be stored"
    _refused(["task", "add", "web", "Fix\0it"], capsys, f"the title {nul}")
    _refused(["task", "add", "web", "Fix it", "--description", "a\0b"], capsys,
             f"the description {nul}")  # fmt: skip
    _refused(["task", "add", "web", "Fix it", "--acceptance", "\0"], capsys,
             f"the acceptance {nul}")  # fmt: skip
    _refused(["task", "add", "web", "Fix it", "--model", "m\0"], capsys, f"the model {nul}")
    _refused(["task", "add", "w\0eb", "Fix it"], capsys, f"the repo {nul}")
    with pytest.raises(SystemExit):  # argparse: "NaN" is no amount of dollars
        main(["task", "add", "web", "Fix it", "--max-cost", "NaN"])
    assert "not an amount of dollars: 'NaN'" in capsys.readouterr().err
    for key in TRAVERSAL_KEYS:
        for command in (["task", "show", key], ["task", "mbox", key], ["task", "budget", key]):
            if key.startswith("-"):  # read as an option: argparse refuses it (exit 2)
                with pytest.raises(SystemExit) as refused:
                    main(command)
                assert refused.value.code == 2
                assert "Traceback" not in capsys.readouterr().err
            else:
                _refused(command, capsys, "not found")
    assert main(["task", "list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # nothing was added


async def test_the_status_page_answers_404_for_keys_and_file_names_with_path_tricks(
    aiohttp_client: AiohttpClient, db_dsn: str, pool: Pool
) -> None:
    repo = await RepoRepo(pool).add(NewRepo(name="shop", source="/srv/shop.git",
                                            default_branch="main"))  # fmt: skip
    async with pool.acquire() as conn:
        task = await submit_task(conn, NewTask(repo_id=repo.id, title="Fix it"))
    await ArtifactRepo(pool).put(task.id, ArtifactKind.MBOX, "combined.mbox", b"From x\n")
    client = await aiohttp_client(create_app(db_dsn))
    assert (await client.get(f"/tasks/{task.key}/files/combined.mbox")).status == 200
    paths = [
        "/tasks/..%2F..%2Fetc%2Fpasswd", "/tasks/SHOP-1%2F..%2F..%2Fetc%2Fpasswd",
        "/tasks/SHOP-1%00", "/tasks/shop-1", "/tasks/SHOP-99999999999999999999",
        "/tasks/SHOP-99999999999999999999/files/combined.mbox", "/tasks/SHOP-1/files/..",
        "/tasks/SHOP-1/files/..%2F..%2Fetc%2Fpasswd", "/tasks/SHOP-1/files/%2Fetc%2Fpasswd",
        "/tasks/SHOP-1/files/combined.mbox%00", "/tasks/SHOP-1/files/.%2E%2Fcombined.mbox",
        "/tasks/SHOP-1/live/..%2F..%2Fx", "/tasks/SHOP-1/files/../../etc/passwd",
    ]  # fmt: skip
    for path in paths:
        response = await client.get(URL(path, encoded=True))
        assert response.status == 404, (path, response.status)
        assert "root:" not in await response.text()


def _series(paths: list[str], *, link_to: str | None = None) -> bytes:
    """One commit (as git format-patch writes it) adding a file, or a symlink to `link_to`,
    at each of `paths`."""
    mode, body = ("120000", f"+{link_to}\n\\ No newline at end of file\n") if link_to else (
        "100644", "+owned\n")  # fmt: skip
    diffs = "".join(f"diff --git a/{p} b/{p}\nnew file mode {mode}\n--- /dev/null\n"
                    f"+++ b/{p}\n@@ -0,0 +1 @@\n{body}" for p in paths)  # fmt: skip
    return (b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
            b"From: Eve <eve@example.invalid>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
            b"Subject: [PATCH] Escape\n\n---\n" + diffs.encode() + b"--\n2.43.0\n")  # fmt: skip


@pytest.mark.parametrize("name", ["dot-dot", "symlink", "git-dir"])
async def test_a_series_whose_paths_leave_the_worktree_is_refused_by_git_am(
    pool: Pool, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / "escaped"
    mbox = {
        "dot-dot": _series([f"../../../../../../..{outside}"]),
        "symlink": _series(["link"], link_to=str(tmp_path)) + _series(["link/escaped"]),
        "git-dir": _series([".git/hooks/post-checkout", ".git/config"]),
    }[name]
    upstream = make_repo(tmp_path / "shop", {"README.md": "# Shop\n"})
    repo = await RepoRepo(pool).add(NewRepo(name="shop", source=str(upstream),
                                            default_branch="main"))  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        task = await submit_task(conn, NewTask(repo_id=repo.id, title="Apply: Escape",
                                               kind="apply"))  # fmt: skip
        await ArtifactRepo(conn).put(task.id, ArtifactKind.SOURCE, "source.mbox", mbox)
    deps = worker_deps(pool, tmp_path)
    await jobs.run_task(task.id, deps)

    failed = await TaskRepo(pool).by_id(task.id)
    assert failed.status is TaskStatus.FAILED, failed.status_reason
    assert "does not apply" in failed.status_reason
    assert "nothing was applied" in failed.status_reason
    if name != "symlink":  # that one stops at the file beyond the link
        assert "invalid path" in failed.status_reason
    assert not outside.exists()
    for git_dir in (upstream / ".git", deps.workspace.mirror_path(repo.name)):
        hooks = git_dir / "hooks"
        assert [p for p in hooks.iterdir() if not p.name.endswith(".sample")] == [], git_dir
