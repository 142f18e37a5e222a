"""`git format-patch` output for a task: one file per commit plus a combined mbox."""

from __future__ import annotations

import asyncio
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from worker.git import run_git

COMBINED_FILENAME = "combined.mbox"
_COMMIT_PATTERN = re.compile(r"^[0-9a-f]{7,64}$")

# Pinned so that a user's git config (diff.noprefix, format.suffix, format.signature ...)
# cannot produce patches that `git am` would not apply.
_FORMAT_OPTIONS = (
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--suffix=.patch",
    "--no-cover-letter",
)


@dataclass(frozen=True, slots=True)
class PatchFile:
    filename: str
    content: bytes


async def format_patches(worktree_path: Path, base_commit: str) -> list[PatchFile]:
    """The commits in base_commit..HEAD as 0001-*.patch files (oldest first), then combined.mbox.

    Returns [] when there are no commits. Merge commits are skipped, as format-patch does.
    One git command: the mbox is the files joined as `format-patch --stdout` joins them (a
    blank line between two patches), so it is not formatted a second time.
    """
    if not _COMMIT_PATTERN.fullmatch(base_commit):
        raise ValueError(f"base_commit must be a hex commit id: {base_commit!r}")
    with tempfile.TemporaryDirectory(prefix="devserver-patches-") as output_dir:
        listing = await run_git(
            "format-patch", *_FORMAT_OPTIONS, "--output-directory", output_dir,
            f"{base_commit}..HEAD", cwd=worktree_path,
        )  # fmt: skip
        names = [Path(line).name for line in listing.text.splitlines() if line]
        patches = await asyncio.to_thread(_read_all, Path(output_dir), names)
    if not patches:
        return []
    combined = b"\n".join(patch.content for patch in patches)
    return [*patches, PatchFile(COMBINED_FILENAME, combined)]


def _read_all(directory: Path, names: list[str]) -> list[PatchFile]:
    return [PatchFile(name, (directory / name).read_bytes()) for name in names]
