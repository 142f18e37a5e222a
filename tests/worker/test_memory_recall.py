from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from pytest_aiohttp import AiohttpServer

from storage.memory import Memory, MemoryRepo, Outcome
from storage.repos import NewRepo, RepoRepo
from storage.tasks import NewTask, Task, TaskRepo
from worker.embedder import (
    EmbedderError,
    EmbedderSettings,
    HashedEmbedder,
    HttpEmbedder,
    make_embedder,
    words,
)
from worker.memory_recall import HEADING, Recall, memory_text, outcome_signal, recall, remember

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
ROOT = Path(__file__).resolve().parents[2]

# (title, description, outcome, files, error class, summary) of past tasks of `web`.
WEB_PAST = [
    ("Login form crashes with 500 when the password field is empty",
     "POST /login with a blank password raises KeyError in auth/views.py instead of showing a "
     "validation error.", "success", ["auth/views.py", "auth/forms.py"], None,
     "LoginForm.clean now requires the password; a blank one shows 'This field is required'."),
    ("Password reset page returns 500 for an unknown email",
     "The reset view in auth/views.py assumes the user exists and crashes.", "failure",
     ["auth/views.py"], "pytest.failures", "The fix broke test_reset_known_user twice."),
    ("Add a remember_me checkbox to the login page",
     "Keep the session for 30 days when it is checked; see auth/views.py and "
     "templates/login.html.", "success", ["auth/views.py", "templates/login.html"], None,
     "Session age set from the checkbox."),
    ("Export orders as CSV", "Add a CSV export button to the orders admin page in "
     "reports/export.py.", "success", ["reports/export.py"], None, "CSV export added."),
    ("Dark mode toggle for the dashboard", "Store the theme preference per user; CSS "
     "variables live in static/theme.css.", "success", ["static/theme.css"], None, "Done."),
    ("Invoice PDF shows the wrong tax rate", "billing/invoices.py rounds the VAT before summing "
     "the line items.", "failure", ["billing/invoices.py"], "timeout", "Agent timed out."),
    ("Speed up the search autocomplete", "search/query.py runs one database query per "
     "keystroke; debounce and cache it.", "success", ["search/query.py"], None, "Debounced."),
    ("Upgrade Django to 5.1", "Fix the deprecation warnings in settings/base.py and the test "
     "settings.", "failure", ["settings/base.py"], "build.failed", "pip could not resolve."),
    ("Orders page is empty for new customers", "The orders list view filters on a field new "
     "accounts do not have yet.", "success", ["orders/views.py"], None, "Filter relaxed."),
]  # fmt: skip
# Another repository: the same kind of bug, word for word; never recalled for `web`.
API_PAST = [
    ("Login endpoint returns 500 on empty password", "POST /api/login with an empty password "
     "crashes.", "success", ["api/auth.py"], None, "Validated."),
    ("Rate limit the login endpoint", "Too many login attempts per minute.", "failure",
     ["api/throttling.py"], "lint.errors", "Lint failed."),
]  # fmt: skip
AUTH_TITLES = {WEB_PAST[0][0], WEB_PAST[1][0], WEB_PAST[2][0]}
QUERY = (
    "Login page returns 500 on empty password",
    "Submitting the login form with an empty password shows a server error (500).",
)


async def _repo(pool: Pool, name: str) -> int:
    return (await RepoRepo(pool).add(NewRepo(name=name, source="/tmp/x",
                                             default_branch="main"))).id  # fmt: skip


async def _task(pool: Pool, repo_id: int, title: str, description: str) -> Task:
    key = await RepoRepo(pool).next_task_key(repo_id)
    return await TaskRepo(pool).create(
        key, NewTask(repo_id=repo_id, title=title, description=description)
    )


async def _seed(pool: Pool) -> tuple[int, int]:
    embedder = HashedEmbedder()
    web_id, api_id = await _repo(pool, "web"), await _repo(pool, "api")
    for repo_id, past in ((web_id, WEB_PAST), (api_id, API_PAST)):
        for number, (title, description, outcome, files, error_class, summary) in enumerate(past):
            task = await _task(pool, repo_id, title, description)
            cost = None if number == 2 else Decimal("0.25") * (number + 1)
            await remember(pool, embedder, task, outcome=outcome, summary=summary, files=files,
                           error_class=error_class, attempts=1 + number % 3,
                           cost_usd=cost)  # fmt: skip
    return web_id, api_id


