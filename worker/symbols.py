"""What a repository defines: Symbol, FileSymbols, RepoMap, and reading symbols from bytes.

`language_for(path)` decides from the path alone whether a file is worth reading at all;
`extract(hint, data)` then reads its symbols with a tree-sitter grammar
(`worker.repo_map_grammars`) or, for other code files (Kotlin, Swift, Scala, Lua,
Elixir...) and files over MAX_GRAMMAR_BYTES, with line regexes. Binary and minified files
yield nothing; files without an extension are read as their shebang line says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from worker.repo_map_grammars import GRAMMAR_LANGUAGES, RawSymbol, parse_symbols

MAX_FILE_BYTES = 1_000_000
# Bigger files are mostly generated (tables, bindings) and cost a grammar ~0.1 s each: the
# line regexes read them instead, 20 times faster.
MAX_GRAMMAR_BYTES = 200_000
SHEBANG = "#!"  # hint for files without an extension: the first line decides

_BINARY_SNIFF_BYTES = 8192
_MINIFIED_SAMPLE_BYTES = 65536
_MINIFIED_AVERAGE_LINE = 250
_MAX_REGEX_SYMBOLS = 5000
_SKIPPED_DIRECTORIES = frozenset({"node_modules", "bower_components", "vendor"})

_GRAMMAR_EXTENSIONS = {
    "py": "python", "pyi": "python", "pyw": "python",
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "jsx": "javascript",
    "ts": "typescript", "mts": "typescript", "cts": "typescript", "tsx": "tsx",
    "go": "go", "rs": "rust", "java": "java", "cs": "csharp",
    "rb": "ruby", "rake": "ruby", "gemspec": "ruby", "php": "php",
    "c": "c", "h": "cpp", "cc": "cpp", "cpp": "cpp", "cxx": "cpp", "c++": "cpp",
    "hpp": "cpp", "hh": "cpp", "hxx": "cpp", "ipp": "cpp", "inl": "cpp",
    "sh": "bash", "bash": "bash", "zsh": "bash", "ksh": "bash",
}  # fmt: skip
_REGEX_EXTENSIONS = {
    "kt": "kotlin", "kts": "kotlin", "swift": "swift", "scala": "scala", "sc": "scala",
    "lua": "lua", "ex": "elixir", "exs": "elixir", "erl": "erlang", "hrl": "erlang",
    "dart": "dart", "groovy": "groovy", "gradle": "groovy", "pl": "perl", "pm": "perl",
    "r": "r", "jl": "julia", "hs": "haskell", "ml": "ocaml", "mli": "ocaml",
    "fs": "fsharp", "fsx": "fsharp", "clj": "clojure", "cljs": "clojure", "zig": "zig",
    "nim": "nim", "cr": "crystal", "sol": "solidity", "m": "objc", "mm": "objc",
    "proto": "protobuf", "graphql": "graphql", "gql": "graphql", "elm": "elm",
    "vue": "vue", "svelte": "svelte", "ps1": "powershell", "tcl": "tcl", "vb": "vb",
    "pas": "pascal", "d": "d", "f90": "fortran", "cls": "apex", "gd": "gdscript",
}  # fmt: skip
_FILE_NAMES = {"Rakefile": "ruby", "Gemfile": "ruby", "Vagrantfile": "ruby", "Podfile": "ruby"}
_INTERPRETERS = {
    "python": "python", "bash": "bash", "sh": "bash", "zsh": "bash", "dash": "bash",
    "ksh": "bash", "node": "javascript", "nodejs": "javascript", "deno": "javascript",
    "bun": "javascript", "ruby": "ruby", "php": "php",
}  # fmt: skip

_REGEX_KINDS = {
    "fun": "function", "func": "function", "function": "function", "def": "function",
    "defp": "function", "defmacro": "function", "fn": "function", "proc": "function",
    "sub": "function", "class": "class", "object": "class", "actor": "class",
    "extension": "class", "record": "record", "struct": "struct", "interface": "interface",
    "protocol": "interface", "defprotocol": "interface", "trait": "trait", "enum": "enum",
    "module": "module", "defmodule": "module", "type": "type", "typealias": "type",
    "message": "struct", "service": "interface", "contract": "class", "library": "module",
}  # fmt: skip
_REGEX_DECLARATION = re.compile(
    r"^(?P<indent>[ \t]*)(?:@\w+(?:\([^)\n]*\))?[ \t]+)*"
    r"(?:(?:public|private|protected|internal|open|abstract|final|sealed|data|inline|static"
    r"|export|async|override|suspend|pub|local|case|enum|annotation|inner|value|fileprivate"
    r"|mutating|partial|virtual|extern|unsafe|lazy|implicit|companion|global|indirect)[ \t]+)*"
    r"(?P<keyword>" + "|".join(sorted(_REGEX_KINDS, key=len, reverse=True)) + r")"
    r"[ \t]+(?:<[^>\n]*>[ \t]*)?(?P<name>[A-Za-z_][\w.:]*[!?]?)",
    re.MULTILINE,
)
_TYPE_KINDS = frozenset({"class", "struct", "interface", "trait", "enum", "record"})
_CONTAINER_KINDS = _TYPE_KINDS | {"module"}
_PATH_WORD_SPLIT = re.compile(r"[_\-.\s]+")


@dataclass(frozen=True, slots=True)
class Symbol:
    """One definition: `kind` is class, function, method, type, interface, trait, enum..."""

    name: str
    kind: str
    line: int
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class FileSymbols:
    """The symbols of one tracked file; language "" when no parser or regex found any."""

    path: str
    language: str
    symbols: tuple[Symbol, ...]


@dataclass(frozen=True, slots=True)
class RepoMap:
    """Every tracked file of one git tree, with its symbols."""

    tree_id: str
    files: tuple[FileSymbols, ...]
    _names: dict[str, list[int]] | None = field(default=None, init=False, repr=False, compare=False)
    _name_set: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)
    _paths: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)
    _file_names: dict[str, list[int]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _path_words: dict[str, list[int]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _density: list[int] | None = field(default=None, init=False, repr=False, compare=False)

    def symbol_names(self) -> frozenset[str]:
        """Every symbol name defined anywhere in the tree (computed once)."""
        names = self._name_set
        if names is None:
            names = frozenset(self.files_by_symbol())
            object.__setattr__(self, "_name_set", names)
        return names

    def files_by_symbol(self) -> Mapping[str, Sequence[int]]:
        """Symbol name -> indexes into `files` of the files defining it (computed once)."""
        names = self._names
        if names is None:
            names = {}
            for number, file in enumerate(self.files):
                for name in {symbol.name for symbol in file.symbols}:
                    found = names.get(name)
                    if found is None:
                        names[name] = [number]
                    else:
                        found.append(number)
            object.__setattr__(self, "_names", names)
        return names

    def files_by_name(self) -> Mapping[str, Sequence[int]]:
        """Lowercased file name and stem (`app.py`, `app`) -> indexes into `files`."""
        names = self._file_names
        if names is None:
            index: dict[str, list[int]] = {}
            for number, file in enumerate(self.files):
                name = file.path.rpartition("/")[2].lower()
                stem = name.partition(".")[0] if not name.startswith(".") else name
                for key in {name, stem}:
                    index.setdefault(key, []).append(number)
            names = index
            object.__setattr__(self, "_file_names", names)
        return names

    def files_by_path_word(self) -> Mapping[str, Sequence[int]]:
        """Lowercased directory names and parts of file stems (`repo_map` -> `repo`, `map`)."""
        words = self._path_words
        if words is None:
            index: dict[str, list[int]] = {}
            for number, file in enumerate(self.files):
                *directories, name = file.path.lower().split("/")
                found = set(directories)
                found.update(_PATH_WORD_SPLIT.split(name.partition(".")[0]))
                found.discard("")
                for word in found:
                    index.setdefault(word, []).append(number)
            words = index
            object.__setattr__(self, "_path_words", words)
        return words

    def files_by_density(self) -> Sequence[int]:
        """Indexes into `files`, most symbols first, then by path (computed once)."""
        order = self._density
        if order is None:
            files = self.files
            order = sorted(range(len(files)), key=lambda n: (-len(files[n].symbols), files[n].path))
            object.__setattr__(self, "_density", order)
        return order

    def paths(self) -> frozenset[str]:
        """Every tracked path of the tree."""
        paths = self._paths
        if paths is None:
            paths = frozenset(file.path for file in self.files)
            object.__setattr__(self, "_paths", paths)
        return paths


def language_for(path: str) -> str | None:
    """The language to read `path` as, SHEBANG to decide from its first line, or None to skip."""
    *directories, name = path.split("/")
    if directories and not _SKIPPED_DIRECTORIES.isdisjoint(directories):
        return None
    if ".min." in name or name.endswith("-min.js"):
        return None
    if name in _FILE_NAMES:
        return _FILE_NAMES[name]
    stem, dot, extension = name.rpartition(".")
    if not dot:
        return SHEBANG
    if not stem:
        return None  # .gitignore, .env: configuration, not code
    extension = extension.lower()
    return _GRAMMAR_EXTENSIONS.get(extension) or _REGEX_EXTENSIONS.get(extension)


def extract(hint: str, data: bytes) -> tuple[str, list[RawSymbol]] | None:
    """(language, symbols) of a file read as `hint` (from language_for); None if skipped.

    The language is "" when neither a grammar nor the regexes apply or found anything.
    """
    if b"\0" in data[:_BINARY_SNIFF_BYTES] or _looks_minified(data):
        return None
    if hint == SHEBANG:
        language = _shebang_language(data)
        if language is None:
            return "", []
        hint = language
    if hint in GRAMMAR_LANGUAGES and len(data) <= MAX_GRAMMAR_BYTES:
        return hint, parse_symbols(hint, data)
    found = regex_symbols(data.decode("utf-8", errors="replace"))
    return (hint if found or hint in GRAMMAR_LANGUAGES else ""), found


def regex_symbols(text: str) -> list[RawSymbol]:
    """Declarations found by keyword (`fun x(`, `def x`, `class X`...); parents by indentation."""
    out: list[RawSymbol] = []
    stack: list[tuple[int, str, str]] = []  # (indent width, name, kind) of open containers
    line, position = 1, 0
    for match in _REGEX_DECLARATION.finditer(text):
        line += text.count("\n", position, match.start())
        position = match.start()
        width = len(match["indent"].expandtabs(4))
        while stack and stack[-1][0] >= width:
            stack.pop()
        kind = _REGEX_KINDS[match["keyword"]]
        parent, parent_kind = (stack[-1][1], stack[-1][2]) if stack else (None, "")
        if kind == "function" and parent_kind in _TYPE_KINDS:
            kind = "method"
        name = match["name"].rstrip(".:")
        out.append((name, kind, line, parent))
        if kind in _CONTAINER_KINDS:
            stack.append((width, name, kind))
        if len(out) >= _MAX_REGEX_SYMBOLS:
            break
    return out


def _looks_minified(data: bytes) -> bool:
    sample = data[:_MINIFIED_SAMPLE_BYTES]
    lines = sample.count(b"\n") + 1
    return len(sample) > 1000 and len(sample) / lines > _MINIFIED_AVERAGE_LINE


def _shebang_language(data: bytes) -> str | None:
    if not data.startswith(b"#!"):
        return None
    first_line = data[2:].split(b"\n", 1)[0]
    words = first_line.decode("utf-8", errors="replace").split()
    if words and words[0].endswith("/env"):
        words = [w for w in words[1:] if not w.startswith("-")]
    if not words:
        return None
    program = PurePosixPath(words[0]).name.rstrip("0123456789.")
    return _INTERPRETERS.get(program)
