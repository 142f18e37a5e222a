"""The repo map: real git repositories, what is read, and the caches."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.gitrepos import commit_file, git, make_repo
from tests.worker.repo_maps import REGEX_SOURCES, SOURCES, file_of, tuples
from worker import repo_map as repo_map_module
from worker.repo_map import (
    RepoMapError,
    RepoMapper,
)
from worker.symbols import MAX_FILE_BYTES, MAX_GRAMMAR_BYTES


async def test_only_the_committed_tree_is_mapped(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {".gitignore": "build/\n*.log\n", "app.py": "def committed():\n    pass\n"},
    )
    (repo / "build").mkdir()
    (repo / "build" / "generated.py").write_text("def generated():\n    pass\n")
    (repo / "debug.log").write_text("def logged():\n")
    (repo / "new.py").write_text("def untracked():\n    pass\n")
    (repo / "app.py").write_text("def edited_but_not_committed():\n    pass\n")
    repo_map, stats = await RepoMapper(tmp_path / "cache").build(repo)
    assert repo_map.paths() == {".gitignore", "app.py"}
    assert repo_map.symbol_names() == {"committed"}
    assert repo_map.tree_id == git(repo, "rev-parse", "HEAD^{tree}")
    assert (stats.files, stats.parsed, stats.symbols) == (2, 1, 1)
    assert stats.languages == {"python": 1}


async def test_binary_huge_and_minified_files_are_skipped(tmp_path: Path) -> None:
    big_but_parsed = "class Big:\n    def method(self):\n        pass\n" + "x = 1\n" * (
        MAX_GRAMMAR_BYTES // 6
    )
    repo = make_repo(
        tmp_path / "repo",
        {
            "huge.py": "def too_big():\n    pass\n" + "#" * MAX_FILE_BYTES,
            "big.py": big_but_parsed,
            "web/app.min.js": "function minifiedByName(){}\n",
            "web/bundle.js": "function a(){return 1};" * 400,
            "node_modules/lib/index.js": "function vendored() {}\n",
            "small.py": "def small():\n    pass\n",
        },
    )
    (repo / "blob.py").write_bytes(b"def binary():\n\x00\x01\x02" + bytes(range(256)))
    git(repo, "add", "blob.py")
    git(repo, "commit", "-q", "-m", "binary")
    repo_map, stats = await RepoMapper(tmp_path / "cache").build(repo)
    assert len(repo_map.files) == 7  # skipped files are listed, without symbols
    by_path = {f.path: f for f in repo_map.files}
    for skipped in ("huge.py", "web/app.min.js", "web/bundle.js", "node_modules/lib/index.js",
                    "blob.py"):  # fmt: skip
        assert (by_path[skipped].language, by_path[skipped].symbols) == ("", ()), skipped
    assert tuples(by_path["big.py"]) == {("Big", "class", None, 1), ("method", "method", "Big", 2)}
    assert by_path["big.py"].language == "python"
    assert repo_map.symbol_names() == {"Big", "method", "small"}
    # huge.py, app.min.js and node_modules are never read; bundle.js and blob.py are read
    assert stats.parsed == 4


async def test_same_tree_again_reads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", SOURCES)
    mapper = RepoMapper(tmp_path / "cache")
    first, cold = await mapper.build(repo)
    assert not cold.cached
    assert cold.parsed == len(SOURCES)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached tree must not be read")

    monkeypatch.setattr(repo_map_module, "parse_blobs", no_reading)
    monkeypatch.setattr(repo_map_module, "parse_in_children", no_reading)
    monkeypatch.setattr(repo_map_module, "_list_tree", no_reading)
    second, warm = await mapper.build(repo)
    assert second is first
    assert warm.cached
    assert warm.parsed == 0
    assert (warm.files, warm.symbols, warm.languages) == (cold.files, cold.symbols, cold.languages)
    assert warm.seconds < cold.seconds
    # Given the tree (the workspace knows it), no git command at all.
    monkeypatch.setattr(repo_map_module, "_head_tree", no_reading)
    third, given = await mapper.build(repo, tree_id=first.tree_id)
    assert third is first
    assert given.cached


async def test_disk_cache_serves_a_new_mapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", SOURCES)
    first, _ = await RepoMapper(tmp_path / "cache").build(repo)
    assert (tmp_path / "cache" / f"{first.tree_id}.json").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{first.tree_id}.json"]

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a tree cached on disk must not be read")

    monkeypatch.setattr(repo_map_module, "parse_blobs", no_reading)
    monkeypatch.setattr(repo_map_module, "_list_tree", no_reading)
    second, stats = await RepoMapper(tmp_path / "cache").build(repo)
    assert second == first
    assert (stats.cached, stats.parsed) == (True, 0)


async def test_a_damaged_disk_cache_is_rebuilt(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "def a():\n    pass\n"})
    first, _ = await RepoMapper(tmp_path / "cache").build(repo)
    (tmp_path / "cache" / f"{first.tree_id}.json").write_text('{"version": 1, "files": [[1]]')
    second, stats = await RepoMapper(tmp_path / "cache").build(repo)
    assert second == first
    assert (stats.cached, stats.parsed) == (False, 1)
    document = json.loads((tmp_path / "cache" / f"{first.tree_id}.json").read_text())
    assert document["tree_id"] == first.tree_id


@pytest.mark.parametrize("fresh_mapper", [False, True], ids=["same-mapper", "new-mapper"])
async def test_a_one_file_change_parses_one_file(tmp_path: Path, fresh_mapper: bool) -> None:
    repo = make_repo(tmp_path / "repo", SOURCES)
    mapper = RepoMapper(tmp_path / "cache")
    before, _ = await mapper.build(repo)
    commit_file(repo, "shop/cart.py", "class Cart:\n    def remove(self):\n        pass\n", "edit")
    if fresh_mapper:  # a restarted worker finds HEAD~1's map on disk
        mapper = RepoMapper(tmp_path / "cache")
    after, stats = await mapper.build(repo)
    assert after.tree_id != before.tree_id
    assert (stats.cached, stats.parsed, stats.files) == (False, 1, len(SOURCES))
    assert tuples(file_of(after, "shop/cart.py")) == {
        ("Cart", "class", None, 1), ("remove", "method", "Cart", 2),
    }  # fmt: skip
    assert file_of(after, "geo/lib.rs") == file_of(before, "geo/lib.rs")


async def test_child_processes_give_the_same_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", {**SOURCES, **REGEX_SOURCES})
    inline, _ = await RepoMapper(tmp_path / "inline", workers=1).build(repo)
    monkeypatch.setattr(repo_map_module, "POOL_MIN_FILES", 0)
    monkeypatch.setattr(repo_map_module, "POOL_MIN_BYTES", 0)

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("with workers=2 the children parse")

    monkeypatch.setattr(repo_map_module, "parse_blobs", not_here)
    pooled, stats = await RepoMapper(tmp_path / "pooled", workers=2).build(repo)
    assert pooled == inline
    assert stats.parsed == len(SOURCES) + len(REGEX_SOURCES)


async def test_a_repository_without_commits_maps_as_empty(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("def a():\n    pass\n")
    repo_map, stats = await RepoMapper(tmp_path / "cache").build(repo)
    assert (repo_map.files, stats.files, stats.parsed) == ((), 0, 0)


async def test_concurrent_builds_of_one_tree_parse_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", SOURCES)
    mapper = RepoMapper(tmp_path / "cache")
    (one, first), (two, second) = await asyncio.gather(mapper.build(repo), mapper.build(repo))
    assert one is two
    assert sorted([first.parsed, second.parsed]) == [0, len(SOURCES)]
    assert sorted([first.cached, second.cached]) == [False, True]


async def test_a_directory_that_is_no_repository_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(RepoMapError, match="git rev-parse failed"):
        await RepoMapper(tmp_path / "cache").build(tmp_path / "plain")
