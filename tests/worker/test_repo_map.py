"""The repo map: real grammars, real git repositories, the caches, ranking and rendering."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.gitrepos import commit_file, git, make_repo
from worker import repo_map as repo_map_module
from worker.repo_map import (
    FileSymbols,
    Mentions,
    RepoMap,
    RepoMapError,
    RepoMapper,
    Symbol,
    hits,
    mentions,
    ranked_files,
    render,
)
from worker.symbols import MAX_FILE_BYTES, MAX_GRAMMAR_BYTES

SOURCES: dict[str, str] = {
    "shop/cart.py": '''\
import os


class Cart(Base):
    """A cart."""

    def add(self, item):
        def inner():
            pass

    @property
    def total(self):
        return 0


@decorator
def checkout(cart):
    pass


type Money = int
''',
    "web/app.js": """\
import x from 'y';
export class Cart extends Base { add(item) {} get total() { return 0 } }
function helper() { function nested() {} }
export const fetcher = async () => {};
let count = 3;
""",
    "web/shapes.ts": """\
export interface Shape { area(): number }
export type Id = string | number;
export enum Color { Red, Green }
export class Circle implements Shape {
  constructor(private r: number) {}
  area(): number { return 3.14 * this.r * this.r }
}
export function makeCircle(r: number): Circle { return new Circle(r) }
""",
    "web/Button.tsx": """\
type Props = { label: string };
export function Button({ label }: Props) { return <button>{label}</button>; }
export class Panel extends React.Component<Props> { render() { return <div/>; } }
""",
    "store/store.go": """\
package store

type Store struct { items []string }
type Reader interface { Read() error }
type ID = int

func NewStore() *Store { return &Store{} }
func (s *Store) Add(x string) { s.items = append(s.items, x) }
""",
    "geo/lib.rs": """\
pub struct Point { x: i32 }
pub enum Shape { Circle, Square }
pub trait Area { fn area(&self) -> f64; }
impl Area for Point { fn area(&self) -> f64 { 0.0 } }
pub type Alias = Vec<i32>;
pub fn main() {}
""",
    "src/Cart.java": """\
package com.shop;
public class Cart<T> {
  public Cart() {}
  public void add(T item) {}
  static class Inner { void go() {} }
}
interface Priced { double price(); }
enum Size { SMALL, LARGE; int code() { return 0; } }
record Pair(int a, int b) {}
""",
    "src/Money.cs": """\
namespace Shop.Core {
  public class Wallet { public void Deposit(int x) {} }
  public interface IPriced { decimal Price(); }
  public struct Money { }
  public enum Currency { Usd, Eur }
}
""",
    "lib/shop.rb": """\
module Shop
  class Basket < Base
    def add(item); end
    def self.build; end
  end
end
def top_level; end
""",
    "app/Models.php": """\
<?php
namespace App\\Models;
interface Priced { public function price(): float; }
trait Stamps { public function stamp() {} }
enum Suit: string { case Hearts = 'H'; }
class Order implements Priced { public function price(): float { return 0; } }
function helper() {}
""",
    "c/point.c": """\
#include <stdio.h>
struct point { int x; };
typedef struct { int a; } pair_t;
enum color { RED, GREEN };
static int add(int a, int b) { return a + b; }
int proto(int x);
""",
    "cpp/shape.cpp": """\
namespace geo {
class Shape {
 public:
  virtual double area() const = 0;
  void move(int dx) { x += dx; }
 private:
  int x;
};
struct Vec { double norm() const; };
}
double geo::Vec::norm() const { return 0; }
template <typename T> T max_of(T a, T b) { return a; }
""",
    "scripts/deploy.sh": """\