async def test_login_memories_rank_first_and_other_repos_never_show(pool: Pool) -> None:
    web_id, _ = await _seed(pool)
    task = await _task(pool, web_id, *QUERY)
    recalled = await recall(pool, HashedEmbedder(), task, k=5)
    titles = [m.title for m in recalled.memories]
    assert len(titles) == 5
    assert titles[0] == WEB_PAST[0][0]  # the same bug
    assert set(titles[:3]) == AUTH_TITLES
    assert {m.repo_id for m in recalled.memories} == {web_id}
    assert not {t for t, *_ in API_PAST} & set(titles)
    # Both outcomes come back: what worked and what failed.
    assert {m.outcome for m in recalled.memories[:3]} == {Outcome.SUCCESS, Outcome.FAILURE}
    similarities = [m.similarity or 0.0 for m in recalled.memories]
    assert similarities == sorted(similarities, reverse=True)
    assert similarities[0] > 0.4
    assert similarities[2] > similarities[3]

    everything = await recall(pool, HashedEmbedder(), task, k=50)
    assert len(everything.memories) == len(WEB_PAST)
    close = await recall(pool, HashedEmbedder(), task, k=50, min_similarity=0.18)
    assert {m.title for m in close.memories} == AUTH_TITLES
    assert (await recall(pool, HashedEmbedder(), task, k=0)).memories == []


async def test_a_task_does_not_recall_its_own_memory(pool: Pool) -> None:
    web_id, _ = await _seed(pool)
    task = await _task(pool, web_id, *QUERY)
    own = await remember(pool, HashedEmbedder(), task, outcome="failure", summary="first try",
                         error_class="pytest.failures", attempts=2)  # fmt: skip
    recalled = await recall(pool, HashedEmbedder(), task, k=3)
    assert own.id not in {m.id for m in recalled.memories}
    assert recalled.memories[0].title == WEB_PAST[0][0]
    other = await _task(pool, web_id, *QUERY)  # another task with the same words sees it
    first = (await recall(pool, HashedEmbedder(), other, k=1)).memories[0]
    assert first.id == own.id
    assert first.similarity == pytest.approx(1.0, abs=1e-5)


async def test_remember_stores_the_task_and_replaces_its_earlier_memory(pool: Pool) -> None:
    web_id = await _repo(pool, "web")
    task = await _task(pool, web_id, "Fix login", "The login page fails.")
    first = await remember(pool, HashedEmbedder(), task, outcome=Outcome.FAILURE,
                           summary="  tests failed\n", files=["a.py", "b.py", "a.py", ""],
                           error_class="pytest.failures", attempts=2,
                           cost_usd=Decimal("0.5"))  # fmt: skip
    assert (first.task_key, first.title, first.outcome) == (task.key, "Fix login", Outcome.FAILURE)
    assert first.summary == "tests failed"
    assert first.files == ["a.py", "b.py"]
    assert (first.error_class, first.attempts, first.cost_usd) == ("pytest.failures", 2,
                                                                   Decimal("0.5"))  # fmt: skip
    second = await remember(pool, HashedEmbedder(), task, outcome="success", summary="fixed",
                            attempts=3)  # fmt: skip
    assert second.id == first.id
    assert await MemoryRepo(pool).for_task(task.id) == second
    assert (second.outcome, second.error_class, second.cost_usd) == (Outcome.SUCCESS, None, None)
    stored = await pool.fetchrow(
        "SELECT description, embedder FROM agent_memory WHERE id = $1", second.id
    )
    assert stored is not None
    assert tuple(stored) == ("The login page fails.", "hashed-v1")


def _memory(key: str, outcome: Outcome, similarity: float | None, *, error_class: str | None = None,
            files: list[str] | None = None, attempts: int = 1,
            cost_usd: Decimal | None = Decimal("0.42"), summary: str = "") -> Memory:  # fmt: skip
    return Memory(id=1, repo_id=1, task_id=None, task_key=key, outcome=outcome,
                  title=f"Task {key}", summary=summary, files=files or [],
                  error_class=error_class, attempts=attempts, cost_usd=cost_usd,
                  created_at=datetime(2026, 11, 25, tzinfo=UTC), similarity=similarity)  # fmt: skip


