"""The pre-PR preflight: what a change must pass before anything leaves the machine (no LLM).

It reads the task branch's commits after their base with the real `git`, and checks:

- identity: every commit is authored and committed by the repo's configured identity (a
  forwarded series keeps its authors, `check_author=False`: committed by it; worker/apply.py);
- forbidden files: `.env` and its variants, private keys, credential files, keystores
  (templates such as `.env.example` are allowed; their lines are scanned like any other);
- size: no file over MAX_FILE_BYTES; binary: no binary file unless the repo allows them;
- secrets: the ADDED lines of the diff (worker/secrets.py). A secret already on the default
  branch does not block the task; a new file is all added lines, so it is scanned whole.

The plan's allow-list is checked earlier, when the change passes its checks
(worker/scope.py), because scope creep sends the agent back once; what fails here blocks.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from storage.repos import Repo
from worker.git import run_git
from worker.secrets import Finding, scan_lines

MAX_FILE_BYTES = 1024 * 1024
MAX_REPORTED = 50  # violations kept in the event; the count says how many there were

# File names that hold credentials, matched case-insensitively against the file's name.
FORBIDDEN_NAMES = (
    ".env", ".env.*", "*.env", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "id_ecdsa_sk",
    "id_ed25519_sk", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.bks",
    "*.kdbx", "*.ppk", "*.gpg", "credentials", "credentials.json", "credentials.yml",
    "credentials.yaml", "*.credentials", ".netrc", "_netrc", ".pgpass", ".git-credentials",
    "secrets.yml", "secrets.yaml", "service-account*.json", "*.tfstate", "*.tfstate.backup",
)  # fmt: skip
# Templates: meant to be committed, with placeholders instead of values (still scanned).
TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".tmpl", ".defaults")
PUBLIC_SUFFIXES = (".pub", ".crt", ".cer")  # public halves are fine

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True, slots=True)
class Violation:
    check: str  # identity | forbidden_file | file_size | binary | secret
    path: str  # the file (for identity: the commit)
    detail: str  # one line for a person; a secret's value only masked
    line: int | None = None
    rule: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"check": self.check, "path": self.path, "detail": self.detail}
        if self.line is not None:
            out["line"] = self.line
        if self.rule is not None:
            out["rule"] = self.rule
        return out

    def text(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.detail}"


@dataclass(frozen=True, slots=True)
class Report:
    commits: int
    files: list[str]  # changed paths (added, modified, deleted)
    violations: list[Violation] = field(default_factory=list)
    head: str | None = None  # the branch's head commit; None when it has no commits

    @property
    def passed(self) -> bool:
        return not self.violations

    def payload(self) -> dict[str, object]:
        """The preflight_passed / preflight_failed event's payload."""
        out: dict[str, object] = {
            "kind": "preflight", "commits": self.commits, "files": self.files[:200],
            "checked": len(self.files),
        }  # fmt: skip
        if self.violations:
            out["violations"] = [v.as_dict() for v in self.violations[:MAX_REPORTED]]
            out["count"] = len(self.violations)
            out["reason"] = self.reason()
        return out

    def reason(self) -> str:
        """One line for the task's status reason."""
        if self.passed:
            return "preflight passed"
        shown = "; ".join(v.text() for v in self.violations[:3])
        more = len(self.violations) - 3
        tail = f"; and {more} more" if more > 0 else ""
        return f"preflight found {len(self.violations)} problem(s): {shown}{tail}"


async def preflight(
    worktree: Path, base_commit: str, repo: Repo, *, check_author: bool = True
) -> Report:
    """Check the commits base_commit..HEAD of `worktree` against the repo's rules. Without
    `check_author`, only the committer must be the repo's identity (the authors are kept)."""
    # Independent reads, run at once: they cost about the wait of the longest.
    commits, (diff, sizes) = await asyncio.gather(
        _identities(worktree, base_commit), _diff_and_sizes(worktree, base_commit)
    )
    changes, binaries = diff.changes, diff.binaries
    expected = _identity(repo.git_author_name, repo.git_author_email)
    violations = [
        Violation("identity", sha[:12], f"commit by {_who(author, committer)}, not {expected}")
        for sha, author, committer in commits
        if committer != expected or (check_author and author != expected)
    ]
    present = [path for path, status in changes if status != "D"]
    for path in present:
        if forbidden(path):
            violations.append(Violation("forbidden_file", path,
                                        "a file of this name holds credentials"))  # fmt: skip
    for path in present:
        if sizes.get(path, 0) > MAX_FILE_BYTES:
            violations.append(Violation(
                "file_size", path,
                f"{sizes[path] / 1024 / 1024:.1f} MB, over the {MAX_FILE_BYTES // 1024} KB limit",
            ))  # fmt: skip
    if not repo.allow_binary:
        violations += [Violation("binary", path, "binary file (this repo allows none)")
                       for path in sorted(binaries) if path in present]  # fmt: skip
    for finding in _secrets(diff.patch, skip=binaries):
        violations.append(Violation("secret", finding.path,
                                    f"{finding.rule}: {finding.masked}",
                                    line=finding.line, rule=finding.rule))  # fmt: skip
    head = commits[0][0] if commits else None  # `git log` starts at HEAD
    return Report(len(commits), [path for path, _ in changes], violations, head=head)