#!/bin/bash
build() { echo hi; }
function deploy { echo x; }
""",
}

# (path, language, symbols that must be there as (name, kind, parent, line))
EXPECTED: list[tuple[str, str, set[tuple[str, str, str | None, int]]]] = [
    ("shop/cart.py", "python", {
        ("Cart", "class", None, 4), ("add", "method", "Cart", 7),
        ("total", "method", "Cart", 12), ("checkout", "function", None, 17),
        ("Money", "type", None, 21),
    }),
    ("web/app.js", "javascript", {
        ("Cart", "class", None, 2), ("add", "method", "Cart", 2),
        ("helper", "function", None, 3), ("fetcher", "function", None, 4),
    }),
    ("web/shapes.ts", "typescript", {
        ("Shape", "interface", None, 1), ("area", "method", "Shape", 1), ("Id", "type", None, 2),
        ("Color", "enum", None, 3), ("Circle", "class", None, 4),
        ("area", "method", "Circle", 6), ("makeCircle", "function", None, 8),
    }),
    ("web/Button.tsx", "tsx", {
        ("Props", "type", None, 1), ("Button", "function", None, 2),
        ("Panel", "class", None, 3), ("render", "method", "Panel", 3),
    }),
    ("store/store.go", "go", {
        ("Store", "struct", None, 3), ("Reader", "interface", None, 4), ("ID", "type", None, 5),
        ("NewStore", "function", None, 7), ("Add", "method", "Store", 8),
    }),
    ("geo/lib.rs", "rust", {
        ("Point", "struct", None, 1), ("Shape", "enum", None, 2), ("Area", "trait", None, 3),
        ("area", "method", "Area", 3), ("area", "method", "Point", 4),
        ("Alias", "type", None, 5), ("main", "function", None, 6),
    }),
    ("src/Cart.java", "java", {
        ("Cart", "class", None, 2), ("add", "method", "Cart", 4), ("Inner", "class", "Cart", 5),
        ("go", "method", "Inner", 5), ("Priced", "interface", None, 7),
        ("Size", "enum", None, 8), ("code", "method", "Size", 8), ("Pair", "record", None, 9),
    }),
    ("src/Money.cs", "csharp", {
        ("Shop.Core", "namespace", None, 1), ("Wallet", "class", "Shop.Core", 2),
        ("Deposit", "method", "Wallet", 2), ("IPriced", "interface", "Shop.Core", 3),
        ("Money", "struct", "Shop.Core", 4), ("Currency", "enum", "Shop.Core", 5),
    }),
    ("lib/shop.rb", "ruby", {
        ("Shop", "module", None, 1), ("Basket", "class", "Shop", 2),
        ("add", "method", "Basket", 3), ("build", "method", "Basket", 4),
        ("top_level", "function", None, 7),
    }),
    ("app/Models.php", "php", {
        ("Priced", "interface", None, 3), ("Stamps", "trait", None, 4),
        ("stamp", "method", "Stamps", 4), ("Suit", "enum", None, 5),
        ("Order", "class", None, 6), ("price", "method", "Order", 6),
        ("helper", "function", None, 7),
    }),
    ("c/point.c", "c", {
        ("point", "struct", None, 2), ("pair_t", "struct", None, 3),
        ("color", "enum", None, 4), ("add", "function", None, 5), ("proto", "function", None, 6),
    }),
    ("cpp/shape.cpp", "cpp", {
        ("geo", "namespace", None, 1), ("Shape", "class", "geo", 2),
        ("area", "method", "Shape", 4), ("move", "method", "Shape", 5),
        ("Vec", "struct", "geo", 9), ("norm", "method", "Vec", 11),
        ("max_of", "function", None, 12),
    }),
    ("scripts/deploy.sh", "bash", {
        ("build", "function", None, 2), ("deploy", "function", None, 3),
    }),
]  # fmt: skip

REGEX_SOURCES = {
    "android/Cart.kt": """\
package shop

data class Item(val name: String)

class Cart {
    fun add(item: Item) {}
    private suspend fun sync() {}
}

fun topLevel() = 1
""",
    "ios/Cart.swift": """\
struct Item { let name: String }
protocol Priced {
    func price() -> Double
}
final class Cart {
    func add(_ item: Item) {}
}
""",
    "game/util.lua": """\
local M = {}
function M.clamp(x, lo, hi) end
local function helper() end
""",
    "lib/cart.ex": """\
defmodule Shop.Cart do
  def add(cart, item), do: [item | cart]
  defp secret, do: :ok