async def test_render_shows_successes_and_failures_compactly(pool: Pool) -> None:
    assert Recall([]).render() == ""
    web_id, _ = await _seed(pool)
    text = (await recall(pool, HashedEmbedder(), await _task(pool, web_id, *QUERY), k=3)).render()
    lines = text.splitlines()
    assert lines[0] == HEADING == "## What happened before in this repository"
    assert lines[2].startswith(
        "- succeeded WEB-1 “Login form crashes with 500 when the password field is empty” "
        "(similarity 0."
    )
    assert lines[2].endswith("; 1 attempt; $0.25)")
    assert lines[3] == "  files: auth/views.py, auth/forms.py"
    assert lines[4] == (
        "  summary: LoginForm.clean now requires the password; a blank one shows "
        "'This field is required'."
    )
    failed = next(line for line in lines if "failed WEB-2" in line)
    assert "error pytest.failures; 2 attempts; $0.50)" in failed
    assert "cost unknown" in next(line for line in lines if "WEB-3" in line)
    assert text.endswith("\n")
    assert len(lines) == 2 + 3 * 3

    files = [f"f{i}.py" for i in range(9)]
    long_summary = "line one\nline two " + "x" * 300
    many_files = Recall(
        [_memory("WEB-9", Outcome.FAILURE, 0.5, files=files, summary=long_summary)]
    ).render()
    assert "  files: f0.py, f1.py, f2.py, f3.py, f4.py, f5.py (+3 more)" in many_files
    summary = next(line for line in many_files.splitlines() if "summary" in line)
    assert summary.startswith("  summary: line one line two xxx")
    assert summary.endswith("…")
    assert len(summary) < 260


def test_outcome_signal_weighs_outcomes_by_similarity() -> None:
    assert outcome_signal([]) is None
    memories = [
        _memory("WEB-4", Outcome.SUCCESS, 0.82),
        _memory("WEB-7", Outcome.FAILURE, 0.6, error_class="pytest.failures"),
        _memory("WEB-5", Outcome.SUCCESS, 0.4),
    ]
    result = outcome_signal(memories)
    assert result is not None
    signal, evidence = result
    assert signal == pytest.approx((0.82 + 0.4) / (0.82 + 0.6 + 0.4))
    assert evidence == (
        "3 similar past tasks: 2 succeeded (WEB-4 0.82, WEB-5 0.40), "
        "1 failed (WEB-7 0.60 pytest.failures)"
    )
    only_failure = outcome_signal([_memory("API-1", Outcome.FAILURE, 0.3, error_class="timeout")])
    assert only_failure == (0.0, "1 similar past task: 1 failed (API-1 0.30 timeout)")
    assert outcome_signal([_memory("A-1", Outcome.SUCCESS, 0.9)]) == (
        1.0, "1 similar past task: 1 succeeded (A-1 0.90)",
    )  # fmt: skip
    # Dissimilar memories (similarity <= 0) weigh nothing while similar ones exist ...
    mixed = outcome_signal([_memory("A-1", Outcome.SUCCESS, 0.5),
                            _memory("A-2", Outcome.FAILURE, -0.2)])  # fmt: skip
    assert mixed is not None
    assert mixed[0] == 1.0
    # ... and the same when none is similar.
    unrelated = outcome_signal([_memory("A-1", Outcome.SUCCESS, -0.1),
                                _memory("A-2", Outcome.FAILURE, 0.0)])  # fmt: skip
    assert unrelated is not None
    assert unrelated[0] == 0.5
    five = outcome_signal([_memory(f"A-{i}", Outcome.SUCCESS, 0.5) for i in range(5)])
    assert five is not None
    assert five[1] == "5 similar past tasks: 5 succeeded (A-0 0.50, A-1 0.50, A-2 0.50, …)"


def test_memory_text_is_title_then_description() -> None:
    assert memory_text(" Fix login ", "  The page fails.\n") == "Fix login\nThe page fails."
    assert memory_text("Fix login", "") == "Fix login"
    assert len(memory_text("t", "x" * 10_000)) == 2 + 2000


# --- HashedEmbedder ------------------------------------------------------------------------

TEXT = "Fix LoginPage: get_user_name returns HTTPServer error 500 in src/auth/login.py"


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_words_split_identifiers_and_drop_stop_words() -> None:
    assert words(TEXT) == [
        "fix", "loginpage", "login", "page", "get_user_name", "get", "user", "name", "returns",
        "httpserver", "http", "server", "error", "500", "src", "auth", "login", "py",
    ]  # fmt: skip
    assert words("the login and THE page") == ["login", "page"]
    assert words("") == []


async def test_hashed_embedder_is_normalised_and_matches_related_texts() -> None:
    embedder = HashedEmbedder()
    assert (embedder.name, embedder.dimensions) == ("hashed-v1", 256)
    texts = [TEXT, "", "!!! ...", "a the of", "login page error", "Dark mode for the dashboard"]
    vectors = await embedder.embed(texts)
    for vector in vectors:
        assert len(vector) == 256
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-9)
    assert vectors[1] == vectors[2] == vectors[3]  # featureless texts share a fixed vector
    assert _cosine(vectors[0], vectors[4]) > 0.3 > _cosine(vectors[0], vectors[5])
    # Identifier parts and inflections meet their plain forms.
    assert _cosine(embedder.embed_one("getUserName"), embedder.embed_one("get user name")) > 0.6
    avatars = embedder.embed_one("uploading avatars")
    inflected = _cosine(avatars, embedder.embed_one("avatar upload"))
    unrelated = _cosine(avatars, embedder.embed_one("invoice totals"))
    assert inflected > 0.15 > unrelated
    assert await embedder.embed([]) == []


