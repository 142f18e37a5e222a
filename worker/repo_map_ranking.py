"""Which files of a RepoMap matter for a task, and the map text an agent reads.

`mentions(text)` pulls identifiers and paths out of a task; `ranked_files` orders the files
by how directly the task names them (exact path >> file name or stem >> defines a named
identifier >> a directory or stem part matches a word), ties broken by symbol count; and
`render` lays the ranked files out within a character budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.symbols import FileSymbols, RepoMap, Symbol

PATH_SCORE = 1000
NAME_SCORE = 100
IDENTIFIER_SCORE = 10
WORD_SCORE = 1

_EXTENSIONS = frozenset(
    {
        "py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx", "go", "rs", "java",
        "kt", "kts", "swift", "scala", "sc", "rb", "rake", "php", "c", "h", "cc", "cpp", "cxx",
        "hpp", "hh", "hxx", "cs", "sh", "bash", "zsh", "lua", "ex", "exs", "erl", "hrl", "hs",
        "ml", "mli", "dart", "r", "jl", "pl", "pm", "sql", "md", "rst", "txt", "json", "jsonc",
        "yaml", "yml", "toml", "ini", "cfg", "conf", "xml", "html", "htm", "css", "scss", "sass",
        "less", "vue", "svelte", "lock", "csv", "tsv", "env", "mk", "gradle", "proto", "graphql",
        "gql", "tf", "tfvars", "j2", "jinja", "jinja2", "tmpl", "tpl", "ipynb", "sol", "zig",
        "nim", "cr", "elm", "clj", "cljs", "fs", "fsx", "groovy", "ps1", "bat", "cmd", "rego",
        "sbt", "cabal", "nix", "dockerfile", "gitignore", "properties", "plist", "pyx", "pxd",
        "bzl", "cmake", "mod", "sum", "in", "cu"
    }
)  # fmt: skip
_FILE_NAMES = frozenset(
    {
        "Makefile", "Dockerfile", "Gemfile", "Rakefile", "Procfile", "Justfile", "Jenkinsfile",
        "Vagrantfile", "Containerfile", "LICENSE", "CODEOWNERS", "Brewfile", "Pipfile"
    }
)  # fmt: skip
_STOP_WORDS = frozenset(
    {
        "the", "a", "an", "and", "or", "not", "for", "with", "from", "into", "onto", "this",
        "that", "these", "those", "there", "then", "than", "when", "where", "which", "what",
        "who", "why", "how", "all", "any", "each", "some", "such", "use", "used", "using", "make",
        "makes", "add", "adds", "fix", "fixes", "should", "would", "could", "must", "can", "will",
        "may", "might", "also", "only", "just", "like", "e.g", "i.e", "etc", "vs", "via", "per",
        "is", "are", "was", "were", "be", "been", "being", "it", "its", "of", "on", "in", "at",
        "to", "by", "as", "if", "else", "true", "false", "none", "null", "nil", "self", "cls",
        "def", "class", "return", "import", "export", "const", "let", "var", "new", "function",
        "func", "fn", "pub", "todo", "fixme", "note", "see", "github", "gitlab", "bitbucket",
        "javascript", "typescript", "postgresql", "mysql", "sqlite", "mongodb", "openai", "ios",
        "macos", "iphone", "ipad", "youtube", "linkedin", "pypi", "oauth", "wordpress", "paypal",
        "devops", "chatgpt", "node.js", "next.js", "vue.js", "nuxt.js"
    }
)  # fmt: skip

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_BACKTICKED = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(
    r"(?<![\w@:/.-])(?:\.{1,2}/)?(?:[\w.-]+/)*[\w-][\w.-]*\.([A-Za-z][A-Za-z0-9]*)(?![\w/-])"
)
_DIRECTORY = re.compile(r"(?<![\w@:/.-])(?:\.{1,2}/)?(?:[\w.-]+/){2,}[\w.-]*|[\w.-]+/(?=\s|$)")
_DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\(")
_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
_CAMEL = re.compile(r"[a-z0-9][A-Z]|[A-Z]{2}[a-z]")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w]*(?:(?:\.|::)[A-Za-z_]\w*)*")
_SPLIT_WORDS = re.compile(r"[^a-z0-9]+")
_CAMEL_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Mentions:
    """Identifiers and paths a task text names."""

    identifiers: frozenset[str]
    paths: frozenset[str]


@dataclass(frozen=True, slots=True)
class Hits:
    """Which mentions the map knows (`found`) and which it does not (`missing`)."""

    found: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def rate(self) -> float | None:
        """found / (found + missing); None when nothing was mentioned."""
        total = len(self.found) + len(self.missing)
        return len(self.found) / total if total else None


@dataclass(frozen=True, slots=True)
class RenderedMap:
    text: str
    files_shown: int
    files_total: int


def mentions(text: str) -> Mentions:
    """Identifiers (CamelCase, snake_case, dotted, `backticked`, called()) and paths in text."""
    identifiers: set[str] = set()
    paths: set[str] = set()
    text = _URL.sub(" ", text)
    for match in _BACKTICKED.finditer(text):
        _code_mention(match[1].strip(), identifiers, paths)
    prose = _BACKTICKED.sub(" ", text)

    def take_path(match: re.Match[str]) -> str:
        if match.lastindex and not _is_path(match[0], match[1]):
            return match[0]
        paths.add(_clean_path(match[0]))
        return " "

    prose = _DIRECTORY.sub(take_path, _PATH.sub(take_path, prose))
    for match in _DOTTED.finditer(prose):
        _add_identifier(match[0], identifiers)
    prose = _DOTTED.sub(" ", prose)
    identifiers.update(m[1] for m in _CALL.finditer(prose) if m[1].lower() not in _STOP_WORDS)
    for match in _WORD.finditer(prose):
        word = match[0]
        if word in _FILE_NAMES:
            paths.add(word)
        elif ("_" in word.strip("_") or _CAMEL.search(word)) and word.lower() not in _STOP_WORDS:
            identifiers.add(word)
    paths.discard("")
    return Mentions(frozenset(identifiers), frozenset(paths))


def hits(repo_map: RepoMap, m: Mentions) -> Hits:
    """An identifier is found when a symbol has its name (or its last dotted part); a path when
    a tracked path equals it or ends with "/" + it (or, for a directory, lies under it)."""
    names = repo_map.symbol_names()
    paths = repo_map.paths()
    found: list[str] = []
    missing: list[str] = []
    for identifier in sorted(m.identifiers):
        known = identifier in names or _last_part(identifier) in names
        (found if known else missing).append(identifier)
    for path in sorted(m.paths):
        (found if _path_known(path, paths) else missing).append(path)
    return Hits(tuple(found), tuple(missing))


def ranked_files(repo_map: RepoMap, task_text: str) -> list[str]:
    """Every path of the map, the most relevant to the task first."""
    return [repo_map.files[n].path for n in _ranking(repo_map, task_text)]


def render(repo_map: RepoMap, task_text: str, budget_chars: int = 6000) -> RenderedMap:
    """The ranked files and their symbols, within `budget_chars`, then a count of the rest."""
    total = len(repo_map.files)
    reserve = len(f"… and {total} more files\n")
    room = budget_chars - reserve
    cap = max(budget_chars // 4, 400)  # one big file must not take the whole map
    blocks: list[str] = []
    used = 0
    for number in _ranking(repo_map, task_text):
        left = room - used
        if left < 20:
            break
        block = _block(repo_map.files[number], min(left, cap))
        if block:
            blocks.append(block)
            used += len(block)
    rest = total - len(blocks)
    if rest:
        blocks.append(f"… and {rest} more files\n")
    text = "".join(blocks)
    if len(text) > budget_chars:  # only when the budget cannot hold even the last line
        text = text[:budget_chars]
    return RenderedMap(text, total - rest, total)


def _ranking(repo_map: RepoMap, task_text: str) -> list[int]:
    """Indexes into repo_map.files, best first."""
    m = mentions(task_text)
    scores: dict[int, int] = {}  # only files the task relates to; the rest score 0
    _score_paths(repo_map, m, scores)
    _score_identifiers(repo_map, m, scores)
    by_word = repo_map.files_by_path_word()
    for word in _task_words(task_text, m):
        for number in by_word.get(word, ()):
            scores[number] = scores.get(number, 0) + WORD_SCORE
    files = repo_map.files
    scored = sorted(scores, key=lambda n: (-scores[n], -len(files[n].symbols), files[n].path))
    return scored + [n for n in repo_map.files_by_density() if n not in scores]


def _score_paths(repo_map: RepoMap, m: Mentions, scores: dict[int, int]) -> None:
    """Exact path >> same file name; a little for each file under a named directory."""
    by_name = repo_map.files_by_name()
    by_word = repo_map.files_by_path_word()
    for path in m.paths:
        name = path.rpartition("/")[2].lower()
        for number in by_name.get(name, ()):
            file_path = repo_map.files[number].path
            exact = file_path == path or ("/" in path and file_path.endswith("/" + path))
            scores[number] = scores.get(number, 0) + PATH_SCORE if exact else NAME_SCORE
        directory = f"{path}/"
        for number in by_word.get(name, ()):
            file_path = repo_map.files[number].path
            if file_path.startswith(directory) or f"/{directory}" in file_path:
                scores[number] = (
                    scores.get(number, 0) + WORD_SCORE * 5
                )  # a file in a named directory


def _score_identifiers(repo_map: RepoMap, m: Mentions, scores: dict[int, int]) -> None:
    """A file named like an identifier (or its dotted module) >> a file defining it."""
    by_name = repo_map.files_by_name()
    by_symbol = repo_map.files_by_symbol()
    for identifier in m.identifiers:
        last = _last_part(identifier)
        for number in by_name.get(last.lower(), ()):
            scores[number] = scores.get(number, 0) + NAME_SCORE
        if "." in identifier:  # `pkg.mod.func` may name the module file pkg/mod.py
            module = identifier.replace(".", "/")
            for candidate in (module, module.rpartition("/")[0]):
                for number in by_name.get(candidate.rpartition("/")[2].lower(), ()):
                    stem_path = repo_map.files[number].path.rpartition(".")[0]
                    if candidate and ("/" + stem_path).endswith("/" + candidate):
                        scores[number] = scores.get(number, 0) + NAME_SCORE
        for number in by_symbol.get(last, ()):
            scores[number] = scores.get(number, 0) + IDENTIFIER_SCORE


def _task_words(text: str, m: Mentions) -> set[str]:
    """Lowercased words of the task and parts of its identifiers, stop words dropped."""
    words = set(_SPLIT_WORDS.split(text.lower()))
    for identifier in m.identifiers:
        words.update(part.lower() for part in _CAMEL_PARTS.findall(identifier))
    return {w for w in words if len(w) >= 3 and w not in _STOP_WORDS}


def _block(file: FileSymbols, room: int) -> str:
    """`path` then one line per symbol, cut to `room` characters; "" when not even the path
    fits."""
    header = f"{file.path}\n"
    if len(header) > room:
        return ""
    lines = _symbol_lines(file.symbols)
    whole = header + "".join(lines)
    if len(whole) <= room:
        return whole
    out = [header]
    used = len(header)
    for line in lines:
        if used + len(line) + len(_more(len(lines) - len(out))) > room:
            break
        out.append(line)
        used += len(line)
    tail = _more(len(lines) - len(out) + 1)
    if used + len(tail) <= room:
        out.append(tail)
    return "".join(out)


def _more(count: int) -> str:
    return f"{'':7}… {count} more symbols\n"


def _symbol_lines(symbols: tuple[Symbol, ...]) -> list[str]:
    """`  12 class Cart` / `  15   def add`: members indented under their parent."""
    lines: list[str] = []
    stack: list[tuple[str, int]] = []  # (name, depth) of the symbols members may belong to
    for symbol in symbols:
        name = symbol.name
        depth = 0
        if symbol.parent is None:
            stack.clear()
        else:
            while stack and stack[-1][0] != symbol.parent:
                stack.pop()
            if stack:
                depth = stack[-1][1] + 1
            else:
                name = f"{symbol.parent}.{name}"
        stack.append((symbol.name, depth))
        label = "def" if symbol.kind in ("function", "method") else symbol.kind
        lines.append(f"{symbol.line:>6} {'  ' * depth}{label} {name}\n")
    return lines


def _code_mention(code: str, identifiers: set[str], paths: set[str]) -> None:
    """A `backticked` span: a path, an identifier (maybe called or dotted), or a snippet."""
    code = code.split("(", 1)[0].strip()
    path = _PATH.fullmatch(code)
    if (path and _is_path(code, path[1])) or ("/" in code and " " not in code):
        paths.add(_clean_path(code))
    elif _IDENTIFIER.fullmatch(code):
        _add_identifier(code.replace("::", "."), identifiers)
    else:
        found = mentions(code.replace("`", " "))
        identifiers.update(found.identifiers)
        paths.update(found.paths)


def _add_identifier(name: str, identifiers: set[str]) -> None:
    lowered = name.lower()
    if lowered in _STOP_WORDS or len(name) < 2:
        return
    last = _last_part(name)
    if "." in name and last.lower() in _EXTENSIONS:
        return  # a file name the path pattern did not take
    identifiers.add(name)


def _is_path(text: str, extension: str) -> bool:
    return ("/" in text or extension.lower() in _EXTENSIONS) and text.lower() not in _STOP_WORDS


def _clean_path(path: str) -> str:
    path = path.strip().rstrip("/.,;:")
    while path.startswith("./"):
        path = path[2:]
    return path


def _last_part(identifier: str) -> str:
    return identifier.rpartition(".")[2]


def _path_known(path: str, paths: frozenset[str]) -> bool:
    if path in paths:
        return True
    suffix, prefix = "/" + path, path + "/"
    return any(p.endswith(suffix) or p.startswith(prefix) for p in paths)
