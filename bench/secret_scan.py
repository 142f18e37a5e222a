"""Our secret scanner (worker/secrets.py) against detect-secrets, on one labelled corpus.

Builds the seeded corpus of bench/secret_corpus.py (code and config files with real-format
FAKE secrets as positives, look-alikes as negatives, and a few MB of ordinary code), writes it
to a temporary directory, and runs both scanners over the same files in one process:

- ours: `scan_text(path, text)` per file (the file read included);
- detect-secrets 1.5.0: `detect_secrets.core.scan.scan_file(path)` per file, inside
  `detect_secrets.settings.default_settings()` (every plugin, the default filters).

A finding matches a labelled line by file and line number. Reported per tool: recall on the
positives (overall and per family), the negatives flagged, findings on unlabelled lines
(filler code, public certificates' bodies; the lines inside a private key are not counted),
and MB/s (median of --runs runs over the whole corpus).

    .venv/bin/pip install -e '.[bench]'    # detect-secrets==1.5.0
    .venv/bin/python bench/secret_scan.py [--seed 20261201] [--filler-mb 3] [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from secret_corpus import Corpus, Label, build

from worker.secrets import scan_text

Found = set[tuple[str, int]]  # (path relative to the corpus root, line)


@dataclass(frozen=True, slots=True)
class Result:
    tool: str
    found: Found
    seconds: list[float]


def ours(root: Path, paths: list[str]) -> Found:
    found: Found = set()
    for path in paths:
        text = (root / path).read_text(encoding="utf-8")
        found.update((f.path, f.line) for f in scan_text(path, text))
    return found


def detect_secrets_scan(root: Path, paths: list[str]) -> Found:
    # Imported by name: detect-secrets is the optional [bench] extra, not a dev dependency.
    scan = importlib.import_module("detect_secrets.core.scan")
    settings = importlib.import_module("detect_secrets.settings")
    found: Found = set()
    with settings.default_settings():
        for path in paths:
            found.update((path, int(s.line_number)) for s in scan.scan_file(str(root / path)))
    return found


def timed(scanner: Callable[[Path, list[str]], Found], root: Path, paths: list[str],
          runs: int) -> tuple[Found, list[float]]:  # fmt: skip
    seconds, found = [], set()
    for _ in range(runs):
        start = time.perf_counter()
        found = scanner(root, paths)
        seconds.append(time.perf_counter() - start)
    return found, seconds


def report(corpus: Corpus, results: list[Result], size: int) -> Iterator[str]:
    positives = [label for label in corpus.labels if label.positive]
    negatives = [label for label in corpus.labels if not label.positive]
    labelled = {(label.path, label.line) for label in corpus.labels} | corpus.ignored
    tools = [r.tool for r in results]

    def hits(r: Result, labels: list[Label]) -> int:
        return sum((label.path, label.line) in r.found for label in labels)

    def row(name: str, cell: Callable[[Result], str]) -> str:
        return f"| {name} | " + " | ".join(cell(r) for r in results) + " |"

    def table(title: str, labels: list[Label]) -> Iterator[str]:
        yield ""
        yield f"| {title} | n | " + " | ".join(tools) + " |"
        yield "|---|---:|" + "---:|" * len(tools)
        for family in sorted({label.family for label in labels}):
            group = [label for label in labels if label.family == family]
            yield (f"| {family} | {len(group)} | "
                   + " | ".join(str(hits(r, group)) for r in results) + " |")  # fmt: skip

    yield (f"corpus: {len(corpus.files)} files, {size / 1e6:.2f} MB, {len(positives)} positives, "
           f"{len(negatives)} negatives")  # fmt: skip
    yield ""
    yield "| measure | " + " | ".join(tools) + " |"
    yield "|---|" + "---:|" * len(tools)
    yield row("recall (positives found)", lambda r: f"{hits(r, positives)}/{len(positives)} "
              f"= {hits(r, positives) / len(positives):.1%}")  # fmt: skip
    yield row("negatives flagged (false positives)",
              lambda r: f"{hits(r, negatives)}/{len(negatives)}")  # fmt: skip
    yield row("findings on unlabelled lines", lambda r: str(len(r.found - labelled)))
    yield row("MB/s (median)", lambda r: f"{size / 1e6 / statistics.median(r.seconds):.2f}")
    yield row("seconds per run (median of runs)",
              lambda r: f"{statistics.median(r.seconds):.3f} ({len(r.seconds)})")  # fmt: skip
    yield from table("family (positives found)", positives)
    yield from table("look-alike (negatives flagged)", negatives)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--filler-mb", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--detect-secrets-runs", type=int, default=3)
    parser.add_argument("--verbose", action="store_true", help="list misses and false positives")
    args = parser.parse_args()
    corpus = build(args.seed, int(args.filler_mb * 1_000_000))
    size = sum(len(f.text.encode()) for f in corpus.files)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for file in corpus.files:
            (root / file.path).parent.mkdir(parents=True, exist_ok=True)
            (root / file.path).write_text(file.text, encoding="utf-8")
        paths = [file.path for file in corpus.files]
        results = [Result("ours", *timed(ours, root, paths, args.runs)),
                   Result("detect-secrets 1.5.0", *timed(detect_secrets_scan, root, paths,
                                                          args.detect_secrets_runs))]  # fmt: skip
    for line in report(corpus, results, size):
        print(line)
    if args.verbose:
        texts = {file.path: file.text.split("\n") for file in corpus.files}
        for r in results:
            print(f"\n{r.tool}:")
            for label in corpus.labels:
                if label.positive != ((label.path, label.line) in r.found):
                    what = "missed" if label.positive else "flagged"
                    print(f"  {what} {label.family}: {texts[label.path][label.line - 1][:100]}")


if __name__ == "__main__":
    main()