def test_hashed_embedder_is_the_same_in_another_process() -> None:
    """blake2b, not Python's salted hash(): another process with another hash seed agrees."""
    script = (
        "import json, sys\n"
        "from worker.embedder import HashedEmbedder\n"
        "print(json.dumps(HashedEmbedder().embed_one(sys.argv[1])))\n"
    )
    here = HashedEmbedder().embed_one(TEXT)
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", script, TEXT], cwd=ROOT, capture_output=True, text=True,
            check=True, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, timeout=60,
        )  # fmt: skip
        assert json.loads(result.stdout) == here


# --- HttpEmbedder --------------------------------------------------------------------------


class FakeEmbeddings:
    """An OpenAI-style POST /v1/embeddings: records requests, answers as told."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], str | None]] = []
        self.dimensions = 256
        self.status = 200
        self.delay = 0.0

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self._embeddings)
        return app

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((body, request.headers.get("Authorization")))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"error": {"message": "Incorrect API key"}},
                                     status=self.status)  # fmt: skip
        data = [{"object": "embedding", "index": i,
                 "embedding": [float(i + 1)] + [0.0] * (self.dimensions - 1)}
                for i in range(len(body["input"]))]  # fmt: skip
        data.reverse()  # the order of `index`, not of the list, is what counts
        return web.json_response({"object": "list", "data": data, "model": body["model"]})


@pytest.fixture
async def fake_embeddings(aiohttp_server: AiohttpServer) -> tuple[FakeEmbeddings, str]:
    fake = FakeEmbeddings()
    server: TestServer = await aiohttp_server(fake.make_app(), host="127.0.0.1")
    return fake, str(server.make_url("/v1"))


async def test_http_embedder_posts_openai_requests(
    fake_embeddings: tuple[FakeEmbeddings, str],
) -> None:
    fake, url = fake_embeddings
    embedder = HttpEmbedder(url, model="text-embedding-3-small", api_key=SecretStr("sk-test"))
    assert embedder.name == "http:text-embedding-3-small"
    vectors = await embedder.embed(["first", "second"])
    assert [v[0] for v in vectors] == [1.0, 2.0]
    assert all(len(v) == 256 for v in vectors)
    assert fake.requests == [
        ({"model": "text-embedding-3-small", "input": ["first", "second"], "dimensions": 256},
         "Bearer sk-test"),
    ]  # fmt: skip
    await HttpEmbedder(url + "/", model="m").embed(["x"])
    assert fake.requests[-1] == ({"model": "m", "input": ["x"], "dimensions": 256}, None)
    assert await embedder.embed([]) == []
    assert len(fake.requests) == 2


async def test_http_embedder_errors_are_clear(fake_embeddings: tuple[FakeEmbeddings, str]) -> None:
    fake, url = fake_embeddings
    embedder = HttpEmbedder(url, model="text-embedding-ada-002", timeout_seconds=0.3)
    fake.dimensions = 1536
    with pytest.raises(EmbedderError, match="returned 1536-dimensional vectors, expected 256"):
        await embedder.embed(["x"])
    fake.status = 401
    with pytest.raises(EmbedderError, match=r"answered HTTP 401: .*Incorrect API key"):
        await embedder.embed(["x"])
    fake.status, fake.delay = 200, 2.0
    with pytest.raises(EmbedderError, match="timed out"):
        await embedder.embed(["x"])
    closed = HttpEmbedder("http://127.0.0.1:9/v1", model="m", timeout_seconds=2)
    with pytest.raises(EmbedderError, match="unreachable"):
        await closed.embed(["x"])


def test_settings_choose_the_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMORY_EMBEDDINGS_URL", raising=False)
    assert isinstance(make_embedder(EmbedderSettings()), HashedEmbedder)
    monkeypatch.setenv("MEMORY_EMBEDDINGS_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("MEMORY_EMBEDDINGS_MODEL", "nomic-embed-text")
    monkeypatch.setenv("MEMORY_EMBEDDINGS_API_KEY", "sk-env")
    monkeypatch.setenv("MEMORY_RECALL_K", "3")
    settings = EmbedderSettings()
    assert settings.recall_k == 3
    assert settings.embeddings_api_key == SecretStr("sk-env")
    embedder = make_embedder(settings)
    assert isinstance(embedder, HttpEmbedder)
    assert embedder.name == "http:nomic-embed-text"
