"""Mentions of the task, hits, ranking and rendering within a budget."""

from __future__ import annotations

from pathlib import Path

from tests.worker.repo_maps import map_of
from worker.repo_map import (
    FileSymbols,
    Mentions,
    RepoMap,
    Symbol,
    hits,
    mentions,
    ranked_files,
    render,
)


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
    repo_map = map_of(tmp_path / "repo", RANKED_REPO)
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
    repo_map = map_of(tmp_path / "repo", RANKED_REPO)
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
    repo_map = map_of(tmp_path / "repo", files)
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
    repo_map = map_of(tmp_path / "repo", {**files, "small.py": "def tiny():\n    pass\n"})
    rendered = render(repo_map, "function_0 in big.py", budget_chars=2000)
    assert len(rendered.text) <= 2000
    assert rendered.text.startswith("big.py\n     1 def function_0\n")
    assert "more symbols\n" in rendered.text
    assert "small.py\n" in rendered.text  # one big file does not starve the others
    assert (rendered.files_shown, rendered.files_total) == (2, 2)
