"""How long the repo map takes on a large real repository, cold and warm.

Cold: an empty cache directory and a fresh process pool, so every file is read and parsed.
Warm: the same tree again, answered from the mapper's memory, plus ranking and rendering for
a task text; also a new mapper on the same cache directory (a restarted worker) for scale.

    .venv/bin/python bench/repo_map.py [--repo PATH] [--workers 2] [--repeat 20] [--cold-runs 3]

Without --repo it builds, once, a git repository under $TMPDIR from this machine's CPython
standard library and the project venv's site-packages (sources only: no .pyc, no .so).
Targets: cold < 10 s on 2 cores, warm < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.repo_map import RepoMapper, hits, mentions, ranked_files, render

COLD_TARGET = 10.0
WARM_TARGET = 0.050
TASK = (
    "The `ThreadPoolExecutor` in concurrent/futures/thread.py leaks workers when "
    "shutdown(wait=False) races submit(); fix _adjust_thread_count and add a test in "
    "test_concurrent_futures. Also check asyncio.base_events.BaseEventLoop.run_in_executor."
)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.so", "*.so.*", "*.a")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", type=Path, help="a git worktree to map (default: built)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--task", default=TASK)
    args = parser.parse_args()
    repo = args.repo or _default_repo()
    asyncio.run(_run(repo, args.workers, args.repeat, args.cold_runs, args.task))


async def _run(repo: Path, workers: int, repeat: int, cold_runs: int, task: str) -> None:
    print(f"repo: {repo}  cores: {os.cpu_count()}  workers: {workers}")
    colds: list[float] = []
    for _ in range(cold_runs - 1):  # each with an empty cache directory and fresh children
        with tempfile.TemporaryDirectory(prefix="repo-map-cache-") as cache:
            colds.append((await RepoMapper(Path(cache), workers=workers).build(repo))[1].seconds)
    with tempfile.TemporaryDirectory(prefix="repo-map-cache-") as cache:
        mapper = RepoMapper(Path(cache), workers=workers)
        repo_map, cold = await mapper.build(repo)
        assert not cold.cached
        colds.append(cold.seconds)
        top = ", ".join(f"{k} {v}" for k, v in list(cold.languages.items())[:6])
        print(f"files: {cold.files}  parsed: {cold.parsed}  symbols: {cold.symbols}  ({top})")
        median = statistics.median(colds)
        runs = ", ".join(f"{c:.2f}" for c in colds)
        print(f"cold ({len(colds)} runs: {runs} s): median {median:.2f} s, best {min(colds):.2f} s"
              f"  ({median / COLD_TARGET:.0%} of the 10 s target)")  # fmt: skip

        warm: list[float] = []
        for _ in range(repeat):
            started = time.perf_counter()
            again, stats = await mapper.build(repo)
            ranked_files(again, task)
            rendered = render(again, task)
            warm.append(time.perf_counter() - started)
            assert stats.cached
            assert again is repo_map
        p50, worst = statistics.median(warm), max(warm)
        print(
            f"warm (memory hit + rank + render, {repeat} runs): p50 {p50 * 1000:.1f} ms, "
            f"max {worst * 1000:.1f} ms  ({p50 / WARM_TARGET:.0%} of the 50 ms target)"
        )
        print(f"rendered: {len(rendered.text)} chars, {rendered.files_shown} files shown")
        found = hits(repo_map, mentions(task))
        print(f"task mentions found in the map: {len(found.found)}, missing: {found.missing}")

        restarted = RepoMapper(Path(cache), workers=workers)
        started = time.perf_counter()
        reloaded, stats = await restarted.build(repo)
        render(reloaded, task)
        seconds = time.perf_counter() - started
        assert stats.cached
        assert reloaded == repo_map
        print(f"warm from disk (new mapper + rank + render): {seconds * 1000:.0f} ms")
        print("top of the map:")
        print("\n".join(rendered.text.splitlines()[:12]))


def _default_repo() -> Path:
    """A git repository of the standard library and site-packages sources, made once."""
    root = Path(tempfile.gettempdir()) / f"devserver-bench-repo-map-{os.getuid()}"
    if (root / ".git").is_dir() and _git(root, "rev-parse", "--verify", "-q", "HEAD"):
        return root
    shutil.rmtree(root, ignore_errors=True)
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    base_stdlib = Path(sys.base_prefix) / "lib" / stdlib.name
    venv_site = Path(sysconfig.get_paths()["purelib"])
    print(f"building {root} from {base_stdlib} and {venv_site} ...")
    shutil.copytree(
        base_stdlib,
        root / "stdlib",
        ignore=shutil.ignore_patterns("site-packages", "__pycache__", "*.pyc", "*.so"),
        symlinks=True,
    )
    shutil.copytree(venv_site, root / "site-packages", ignore=_IGNORED, symlinks=True)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A", "-f")
    _git(
        root, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
        "commit", "-q", "-m", "bench tree",
    )  # fmt: skip
    return root


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


if __name__ == "__main__":
    main()
