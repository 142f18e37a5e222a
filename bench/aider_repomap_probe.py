"""Run by aider's own interpreter (a venv with `aider-chat`), not ours: aider's RepoMap on a
repository, cold (empty tags cache) then warm, as JSON on stdout. See repo_map_vs_aider.py.

    AIDER_PYTHON bench/aider_repomap_probe.py REPO TASK MAP_TOKENS

aider normally counts tokens with the model's tokenizer through litellm, which needs the
network for tiktoken's tables; here a stand-in counts 4 characters as a token, which only
makes aider's fitting of the map cheaper than it is in use.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from aider.repomap import RepoMap  # type: ignore[import-not-found]  # aider's venv


class Model:
    def token_count(self, text: str) -> float:
        return len(text) / 4


class Quiet:
    """The few InputOutput methods RepoMap calls; reads as aider's InputOutput does."""

    def read_text(self, filename: str, silent: bool = False) -> str | None:
        try:
            return Path(filename).read_text(encoding="utf-8")
        except (OSError, UnicodeError):
            return None

    def tool_output(self, *args: object, **kwargs: object) -> None:
        pass

    tool_warning = tool_error = tool_output


def main() -> None:
    repo, task, tokens = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    files = [str(repo / name) for name in listed]
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]+", task))
    mentioned = {name for name in listed if Path(name).name in task or name in task}
    cache = repo / RepoMap.TAGS_CACHE_DIR
    shutil.rmtree(cache, ignore_errors=True)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # tqdm's progress bar, till exit
    started = time.perf_counter()
    mapper = RepoMap(map_tokens=tokens, root=str(repo), main_model=Model(), io=Quiet())
    text = mapper.get_ranked_tags_map([], files, tokens, mentioned, words)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        mapper.get_ranked_tags_map([], files, tokens, mentioned, words, force_refresh=True)
        warm.append(time.perf_counter() - started)
    defs = files_with = 0
    for name, path in zip(listed, files, strict=True):
        tags = [t for t in mapper.get_tags(path, name) if t.kind == "def"]
        defs += len(tags)
        files_with += bool(tags)
    shutil.rmtree(cache, ignore_errors=True)
    print(
        json.dumps(
            {
                "cold_s": cold,
                "warm_s": warm,
                "defs": defs,
                "files_with_defs": files_with,
                "files": len(listed),
                "map_chars": len(text or ""),
                "map_head": (text or "").splitlines()[:8],
            }
        )
    )


main()
