"""Read blobs with `git cat-file --batch` and parse them, in this process or in children.

`parse_blobs` does the work in the calling thread. `parse_in_children` splits the work by
size and runs one `python -m worker.repo_map_parse WORKTREE` child per part, at the same
time; a child reads "<blob id> <hint>" lines on stdin and writes its results to stdout with
`marshal`. Children are plain subprocesses rather than a multiprocessing pool: nothing is
forked from a threaded process, and no program's `__main__` is imported again.
"""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from worker.git import git_env
from worker.repo_map_grammars import RawSymbol
from worker.symbols import extract

# One parsed blob: (language, symbols), or None when skipped as binary, minified or missing.
Parsed = tuple[str, list[RawSymbol]] | None
# What to parse: (blob id, language hint from worker.symbols.language_for).
Item = tuple[str, str]

_PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ParseError(Exception):
    """A parsing child failed; carries the end of its stderr."""


def parse_blobs(worktree: Path, items: Sequence[Item]) -> list[Parsed]:
    """Read each (blob id, hint) with one `git cat-file --batch` and parse it, in order."""
    if not items:
        return []
    request = "".join(f"{blob}\n" for blob, _ in items).encode()
    output = subprocess.run(
        ["git", "-C", str(worktree), "cat-file", "--batch"],
        input=request,
        capture_output=True,
        env=git_env(),
        check=True,
    ).stdout
    results: list[Parsed] = []
    position = 0
    for _, hint in items:
        header_end = output.index(b"\n", position)
        header = output[position:header_end].split()
        position = header_end + 1
        if len(header) != 3:  # "<id> missing"
            results.append(None)
            continue
        size = int(header[2])
        data = output[position : position + size]
        position += size + 1
        results.append(extract(hint, data))
    return results


def parse_in_children(
    worktree: Path, parts: Sequence[Sequence[Item]], *, workers: int
) -> list[list[Parsed]]:
    """parse_blobs for each part, each in its own child process, `workers` at a time."""
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="repo-map") as pool:
        return list(pool.map(lambda part: _child(worktree, part), parts))


def _child(worktree: Path, items: Sequence[Item]) -> list[Parsed]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), env.get("PYTHONPATH")]))
    request = "".join(f"{blob} {hint}\n" for blob, hint in items).encode()
    result = subprocess.run(
        [sys.executable, "-m", "worker.repo_map_parse", str(worktree)],
        input=request,
        capture_output=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise ParseError(result.stderr.decode("utf-8", errors="replace")[-2000:])
    parsed: list[Parsed] = marshal.loads(result.stdout)  # noqa: S302 - our own child wrote it
    if len(parsed) != len(items):
        raise ParseError(f"expected {len(items)} results, got {len(parsed)}")
    return parsed


def _main() -> None:
    """Child entry: items on stdin, marshalled results on stdout."""
    lines = sys.stdin.read().splitlines()
    items = [(blob, hint) for blob, _, hint in (line.partition(" ") for line in lines if line)]
    sys.stdout.buffer.write(marshal.dumps(parse_blobs(Path(sys.argv[1]), items)))


if __name__ == "__main__":
    _main()
