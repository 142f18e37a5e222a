"""The repo map: top-level symbols of every file of a worktree's HEAD tree, cached by tree id.

`RepoMapper.build(worktree)` lists HEAD's tree with `git ls-tree` (so .gitignore'd and
uncommitted files are never mapped), reuses the symbols of any blob it already knows, and
parses the rest with `git cat-file --batch` and the grammars of `worker.symbols`, in
`workers` child processes when there is much to parse (`worker.repo_map_parse`). Maps are
kept in memory and as `cache_dir/<tree_id>.json`; an unchanged tree costs one
`git rev-parse`. Ranking and rendering for a task live in `worker.repo_map_ranking` and are
re-exported here. All blocking work runs in threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import tempfile
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.git import git_env
from worker.repo_map_parse import Parsed, parse_blobs, parse_in_children
from worker.repo_map_ranking import (
    Hits,
    Mentions,
    RenderedMap,
    hits,
    mentions,
    ranked_files,
    render,
)
from worker.symbols import MAX_FILE_BYTES, FileSymbols, RepoMap, Symbol, language_for

__all__ = [
    "FileSymbols",
    "Hits",
    "MapStats",
    "Mentions",
    "RenderedMap",
    "RepoMap",
    "RepoMapError",
    "RepoMapper",
    "Symbol",
    "hits",
    "mentions",
    "ranked_files",
    "render",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
# Below this much to parse, a process pool costs more than it saves.
POOL_MIN_FILES = 64
POOL_MIN_BYTES = 2_000_000
PARTS_PER_WORKER = 3  # more parts than workers: a part that finishes early frees its core
MEMORY_MAPS = 8
ANCESTORS_SEARCHED = 30

# A blob read as a language: the same bytes under .py and .txt give different symbols.
_BlobKey = tuple[str, str]


class RepoMapError(Exception):
    """git could not list or read the worktree's tree (not a repository, broken objects...)."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


@dataclass(frozen=True, slots=True)
class MapStats:
    """How one build went: `parsed` counts files read and parsed, not reused."""

    tree_id: str
    cached: bool
    seconds: float
    files: int
    parsed: int
    symbols: int
    languages: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Entry:
    map: RepoMap
    blobs: tuple[str, ...]  # blob id of each of map.files
    symbols: int
    languages: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Blob:
    path: str
    blob: str
    size: int
    hint: str | None


