"""How long recalling similar memories takes when agent_memory holds 1k, 10k and 100k rows.

Seeds a scratch database with generated task memories (titles, descriptions, files of 20
repositories, Zipf-sized: the largest repository holds 28% of the memories, the smallest
1.4%), embedded with HashedEmbedder and loaded with COPY. At each size it runs Q recall
queries for new generated tasks, spread evenly over the repositories, through
MemoryRepo.similar in a transaction (the code path of worker.memory_recall.recall), and
prints p50/p95/p99 overall and per plan (exact scan of a small repository, HNSW for a large
one), the recall@k of the HNSW answers against the exact ones, and the plans EXPLAIN shows.

    .venv/bin/python bench/memory_recall.py [--sizes 1000,10000,100000] [--queries 300]
                                            [--k 5] [--dsn postgresql://...]

Uses --dsn, else DATABASE_URL, else the embedded PostgreSQL under $TMPDIR; the scratch
database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import memory as memory_sql
from storage.db import admin_execute, create_pool, with_db
from storage.embedded import start_embedded
from storage.memory import EXACT_SCAN_MAX, HNSW_EF_SEARCH, MemoryRepo
from storage.migrate import apply_all
from worker.embedder import HashedEmbedder
from worker.memory_recall import memory_text

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

REPOS = 20
SEED = 20261125
COLUMNS = ["repo_id", "task_id", "task_key", "outcome", "title", "description", "summary",
           "files", "error_class", "attempts", "cost_usd", "embedder", "embedding"]  # fmt: skip

# --- generated tasks -----------------------------------------------------------------------

AREAS: dict[str, tuple[list[str], list[str]]] = {
    "auth": (["login page", "password reset", "signup form", "session cookie", "OAuth callback",
              "two-factor prompt", "LoginView", "remember_me checkbox"],
             ["auth/views.py", "auth/forms.py", "auth/tokens.py", "templates/login.html"]),
    "billing": (["checkout", "invoice PDF", "Stripe webhook", "refund flow", "coupon codes",
                 "InvoiceService", "tax_rate lookup", "subscription renewal"],
                ["billing/invoices.py", "billing/webhooks.py", "billing/models.py"]),
    "search": (["search results", "autocomplete", "search index rebuild", "SearchQuery parser",
                "faceted filters", "typo tolerance", "ranking_score"],
               ["search/index.py", "search/query.py", "search/api.py"]),
    "export": (["CSV export", "XLSX report", "export_orders task", "date range filter",
                "ReportBuilder", "scheduled email report"],
               ["reports/export.py", "reports/builder.py", "reports/tasks.py"]),
    "media": (["avatar upload", "image thumbnails", "S3 presigned URLs", "video transcoding",
               "upload_size limit", "MediaStorage backend"],
              ["media/upload.py", "media/thumbs.py", "media/storage.py"]),
    "notify": (["welcome email", "push notifications", "unsubscribe link", "digest emails",
                "NotificationQueue", "sms_gateway retries"],
               ["notify/email.py", "notify/push.py", "notify/templates.py"]),
    "api": (["REST pagination", "rate limiter", "GraphQL schema", "API keys", "OpenAPI docs",
             "JSON error responses", "cursor_pagination helper"],
            ["api/views.py", "api/pagination.py", "api/throttling.py", "api/schema.py"]),
    "infra": (["Docker image", "CI pipeline", "database migrations", "health check endpoint",
               "log rotation", "settings.DEBUG flag", "celery beat schedule"],
              ["Dockerfile", ".github/workflows/ci.yml", "settings/base.py", "Makefile"]),
}  # fmt: skip
PROBLEMS = [
    "returns 500 when {x} is empty", "is slow for accounts with many rows", "times out under load",
    "shows the wrong timezone", "breaks on unicode names", "leaks memory in long runs",
    "fails with a KeyError on missing fields", "double-submits on slow networks",
    "ignores the user's locale", "crashes on mobile Safari", "is not covered by tests",
    "logs secrets in plain text", "returns stale data after an update",
]  # fmt: skip
VERBS = ["Fix", "Add", "Refactor", "Speed up", "Handle errors in", "Add tests for", "Rewrite",
         "Validate input of", "Remove dead code from", "Document"]  # fmt: skip
FIELDS = ["password", "email", "quantity", "query string", "file name", "date", "token"]
DETAILS = [
    "Steps: open {thing}, submit with {x} blank; expected a validation message.",
    "Customers reported it twice this week; see the stack trace in Sentry.",
    "The handler in {file} does not check {x} before using it.",
    "Profile it first; the N+1 query in {file} is the likely culprit.",
    "Keep the public API unchanged and add a regression test.",
    "It started after the last dependency upgrade.",
    "Behind a feature flag until QA signs off.",
]  # fmt: skip
ERRORS = ["pytest.failures", "timeout", "lint.errors", "merge_conflict", "agent.gave_up",
          "build.failed"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Generated:
    title: str
    description: str
    files: list[str]


def generate(rng: random.Random) -> Generated:
    things, files = AREAS[rng.choice(list(AREAS))]
    thing = rng.choice(things)
    x = rng.choice(FIELDS)
    title = f"{rng.choice(VERBS)} {thing}: {rng.choice(PROBLEMS).format(x=x)}"
    touched = rng.sample(files, k=rng.randint(1, min(3, len(files))))
    details = rng.sample(DETAILS, k=rng.randint(1, 3))
    description = " ".join(d.format(thing=thing, x=x, file=touched[0]) for d in details)
    return Generated(title, description, touched)


def repo_sizes(total: int) -> list[int]:
    """Zipf (1/rank) shares of `total` over REPOS repositories; every repo gets at least 1."""
    weights = [1 / (rank + 1) for rank in range(REPOS)]
    sizes = [max(1, int(total * w / sum(weights))) for w in weights]
    sizes[0] += total - sum(sizes)
    return sizes


# --- seeding -------------------------------------------------------------------------------


async def seed(pool: Pool, repo_ids: list[int], counts: list[int], rng: random.Random) -> None:
    """Add counts[i] memories to repo_ids[i], rebuilding the HNSW index afterwards."""
    embedder = HashedEmbedder()
    records = []
    for repo_index, (repo_id, count) in enumerate(zip(repo_ids, counts, strict=True)):
        for _ in range(count):
            task = generate(rng)
            failed = rng.random() < 0.3
            records.append((
                repo_id, None, f"R{repo_index}-{rng.randint(1, 10**6)}",
                "failure" if failed else "success", task.title, task.description,
                f"Changed {task.files[0]}; " + ("tests failed." if failed else "tests pass."),
                task.files, rng.choice(ERRORS) if failed else None, rng.randint(1, 4), None,
                embedder.name, embedder.embed_one(memory_text(task.title, task.description)),
            ))  # fmt: skip
    async with pool.acquire() as conn:
        await conn.execute("DROP INDEX IF EXISTS agent_memory_embedding_idx")
        await conn.copy_records_to_table("agent_memory", records=records, columns=COLUMNS)
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute(
            "CREATE INDEX agent_memory_embedding_idx ON agent_memory"
            " USING hnsw (embedding vector_cosine_ops)"
        )
        await conn.execute("VACUUM ANALYZE agent_memory")


# --- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    repo_id: int
    size: int  # memories of the repository
    vector: list[float]

    @property
    def hnsw(self) -> bool:
        """The repository is large enough for the HNSW plan."""
        return self.size > EXACT_SCAN_MAX


def percentile(sorted_ms: Sequence[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms)) - 1))]


def row(label: str, ms: list[float]) -> str:
    if not ms:
        return f"  {label:<8} {'-':>6}"
    ms = sorted(ms)
    return (f"  {label:<8} {len(ms):>6} {statistics.median(ms):>8.2f} {percentile(ms, 95):>8.2f}"
            f" {percentile(ms, 99):>8.2f} {ms[-1]:>8.2f}")  # fmt: skip


async def measure(pool: Pool, queries: list[Query], k: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"all": [], "exact": [], "hnsw": []}
    for query in queries:
        started = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction():
            found = await MemoryRepo(conn).similar(
                query.repo_id, query.vector, k, exclude_task_id=-1, embedder="hashed-v1"
            )
        elapsed = (time.perf_counter() - started) * 1000
        assert len(found) == k, (query.repo_id, len(found))
        times["all"].append(elapsed)
        times["hnsw" if query.hnsw else "exact"].append(elapsed)
    return times


async def recall_at_k(pool: Pool, queries: list[Query], k: int) -> float | None:
    """Share of the exact top-k that the HNSW answers contain (HNSW-plan queries only)."""
    hits = total = 0
    for query in (q for q in queries if q.hnsw):
        async with pool.acquire() as conn, conn.transaction():
            approx = await MemoryRepo(conn).similar(
                query.repo_id, query.vector, k, embedder="hashed-v1"
            )
            exact = await conn.fetch(memory_sql._SIMILAR_EXACT, query.repo_id, query.vector,
                                     "hashed-v1", k, None)  # fmt: skip
        # Ties in distance make ids interchangeable: compare distances, not ids.
        cutoff = exact[-1]["similarity"] - 1e-6
        hits += sum(1 for m in approx if (m.similarity or 0) >= cutoff)
        total += len(exact)
    return None if total == 0 else hits / total


async def plans(pool: Pool, largest: Query, smallest: Query, k: int) -> list[str]:
    """The scans of each plan as production runs it (HNSW settings on), both the custom plan
    and the generic one a prepared statement may switch to; HNSW queries must use the index."""
    out = []
    for label, sql, query in (("hnsw", memory_sql._SIMILAR_HNSW, largest),
                              ("exact", memory_sql._SIMILAR_EXACT, smallest)):  # fmt: skip
        if label == "hnsw" and not query.hnsw:
            continue  # no repository is large enough for the HNSW plan yet
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetchval(memory_sql._HNSW_SETTINGS, str(HNSW_EF_SEARCH))
            args = (query.repo_id, query.vector, "hashed-v1", k, -1)
            custom = await conn.fetch("EXPLAIN " + sql, *args)
            generic = await conn.fetch("EXPLAIN (GENERIC_PLAN) " + sql, *args)
        for kind, plan in (("custom", custom), ("generic", generic)):
            lines = [r[0] for r in plan]
            scans = [line.strip().removeprefix("->").strip().split("  ")[0]
                     for line in lines if "Scan" in line and "CTE" not in line]  # fmt: skip
            out.append(f"  {label} plan ({query.size} rows), {kind}: {'; '.join(scans)}")
            if label == "hnsw":
                assert any("agent_memory_embedding_idx" in scan for scan in scans), scans
    return out


async def run(dsn: str, sizes: list[int], query_count: int, k: int) -> None:
    pool = await create_pool(dsn, max_size=4)
    rng = random.Random(SEED)  # noqa: S311  # reproducible data, not secrets
    embedder = HashedEmbedder()
    try:
        repo_ids = [
            await pool.fetchval(
                "INSERT INTO repos (name, key_prefix, source, default_branch)"
                " VALUES ($1, $2, '/tmp/none', 'main') RETURNING id",
                f"repo{i}",
                f"R{i}",
            )
            for i in range(REPOS)
        ]
        seeded = [0] * REPOS
        header = f"  {'plan':<8} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        for size in sizes:
            target = repo_sizes(size)
            started = time.perf_counter()
            await seed(pool, repo_ids, [t - s for t, s in zip(target, seeded, strict=True)], rng)
            seeded = target
            seconds = time.perf_counter() - started
            print(f"\n{size:,} memories (repos hold {min(target)}..{max(target)}; exact scan "
                  f"up to {EXACT_SCAN_MAX}), seeded in {seconds:.1f}s")  # fmt: skip
            queries = []
            embed_ms = []
            for i in range(query_count):
                task = generate(rng)
                t0 = time.perf_counter()
                [vector] = await embedder.embed([memory_text(task.title, task.description)])
                embed_ms.append((time.perf_counter() - t0) * 1000)
                repo_index = i % REPOS
                queries.append(Query(repo_ids[repo_index], target[repo_index], vector))
            await measure(pool, queries[:20], k)  # warm up: caches, prepared statements
            times = await measure(pool, queries, k)
            print(header)
            for label in ("all", "exact", "hnsw"):
                print(row(label, times[label]))
            print(f"  embedding one task text (HashedEmbedder): p50 "
                  f"{statistics.median(embed_ms):.2f} ms")  # fmt: skip
            quality = await recall_at_k(pool, queries, k)
            if quality is not None:
                print(f"  recall@{k} of HNSW answers vs exact: {quality:.3f}")
            for line in await plans(pool, queries[0], queries[REPOS - 1], k):
                print(line)
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    base = args.dsn or start_embedded(
        Path(tempfile.gettempdir()) / f"devserver-bench-pg-{os.getuid()}"
    )
    name = f"bench_memory_{uuid.uuid4().hex[:8]}"
    await admin_execute(base, f'CREATE DATABASE "{name}"')
    dsn = with_db(base, name)
    try:
        await apply_all(dsn)
        await run(dsn, sizes, args.queries, args.k)
    finally:
        await admin_execute(base, f'DROP DATABASE "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