def forbidden(path: str) -> bool:
    """Whether a file of this name would hold credentials (see FORBIDDEN_NAMES)."""
    name = PurePosixPath(path).name.lower()
    if name.endswith(TEMPLATE_SUFFIXES) or name.endswith(PUBLIC_SUFFIXES):
        return False
    lowered = path.lower()
    if lowered.endswith((".aws/credentials", ".docker/config.json", ".ssh/config")):
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in FORBIDDEN_NAMES)


def _identity(name: str, email: str) -> str:
    return f"{name} <{email}>"


def _who(author: str, committer: str) -> str:
    return author if author == committer else f"{author} / {committer}"


async def _identities(worktree: Path, base_commit: str) -> list[tuple[str, str, str]]:
    """(commit, author, committer) for base..HEAD."""
    result = await run_git("log", "--format=%H%x00%an%x00%ae%x00%cn%x00%ce",
                           f"{base_commit}..HEAD", cwd=worktree)  # fmt: skip
    out = []
    for line in result.text.splitlines():
        sha, an, ae, cn, ce = line.split("\0")
        out.append((sha, _identity(an, ae), _identity(cn, ce)))
    return out


@dataclass(frozen=True, slots=True)
class _Diff:
    changes: list[tuple[str, str]]  # (path, status letter); renames as delete + add
    binaries: set[str]  # files git itself treats as binary
    patch: str  # the change as `git diff -U0`: what the secret scan reads (added_lines)


async def _diff(worktree: Path, base_commit: str) -> _Diff:
    """One `git diff` of base..HEAD in three formats: --raw (each file's status), --numstat
    (`-` for the line counts of a binary file) and -U0 (the lines added). With -z, the
    first two end at an empty entry; the patch follows as text."""
    result = await run_git("-c", "core.quotePath=false", "diff", "--raw", "--numstat", "-U0",
                           "-z", "--no-abbrev", "--no-color", "--no-renames", "--no-ext-diff",
                           "--no-textconv", base_commit, "HEAD", cwd=worktree)  # fmt: skip
    listing, _, patch = result.stdout.partition(b"\0\0")
    entries = listing.decode("utf-8", errors="replace").split("\0")
    changes, binaries, at = [], set(), 0
    while at < len(entries):
        entry = entries[at]
        if entry.startswith(":"):  # ":old-mode new-mode old-blob new-blob STATUS", path
            changes.append((entries[at + 1], entry.split()[-1][:1]))
            at += 2
            continue
        added, _, rest = entry.partition("\t")  # "added\tdeleted\tpath"
        deleted, _, path = rest.partition("\t")
        if added == "-" and deleted == "-" and path:
            binaries.add(path)
        at += 1
    return _Diff(changes, binaries, patch.decode("utf-8", errors="replace"))


async def _diff_and_sizes(worktree: Path, base_commit: str) -> tuple[_Diff, dict[str, int]]:
    """The diff, and the size of each file present after it."""
    diff = await _diff(worktree, base_commit)
    present = [path for path, status in diff.changes if status != "D"]
    return diff, await _sizes(worktree, present)


async def _sizes(worktree: Path, paths: list[str]) -> dict[str, int]:
    if not paths:
        return {}
    result = await run_git("ls-tree", "-l", "-z", "HEAD", "--", *paths, cwd=worktree)
    sizes = {}
    for entry in result.stdout.decode("utf-8", errors="replace").split("\0"):
        meta, _, path = entry.partition("\t")
        size = meta.split()[-1] if meta else "-"
        if path and size.isdigit():
            sizes[path] = int(size)
    return sizes


def _secrets(diff: str, *, skip: set[str]) -> list[Finding]:
    """Scan the lines the change adds (their line numbers in the new file)."""
    findings: list[Finding] = []
    for path, lines in added_lines(diff):
        if path not in skip:
            findings += scan_lines(path, lines)
    return findings


def added_lines(diff: str) -> list[tuple[str, list[tuple[int, str]]]]:
    """(path, [(line number in the new file, text)]) per file of a `git diff -U0`."""
    files: list[tuple[str, list[tuple[int, str]]]] = []
    lines: list[tuple[int, str]] | None = None
    number = 0
    for raw in diff.split("\n"):
        if raw.startswith("diff --git "):
            lines = None
        elif raw.startswith("+++ ") and lines is None:
            # git ends the name with a tab when it holds a space (for GNU patch); a name
            # that truly ends in one is quoted, so the tab here is never part of it
            target = _unquote(raw[4:].removesuffix("\t"))
            if target != "/dev/null":
                lines = []
                files.append((target.removeprefix("b/"), lines))
        elif raw.startswith("@@") and (match := _HUNK.match(raw)):
            number = int(match.group(1))
        elif raw.startswith("+") and lines is not None:
            lines.append((number, raw[1:]))
            number += 1
    return files


def _unquote(name: str) -> str:
    """git quotes a path with unusual characters C-style ("b/\\303\\251.py")."""
    if not (name.startswith('"') and name.endswith('"')):
        return name
    raw = name[1:-1].encode("latin-1", errors="backslashreplace").decode("unicode_escape")
    return raw.encode("latin-1", errors="replace").decode("utf-8", errors="replace")