class RepoMapper:
    """Builds and caches RepoMaps; one per process is enough, shared by all tasks."""

    def __init__(self, cache_dir: Path, *, workers: int = 2) -> None:
        self._cache_dir = cache_dir
        self._workers = workers
        self._maps: OrderedDict[str, _Entry] = OrderedDict()
        self._building: dict[str, asyncio.Lock] = {}  # one build per tree at a time

    async def build(
        self, worktree: Path, *, tree_id: str | None = None
    ) -> tuple[RepoMap, MapStats]:
        """The map of `worktree`'s HEAD tree (`tree_id`, when the caller knows it: one git
        command less); cached=True when no file had to be read."""
        started = time.perf_counter()
        if tree_id is None:
            tree_id = await asyncio.to_thread(_head_tree, worktree)
        held = self._maps.get(tree_id)
        if held is not None:
            self._maps.move_to_end(tree_id)
            return held.map, _stats(held, started, cached=True, parsed=0)
        lock = self._building.setdefault(tree_id, asyncio.Lock())
        try:
            async with lock:
                held = self._maps.get(tree_id)
                if held is not None:  # built by a concurrent call while we waited
                    return held.map, _stats(held, started, cached=True, parsed=0)
                snapshot = dict(self._maps)  # the thread must not see this dict change
                entry, parsed = await asyncio.to_thread(self._build, worktree, tree_id, snapshot)
                self._remember(entry)
        finally:
            if not lock.locked():
                self._building.pop(tree_id, None)
        stats = _stats(entry, started, cached=parsed is None, parsed=parsed or 0)
        log.info(
            "repo map built",
            extra={"tree_id": tree_id, "files": stats.files, "parsed": stats.parsed,
                   "seconds": round(stats.seconds, 3), "cached": stats.cached},
        )  # fmt: skip
        return entry.map, stats

    def _build(
        self, worktree: Path, tree_id: str, held: dict[str, _Entry]
    ) -> tuple[_Entry, int | None]:
        """(entry, files parsed), or (entry, None) when it came whole from the disk cache."""
        cached = _load(self._cache_path(tree_id))
        if cached is not None:
            return cached, None
        blobs = _list_tree(worktree, tree_id)
        known = self._known_blobs(worktree, tree_id, held)
        todo = [b for b in blobs if _readable(b) and _key(b) not in known]
        parsed = self._parse(worktree, todo)
        files: list[FileSymbols] = []
        for item in blobs:
            key = _key(item)
            if key in parsed:
                files.append(_file_symbols(item.path, parsed[key]))
            elif _readable(item):
                language, symbols = known[key]
                files.append(FileSymbols(item.path, language, symbols))
            else:
                files.append(FileSymbols(item.path, "", ()))
        entry = _entry(RepoMap(tree_id, tuple(files)), tuple(b.blob for b in blobs))
        _save(self._cache_path(tree_id), entry)
        return entry, len(todo)

    def _parse(self, worktree: Path, todo: list[_Blob]) -> dict[_BlobKey, Parsed]:
        """Parse in this thread when there is little to do, else in `workers` children."""
        small = len(todo) < POOL_MIN_FILES or sum(b.size for b in todo) < POOL_MIN_BYTES
        if small or self._workers < 2:
            items = [_key(b) for b in todo]
            return dict(zip(items, parse_blobs(worktree, items), strict=True))
        parts = [[_key(b) for b in part] for part in _split(todo, self._workers * PARTS_PER_WORKER)]
        results = parse_in_children(worktree, parts, workers=self._workers)
        return {
            key: parsed
            for part, part_results in zip(parts, results, strict=True)
            for key, parsed in zip(part, part_results, strict=True)
        }

    def _known_blobs(
        self, worktree: Path, tree_id: str, held: dict[str, _Entry]
    ) -> dict[_BlobKey, tuple[str, tuple[Symbol, ...]]]:
        """Symbols of blobs in the maps we hold, and in the nearest cached ancestor of HEAD."""
        entries = list(held.values())
        for ancestor in _ancestor_trees(worktree):
            if ancestor == tree_id:
                continue
            if ancestor in held:
                break
            loaded = _load(self._cache_path(ancestor))
            if loaded is not None:
                entries.append(loaded)
                break
        known: dict[_BlobKey, tuple[str, tuple[Symbol, ...]]] = {}
        for entry in entries:
            for file, blob in zip(entry.map.files, entry.blobs, strict=True):
                hint = language_for(file.path)
                if hint is not None:
                    known[(blob, hint)] = (file.language, file.symbols)
        return known

    def _remember(self, entry: _Entry) -> None:
        self._maps[entry.map.tree_id] = entry
        self._maps.move_to_end(entry.map.tree_id)
        while len(self._maps) > MEMORY_MAPS:
            self._maps.popitem(last=False)

    def _cache_path(self, tree_id: str) -> Path:
        return self._cache_dir / f"{tree_id}.json"


def _head_tree(worktree: Path) -> str:
    try:
        return _git(worktree, "rev-parse", "--verify", "--quiet", "HEAD^{tree}").decode().strip()
    except RepoMapError as exc:
        if exc.returncode == 1:  # --verify --quiet: a repository without commits
            return EMPTY_TREE
        raise


