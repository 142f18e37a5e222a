"""The pre-PR preflight on real git repositories: identity, file names, sizes, binaries, and
secrets in the added lines only."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import TypeAlias

import asyncpg
import pytest

from storage.repos import NewRepo, Repo, RepoRepo
from tests.gitrepos import TEST_AUTHOR_EMAIL, TEST_AUTHOR_NAME, commit_file, git, make_repo
from worker.preflight import MAX_FILE_BYTES, added_lines, forbidden, preflight

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


def github_token(seed: int = 7) -> str:
    """A real-format (fake) GitHub classic token, made here so no literal sits in the repo."""
    rng = random.Random(seed)
    return "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


async def _repo(pool: Pool, *, allow_binary: bool = False) -> Repo:
    new = NewRepo(name=f"pf{int(allow_binary)}", source="/dev/null", default_branch="main",
                  git_author_name=TEST_AUTHOR_NAME, git_author_email=TEST_AUTHOR_EMAIL,
                  allow_binary=allow_binary)  # fmt: skip
    return await RepoRepo(pool).add(new)


@pytest.fixture
def work(tmp_path: Path) -> tuple[Path, str]:
    """A repo whose base commit already holds a secret (in settings.py), and its base sha."""
    path = make_repo(tmp_path / "w", {
        "README.md": "# Demo\n",
        "settings.py": f'TOKEN = "{github_token(1)}"\nDEBUG = False\n',
        "big.bin": "x",
    })  # fmt: skip
    return path, git(path, "rev-parse", "HEAD")


async def test_a_clean_change_passes_and_lists_its_files(
    pool: Pool, work: tuple[Path, str]
) -> None:
    path, base = work
    commit_file(path, "src/app.py", "def main():\n    return 1\n", "add app")
    commit_file(path, ".github/workflows/ci.yml", "on: push\n", "add ci")
    report = await preflight(path, base, await _repo(pool))
    assert report.passed, report.violations
    assert report.commits == 2
    assert report.files == [".github/workflows/ci.yml", "src/app.py"]
    assert report.reason() == "preflight passed"


async def test_a_secret_already_on_the_base_branch_does_not_block(
    pool: Pool, work: tuple[Path, str]
) -> None:
    path, base = work
    (path / "settings.py").write_text((path / "settings.py").read_text().replace("False", "True"))
    git(path, "commit", "-qam", "debug on")
    report = await preflight(path, base, await _repo(pool))
    assert report.passed, report.violations


async def test_an_added_secret_is_found_at_its_line_and_shown_masked(
    pool: Pool, work: tuple[Path, str]
) -> None:
    path, base = work
    token = github_token(2)
    (path / "settings.py").write_text(
        (path / "settings.py").read_text() + f'BACKUP_TOKEN = "{token}"\n'
    )
    git(path, "commit", "-qam", "backup token")
    commit_file(path, "deploy/new.sh", f"#!/bin/sh\n\nexport GH={github_token(3)}\n", "deploy")
    report = await preflight(path, base, await _repo(pool))
    secrets = [(v.path, v.line, v.rule) for v in report.violations if v.check == "secret"]
    assert secrets == [("deploy/new.sh", 3, secrets[0][2]), ("settings.py", 3, secrets[1][2])]
    assert all(rule and "github" in rule for _, _, rule in secrets)
    payload = str(report.payload())
    assert token not in payload
    assert github_token(3) not in payload
    assert token[-4:] in payload or "…" in payload or "*" in payload  # masked, not absent
    assert "settings.py:3" in report.reason()


async def test_paths_with_spaces_and_accents_are_named_as_they_are(
    pool: Pool, work: tuple[Path, str]
) -> None:
    """git ends a `+++` name holding a space with a tab, and quotes one holding an accent;
    neither may reach the file list or a finding."""
    path, base = work
    commit_file(path, "notes/my notes.txt", f"gh {github_token(4)}\n", "notes")
    commit_file(path, "docs/café menu.md", f"token: {github_token(5)}\n", "menu")
    git(path, "rm", "-q", "README.md")
    git(path, "commit", "-qm", "no readme")
    report = await preflight(path, base, await _repo(pool))
    assert report.files == ["README.md", "docs/café menu.md", "notes/my notes.txt"]
    secrets = sorted((v.path, v.line) for v in report.violations if v.check == "secret")
    assert secrets == [("docs/café menu.md", 1), ("notes/my notes.txt", 1)]


async def test_identity_names_the_commit_by_someone_else(
    pool: Pool, work: tuple[Path, str]
) -> None:
    path, base = work
    commit_file(path, "a.txt", "a\n", "ours")
    (path / "b.txt").write_text("b\n")
    git(path, "add", "b.txt")
    git(path, "commit", "-qm", "theirs", "--author", "Mallory <m@evil.invalid>")
    sha = git(path, "rev-parse", "HEAD")
    report = await preflight(path, base, await _repo(pool))
    [violation] = report.violations
    assert violation.check == "identity"
    assert violation.path == sha[:12]
    assert f"Mallory <m@evil.invalid> / {TEST_AUTHOR_NAME}" in violation.detail
    assert TEST_AUTHOR_EMAIL in violation.detail


async def test_forbidden_files_big_files_and_binaries(pool: Pool, work: tuple[Path, str]) -> None:
    path, base = work
    commit_file(path, "config/.env.production", "DEBUG=1\n", "env")
    commit_file(path, ".env.example", "API_KEY=<your key>\n", "template")
    commit_file(path, "keys/id_ed25519.pub", "ssh-ed25519 AAAA test\n", "public key")
    (path / "data.csv").write_text("a,b\n" * (MAX_FILE_BYTES // 4 + 10))
    (path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    git(path, "add", "-A")
    git(path, "commit", "-qm", "data")
    git(path, "rm", "-q", "big.bin")
    git(path, "commit", "-qm", "a deletion is never a violation")
    report = await preflight(path, base, await _repo(pool))
    found = sorted((v.check, v.path) for v in report.violations)
    assert found == [("binary", "logo.png"), ("file_size", "data.csv"),
                     ("forbidden_file", "config/.env.production")]  # fmt: skip
    allowed = await preflight(path, base, await _repo(pool, allow_binary=True))
    assert ("binary", "logo.png") not in [(v.check, v.path) for v in allowed.violations]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".env", True), ("app/.env.local", True), ("prod.env", True), ("id_rsa", True),
        ("home/.ssh/id_ed25519", True), ("certs/server.key", True), ("tls/server.pem", False),
        ("store.jks", True), ("release.keystore", True), (".aws/credentials", True),
        ("credentials.json", True), (".netrc", True), ("infra/terraform.tfstate", True),
        (".env.example", False), (".env.sample", False), ("id_rsa.pub", False),
        ("environment.py", False), ("docs/keys.md", False), ("src/credentials_form.tsx", False),
        ("tls/server.crt", False),
    ],
)  # fmt: skip
def test_forbidden_names(path: str, expected: bool) -> None:
    assert forbidden(path) is expected


def test_added_lines_follow_hunks_and_new_files() -> None:
    diff = "\n".join([
        "diff --git a/x.py b/x.py", "index 1..2 100644", "--- a/x.py", "+++ b/x.py",
        "@@ -3,0 +4,2 @@ def f():", "+a = 1", "+b = 2", "@@ -10 +12 @@", "-old", "+new",
        "diff --git a/gone.txt b/gone.txt", "deleted file mode 100644", "--- a/gone.txt",
        "+++ /dev/null", "@@ -1 +0,0 @@", "-bye",
        'diff --git "a/caf\\303\\251.txt" "b/caf\\303\\251.txt"', "new file mode 100644",
        "--- /dev/null", '+++ "b/caf\\303\\251.txt"', "@@ -0,0 +1 @@", "++++ looks like a header",
    ])  # fmt: skip
    assert added_lines(diff) == [
        ("x.py", [(4, "a = 1"), (5, "b = 2"), (12, "new")]),
        ("café.txt", [(1, "+++ looks like a header")]),
    ]
