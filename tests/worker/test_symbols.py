"""Symbols per language from the real grammars, the regex fallback and shebangs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker.repo_maps import EXPECTED, REGEX_SOURCES, SOURCES, file_of, map_of, tuples
from worker.repo_map import (
    FileSymbols,
    RepoMap,
)


@pytest.fixture(scope="module")
def polyglot(tmp_path_factory: pytest.TempPathFactory) -> RepoMap:
    return map_of(tmp_path_factory.mktemp("polyglot") / "repo", SOURCES)


@pytest.mark.parametrize(("path", "language", "expected"), EXPECTED, ids=[e[1] for e in EXPECTED])
def test_symbols_of_each_language(
    polyglot: RepoMap, path: str, language: str, expected: set[tuple[str, str, str | None, int]]
) -> None:
    file = file_of(polyglot, path)
    assert file.language == language
    assert expected <= tuples(file), expected - tuples(file)


def test_function_bodies_and_variables_are_not_symbols(polyglot: RepoMap) -> None:
    names = {s.name for f in polyglot.files for s in f.symbols}
    assert {"inner", "nested", "count", "os", "x"}.isdisjoint(names)
    assert len(EXPECTED) == 13  # 12 grammar packages; typescript brings tsx too
    assert polyglot.symbol_names() >= {"Cart", "makeCircle", "NewStore", "Deposit", "max_of"}


def test_regex_fallback_for_other_languages(tmp_path: Path) -> None:
    repo_map = map_of(tmp_path / "repo", {**REGEX_SOURCES, "notes.txt": "class Nope\n"})
    assert tuples(file_of(repo_map, "android/Cart.kt")) >= {
        ("Item", "class", None, 3), ("Cart", "class", None, 5),
        ("add", "method", "Cart", 6), ("sync", "method", "Cart", 7),
        ("topLevel", "function", None, 10),
    }  # fmt: skip
    assert file_of(repo_map, "android/Cart.kt").language == "kotlin"
    assert tuples(file_of(repo_map, "ios/Cart.swift")) >= {
        ("Item", "struct", None, 1), ("Priced", "interface", None, 2),
        ("price", "method", "Priced", 3), ("Cart", "class", None, 5),
        ("add", "method", "Cart", 6),
    }  # fmt: skip
    assert tuples(file_of(repo_map, "game/util.lua")) >= {
        ("M.clamp", "function", None, 2), ("helper", "function", None, 3),
    }  # fmt: skip
    assert tuples(file_of(repo_map, "lib/cart.ex")) == {
        ("Shop.Cart", "module", None, 1), ("add", "function", "Shop.Cart", 2),
        ("secret", "function", "Shop.Cart", 3),
    }  # fmt: skip
    notes = file_of(repo_map, "notes.txt")  # prose is never scanned for declarations
    assert (notes.language, notes.symbols) == ("", ())


def test_scripts_without_extension_are_read_by_their_shebang(tmp_path: Path) -> None:
    repo_map = map_of(
        tmp_path / "repo",
        {
            "bin/tool": "#!/usr/bin/env python3\nclass Tool:\n    def run(self):\n        pass\n",
            "bin/setup": "#!/bin/sh\ninstall() { :; }\n",
            "LICENSE": "class action lawsuit\n",
        },
    )
    assert tuples(file_of(repo_map, "bin/tool")) == {
        ("Tool", "class", None, 2), ("run", "method", "Tool", 3),
    }  # fmt: skip
    assert file_of(repo_map, "bin/tool").language == "python"
    assert tuples(file_of(repo_map, "bin/setup")) == {("install", "function", None, 2)}
    assert file_of(repo_map, "LICENSE") == FileSymbols("LICENSE", "", ())