def _list_tree(worktree: Path, tree_id: str) -> list[_Blob]:
    """Regular files and symlinks of the tree (not submodules), in git's path order."""
    output = _git(worktree, "ls-tree", "-r", "-l", "-z", "--full-tree", tree_id)
    blobs: list[_Blob] = []
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, blob, size = meta.split()
        if kind != b"blob":
            continue
        path = raw_path.decode("utf-8", errors="surrogateescape")
        hint = None if mode == b"120000" else language_for(path)
        blobs.append(_Blob(path, blob.decode(), int(size), hint))
    return blobs


def _ancestor_trees(worktree: Path) -> list[str]:
    try:
        output = _git(worktree, "log", f"-{ANCESTORS_SEARCHED}", "--format=%T", "HEAD")
    except RepoMapError:
        return []
    return output.decode().split()


def _git(worktree: Path, *args: str) -> bytes:
    result = subprocess.run(
        ["git", "-C", str(worktree), *args], capture_output=True, env=git_env(), check=False
    )
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", errors="replace")
        raise RepoMapError(f"git {args[0]} failed in {worktree}: {stderr[-500:].strip()}",
                           result.returncode)  # fmt: skip
    return result.stdout


def _readable(blob: _Blob) -> bool:
    return blob.hint is not None and blob.size <= MAX_FILE_BYTES


def _key(blob: _Blob) -> _BlobKey:
    return blob.blob, blob.hint or ""


def _split(todo: list[_Blob], count: int) -> list[list[_Blob]]:
    """Split into `count` lists of about equal total size, biggest files first."""
    chunks: list[list[_Blob]] = [[] for _ in range(count)]
    sizes = [0] * count
    for blob in sorted(todo, key=lambda b: b.size, reverse=True):
        smallest = sizes.index(min(sizes))
        chunks[smallest].append(blob)
        sizes[smallest] += blob.size + 2000  # per-file overhead, so many tiny files spread too
    return [chunk for chunk in chunks if chunk]


def _file_symbols(path: str, parsed: Parsed) -> FileSymbols:
    if parsed is None:
        return FileSymbols(path, "", ())
    language, raw = parsed
    return FileSymbols(path, language, tuple(Symbol(*symbol) for symbol in raw))


def _entry(repo_map: RepoMap, blobs: tuple[str, ...]) -> _Entry:
    """Wrap a map for the caches, building its lookup indexes now, off the event loop."""
    repo_map.symbol_names()
    repo_map.files_by_name()
    repo_map.files_by_path_word()
    repo_map.files_by_density()
    languages = Counter(f.language for f in repo_map.files if f.language)
    symbols = sum(len(f.symbols) for f in repo_map.files)
    return _Entry(repo_map, blobs, symbols, dict(languages.most_common()))


def _stats(entry: _Entry, started: float, *, cached: bool, parsed: int) -> MapStats:
    return MapStats(
        tree_id=entry.map.tree_id,
        cached=cached,
        seconds=time.perf_counter() - started,
        files=len(entry.map.files),
        parsed=parsed,
        symbols=entry.symbols,
        languages=dict(entry.languages),
    )


def _save(path: Path, entry: _Entry) -> None:
    """Write the entry as JSON atomically: a temporary file renamed into place."""
    files = [
        [f.path, blob, f.language, [[s.name, s.kind, s.line, s.parent] for s in f.symbols]]
        for f, blob in zip(entry.map.files, entry.blobs, strict=True)
    ]
    document = {"version": CACHE_VERSION, "tree_id": entry.map.tree_id, "files": files}
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".map-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load(path: Path) -> _Entry | None:
    """The entry cached at `path`; None when absent, unreadable or of another version."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("version") != CACHE_VERSION:
        return None
    try:
        items: list[Any] = document["files"]
        files = tuple(
            FileSymbols(path, language, tuple([Symbol(*s) for s in symbols]))
            for path, _, language, symbols in items
        )
        blobs = tuple([item[1] for item in items])
        return _entry(RepoMap(document["tree_id"], files), blobs)
    except (KeyError, IndexError, TypeError, ValueError):
        log.warning("ignoring a damaged repo map cache", extra={"path": str(path)})
        return None