end
""",
}


def _map_of(root: Path, files: dict[str, str], cache: Path | None = None) -> RepoMap:
    repo = make_repo(root, files)
    repo_map, _ = asyncio.run(RepoMapper(cache or root.parent / "cache").build(repo))
    return repo_map


def _file(repo_map: RepoMap, path: str) -> FileSymbols:
    return next(f for f in repo_map.files if f.path == path)


def _tuples(file: FileSymbols) -> set[tuple[str, str, str | None, int]]:
    return {(s.name, s.kind, s.parent, s.line) for s in file.symbols}


@pytest.fixture(scope="module")
def polyglot(tmp_path_factory: pytest.TempPathFactory) -> RepoMap:
    return _map_of(tmp_path_factory.mktemp("polyglot") / "repo", SOURCES)


@pytest.mark.parametrize(("path", "language", "expected"), EXPECTED, ids=[e[1] for e in EXPECTED])
def test_symbols_of_each_language(
    polyglot: RepoMap, path: str, language: str, expected: set[tuple[str, str, str | None, int]]
) -> None:
    file = _file(polyglot, path)
    assert file.language == language
    assert expected <= _tuples(file), expected - _tuples(file)


def test_function_bodies_and_variables_are_not_symbols(polyglot: RepoMap) -> None:
    names = {s.name for f in polyglot.files for s in f.symbols}
    assert {"inner", "nested", "count", "os", "x"}.isdisjoint(names)
    assert len(EXPECTED) == 13  # 12 grammar packages; typescript brings tsx too
    assert polyglot.symbol_names() >= {"Cart", "makeCircle", "NewStore", "Deposit", "max_of"}


def test_regex_fallback_for_other_languages(tmp_path: Path) -> None:
    repo_map = _map_of(tmp_path / "repo", {**REGEX_SOURCES, "notes.txt": "class Nope\n"})
    assert _tuples(_file(repo_map, "android/Cart.kt")) >= {
        ("Item", "class", None, 3), ("Cart", "class", None, 5),
        ("add", "method", "Cart", 6), ("sync", "method", "Cart", 7),
        ("topLevel", "function", None, 10),
    }  # fmt: skip
    assert _file(repo_map, "android/Cart.kt").language == "kotlin"
    assert _tuples(_file(repo_map, "ios/Cart.swift")) >= {
        ("Item", "struct", None, 1), ("Priced", "interface", None, 2),
        ("price", "method", "Priced", 3), ("Cart", "class", None, 5),
        ("add", "method", "Cart", 6),
    }  # fmt: skip
    assert _tuples(_file(repo_map, "game/util.lua")) >= {
        ("M.clamp", "function", None, 2), ("helper", "function", None, 3),
    }  # fmt: skip
    assert _tuples(_file(repo_map, "lib/cart.ex")) == {
        ("Shop.Cart", "module", None, 1), ("add", "function", "Shop.Cart", 2),
        ("secret", "function", "Shop.Cart", 3),
    }  # fmt: skip
    notes = _file(repo_map, "notes.txt")  # prose is never scanned for declarations
    assert (notes.language, notes.symbols) == ("", ())


def test_scripts_without_extension_are_read_by_their_shebang(tmp_path: Path) -> None:
    repo_map = _map_of(
        tmp_path / "repo",
        {
            "bin/tool": "#!/usr/bin/env python3\nclass Tool:\n    def run(self):\n        pass\n",
            "bin/setup": "#!/bin/sh\ninstall() { :; }\n",
            "LICENSE": "class action lawsuit\n",
        },
    )
    assert _tuples(_file(repo_map, "bin/tool")) == {
        ("Tool", "class", None, 2), ("run", "method", "Tool", 3),
    }  # fmt: skip
    assert _file(repo_map, "bin/tool").language == "python"
    assert _tuples(_file(repo_map, "bin/setup")) == {("install", "function", None, 2)}
    assert _file(repo_map, "LICENSE") == FileSymbols("LICENSE", "", ())


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
    assert _tuples(by_path["big.py"]) == {("Big", "class", None, 1), ("method", "method", "Big", 2)}
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
    assert _tuples(_file(after, "shop/cart.py")) == {
        ("Cart", "class", None, 1), ("remove", "method", "Cart", 2),
    }  # fmt: skip
    assert _file(after, "geo/lib.rs") == _file(before, "geo/lib.rs")


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


def test_mentions_finds_identifiers_and_paths() -> None:
    found = mentions(
        "Fix `RepoMapper.build` in src/worker/repo_map.py and README.md: the parse_blobs() "
        "helper breaks on HTTPServer; see pkg.mod.func, `render`, utils.ts and the Makefile. "
        "Also docs/guides/ and ./scripts/deploy.sh."
    )
    assert found.identifiers == {
        "RepoMapper.build", "parse_blobs", "HTTPServer", "pkg.mod.func", "render",
    }  # fmt: skip
    assert found.paths == {
        "src/worker/repo_map.py", "README.md", "utils.ts", "Makefile", "docs/guides",
        "scripts/deploy.sh",
    }  # fmt: skip


def test_mentions_ignores_prose_urls_and_stop_words() -> None:
    found = mentions(
        "The API is slow, e.g. on GitHub with JavaScript and/or TypeScript under Node.js "
        "3.11; see https://example.com/src/app.py for the `None` and `self` cases."
    )
    assert found == Mentions(frozenset(), frozenset())


def test_hits_counts_found_and_missing() -> None:
    repo_map = RepoMap(
        "t",
        (
            FileSymbols("src/app.py", "python", (Symbol("App", "class", 1),
                                                 Symbol("run", "method", 2, "App"))),
            FileSymbols("README.md", "", ()),
        ),
    )  # fmt: skip
    result = hits(
        repo_map,
        Mentions(
            identifiers=frozenset({"App", "app.App.run", "Missing"}),
            paths=frozenset({"app.py", "src/app.py", "README.md", "src", "other.py", "rc/app.py"}),
        ),
    )
    assert result.found == ("App", "app.App.run", "README.md", "app.py", "src", "src/app.py")
    assert result.missing == ("Missing", "other.py", "rc/app.py")
    assert result.rate == 6 / 9
    assert hits(repo_map, Mentions(frozenset(), frozenset())).rate is None


RANKED_REPO = {
    "src/billing/invoice.py": "class Invoice:\n    def total(self):\n        pass\n",
    "lib/money.py": "def format_money(cents):\n    pass\n",
    "src/utils.py": "".join(f"def helper_{n}():\n    pass\n" for n in range(8)),
    "src/payments/stripe_client.py": "def charge():\n    pass\n",
    "billing/notes.txt": "notes\n",
    "docs/README.md": "# docs\n",
}


def test_ranking_path_beats_name_beats_identifier_beats_density(tmp_path: Path) -> None:
    repo_map = _map_of(tmp_path / "repo", RANKED_REPO)
    ranked = ranked_files(
        repo_map,
        "Rounding is wrong in src/billing/invoice.py: `format_money` and stripe_client.py,"
        " as the billing notes say",
    )
    assert ranked[:4] == [
        "src/billing/invoice.py",  # exact path
        "src/payments/stripe_client.py",  # file name
        "lib/money.py",  # defines a mentioned identifier
        "billing/notes.txt",  # a directory named like a word of the task
    ]
    assert ranked[4] == "src/utils.py"  # in src/, like the mentioned path
    assert sorted(ranked) == sorted(RANKED_REPO)
    plain = ranked_files(repo_map, "nothing relevant")
    assert plain[0] == "src/utils.py"
    assert ranked_files(repo_map, "see `lib.money.format_money`")[0] == "lib/money.py"


def test_render_lists_symbols_in_rank_order(tmp_path: Path) -> None:
    repo_map = _map_of(tmp_path / "repo", RANKED_REPO)
    rendered = render(repo_map, "Fix Invoice.total in src/billing/invoice.py")
    assert rendered.text.startswith(
        "src/billing/invoice.py\n     1 class Invoice\n     2   def total\n"
    )
    assert (rendered.files_shown, rendered.files_total) == (6, 6)
    assert "more files" not in rendered.text
    assert "     1 def format_money\n" in rendered.text


def test_render_keeps_to_the_budget(tmp_path: Path) -> None:
    files = {
        f"pkg/module_{n:02}.py": f"class ThingHandler{n}:\n    def run(self):\n        pass\n"
        for n in range(40)
    }
    repo_map = _map_of(tmp_path / "repo", files)
    for budget in (120, 400, 1000):
        rendered = render(repo_map, "ThingHandler7 breaks", budget_chars=budget)
        assert len(rendered.text) <= budget
        assert rendered.text.startswith("pkg/module_07.py\n")
        assert rendered.files_total == 40
        assert 0 < rendered.files_shown < 40
        last = rendered.text.splitlines()[-1]
        assert last == f"… and {40 - rendered.files_shown} more files"
        assert rendered.text.count(".py\n") == rendered.files_shown


def test_render_cuts_a_huge_file_and_says_how_much(tmp_path: Path) -> None:
    files = {"big.py": "".join(f"def function_{n}():\n    pass\n" for n in range(300))}
    repo_map = _map_of(tmp_path / "repo", {**files, "small.py": "def tiny():\n    pass\n"})
    rendered = render(repo_map, "function_0 in big.py", budget_chars=2000)
    assert len(rendered.text) <= 2000
    assert rendered.text.startswith("big.py\n     1 def function_0\n")
    assert "more symbols\n" in rendered.text
    assert "small.py\n" in rendered.text  # one big file does not starve the others
    assert (rendered.files_shown, rendered.files_total) == (2, 2)
