"""Our repo map against aider's RepoMap on the same files, in one run: symbols found, cold
time (nothing cached), and warm time (cached symbols, ranked and rendered again for a task).

aider runs in its own interpreter (a venv with `aider-chat`, which pins dependencies of its
own), through bench/aider_repomap_probe.py; it works offline (see the probe's docstring for
the one stand-in, its token counter). Both get the same git repository (by default the one
bench/repo_map.py builds from this machine's standard library and site-packages), the same
task text, and a map of the same size (6,000 characters, about 1,500 tokens).

    python3 -m venv /tmp/aider-venv && /tmp/aider-venv/bin/pip install aider-chat==0.86.2
    .venv/bin/python bench/repo_map_vs_aider.py --aider-python /tmp/aider-venv/bin/python

What counts as a symbol differs a little: ours are the definitions our grammars keep
(classes, functions, methods, and module-level names where a language has them); aider's
are the `def` tags of its tree-sitter queries. Both over all tracked files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from repo_map import TASK, _default_repo
from web_status import machine

from worker.repo_map import RepoMapper, render

MAP_CHARS = 6000


async def ours(repo: Path, warm_runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="repo-map-cache-") as cache:
        mapper = RepoMapper(Path(cache), workers=2)
        repo_map, cold = await mapper.build(repo)
        text = render(repo_map, TASK, MAP_CHARS).text
        warm = []
        for _ in range(warm_runs):
            started = time.perf_counter()
            again, _ = await mapper.build(repo)
            render(again, TASK, MAP_CHARS)
            warm.append(time.perf_counter() - started)
    return {"cold_s": cold.seconds, "warm_s": warm, "symbols": cold.symbols,
            "files": cold.files, "head": text.splitlines()[:3]}  # fmt: skip


def aider(python: str, repo: Path) -> dict[str, object]:
    done = subprocess.run(
        [python, str(ROOT / "bench" / "aider_repomap_probe.py"), str(repo), TASK,
         str(MAP_CHARS // 4)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--aider-python", required=True, help="python of a venv with aider-chat")
    parser.add_argument("--repo", type=Path, help="a git repository (default: built)")
    parser.add_argument("--warm-runs", type=int, default=10)
    args = parser.parse_args()
    repo = args.repo or _default_repo()
    print(f"== ours on {repo}", flush=True)
    mine = asyncio.run(ours(repo, args.warm_runs))
    print("== aider's RepoMap", flush=True)
    theirs = aider(args.aider_python, repo)
    version = subprocess.run([args.aider_python, "-m", "aider", "--version"], capture_output=True,
                             text=True, check=False).stdout.strip()  # fmt: skip
    print(f"\n# {time.strftime('%Y-%m-%d %H:%M')} · {machine()} · {version}\n")
    print(f"{mine['files']} tracked files; task: {TASK[:70]}...\n")
    print("| | symbols | cold s | warm p50 s | cold vs ours | warm vs ours |")
    print("|---|---:|---:|---:|---:|---:|")
    ours_warm = statistics.median(mine["warm_s"])  # type: ignore[arg-type]
    their_warm = statistics.median(theirs["warm_s"])  # type: ignore[arg-type]
    ours_cold, their_cold = float(mine["cold_s"]), float(theirs["cold_s"])  # type: ignore[arg-type]
    print(f"| DevServer (2 workers) | {mine['symbols']:,} | {ours_cold:.2f} | {ours_warm:.4f} "
          "| 1x | 1x |")  # fmt: skip
    print(f"| aider {version.split()[-1] if version else ''} | {theirs['defs']:,} | "
          f"{their_cold:.2f} | {their_warm:.3f} | {their_cold / ours_cold:.0f}x | "
          f"{their_warm / ours_warm:.0f}x |")  # fmt: skip
    print(f"\nmap heads: ours {mine['head']}; aider {theirs['map_head']}")


if __name__ == "__main__":
    main()
