"""The fake forges themselves: they answer what the real ones would and catch bad requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_aiohttp import AiohttpServer

from tests.fakes.forge_spec import ApiSpec
from tests.fakes.gitea import TEST_TOKEN as GITEA_TOKEN
from tests.fakes.gitea import FakeForgejo, FakeGitea, gitea_spec
from tests.fakes.github import TEST_TOKEN as GITHUB_TOKEN
from tests.fakes.github import FakeGitHub, github_spec
from tests.gitrepos import git, make_repo
from worker.forges.base import make_forge

NEW_PR = {"head": "agent/WEB-1", "base": "main", "title": "Add a page", "body": "Done."}


@pytest.fixture
async def gitea() -> AsyncIterator[FakeGitea]:
    async with FakeGitea() as fake:
        yield fake


@pytest.fixture
async def gitea_api(gitea: FakeGitea) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"token {GITEA_TOKEN}"}
    base = f"{gitea.base_url}/api/v1/repos/me/web"
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:
        yield client


@pytest.fixture(params=[False, True], ids=["github.com", "enterprise"])
async def github(request: pytest.FixtureRequest) -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub(enterprise=request.param) as fake:
        yield fake


@pytest.fixture
async def github_api(github: FakeGitHub) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {GITHUB_TOKEN}", "X-GitHub-Api-Version": "2022-11-28"}
    base = f"{github.base_url}/repos/me/web"
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:
        yield client


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository with the branches main and agent/WEB-1."""
    work = make_repo(tmp_path / "work", {"README.md": "# Web\n"})
    git(work, "branch", "agent/WEB-1")
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(tmp_path / "remote.git"))
    return tmp_path / "remote.git"


# --- Gitea ---


async def test_gitea_answers_pull_request_calls_like_gitea(
    gitea: FakeGitea, gitea_api: httpx.AsyncClient
) -> None:
    gitea.add_issue()  # pull requests and issues share the numbering
    created = await gitea_api.post("/pulls", json=NEW_PR)
    again = await gitea_api.post("/pulls", json=NEW_PR)
    found = await gitea_api.get("/pulls/main/agent/WEB-1")  # Gitea routes /pulls/{base}/*
    edited = await gitea_api.patch("/pulls/2", json={"title": "Add a page (v2)", "body": "Redone."})
    commented = await gitea_api.post("/issues/2/comments", json={"body": "Merged soon"})
    comments = await gitea_api.get("/issues/2/comments", params={"since": "2000-01-01T00:00:00Z"})
    repo = await gitea_api.get("")

    assert (created.status_code, created.json()["number"]) == (201, 2)
    assert created.json()["head"]["ref"] == "agent/WEB-1"
    assert again.status_code == 409
    assert again.json()["message"].startswith("pull request already exists for these targets")
    assert (found.status_code, found.json()["number"]) == (200, 2)
    assert edited.status_code == 201  # Gitea answers an edit with 201
    assert gitea.pulls[2]["body"] == "Redone."
    assert commented.status_code == 201
    assert [c["body"] for c in comments.json()] == ["Merged soon"]
    assert repo.json()["permissions"] == {"admin": False, "push": True, "pull": True}
    assert gitea.requests_for("repoCreatePullRequest")[0].json == NEW_PR
    assert "Authorization" not in gitea.requests[0].headers
    gitea.assert_clean()  # replies were checked against the swagger's schemas too


async def test_gitea_lists_open_pull_requests_in_pages(gitea: FakeGitea) -> None:
    for number in range(1, 61):
        gitea.add_pull(f"agent/T-{number}", state="closed" if number % 10 == 0 else "open")
    headers = {"Authorization": f"token {GITEA_TOKEN}"}
    async with httpx.AsyncClient(headers=headers) as client:
        url = f"{gitea.base_url}/api/v1/repos/me/web/pulls"
        first = await client.get(url, params={"state": "open", "limit": 100, "page": 1})
        last = await client.get(url, params={"state": "open", "limit": 100, "page": 2})

    assert len(first.json()) == 50  # MAX_RESPONSE_ITEMS caps the asked-for limit
    assert first.headers["X-Total-Count"] == "54"
    assert 'rel="next"' in first.headers["Link"]
    assert "limit=50" in first.headers["Link"]
    assert len(last.json()) == 4
    assert 'rel="next"' not in last.headers["Link"]
    gitea.assert_clean()


async def test_gitea_records_unknown_paths_and_methods(
    gitea: FakeGitea, gitea_api: httpx.AsyncClient
) -> None:
    unknown = await gitea_api.get("/pullz")
    wrong_method = await gitea_api.put("/pulls", json=NEW_PR)
    async with httpx.AsyncClient() as client:  # the API lives under /api/v1 only
        outside = await client.get(f"{gitea.base_url}/repos/me/web/pulls")

    assert (unknown.status_code, wrong_method.status_code, outside.status_code) == (404, 405, 404)
    assert len(gitea.violations) == 3
    assert "no such path" in gitea.violations[0]
    assert "PUT is not allowed" in gitea.violations[1]
    assert "/api/v1" in gitea.violations[2]


@pytest.mark.parametrize(
    ("method", "path", "body", "problem"),
    [
        ("post", "/pulls", {**NEW_PR, "draft": True}, "unknown property 'draft'"),
        ("post", "/pulls", {"head": "agent/WEB-1", "base": "main"}, "required property 'title'"),
        ("post", "/pulls", {**NEW_PR, "title": 5}, "body.title: expected string"),
        ("post", "/issues/1/comments", {"text": "hi"}, "missing required property 'body'"),
        ("patch", "/pulls/first", {"title": "x"}, "path parameter 'index': expected integer"),
        ("get", "/pulls?per_page=50", None, "unknown query parameter 'per_page'"),
        ("get", "/pulls?state=merged", None, "'merged' is not one of"),
        ("get", "/pulls/1", {"title": "x"}, "takes no body"),
    ],
)  # fmt: skip
async def test_gitea_rejects_requests_the_swagger_does_not_allow(
    *, gitea: FakeGitea, gitea_api: httpx.AsyncClient, method: str, path: str, body: Any,
    problem: str,
) -> None:  # fmt: skip
    gitea.add_pull("agent/WEB-0")
    response = await gitea_api.request(method, path, json=body)

    assert response.status_code == 422
    assert problem in response.json()["message"]
    assert len(gitea.violations) == 1
    assert problem in gitea.violations[0]


async def test_gitea_auth(gitea: FakeGitea) -> None:
    url = f"{gitea.base_url}/api/v1/repos/me/web"
    async with httpx.AsyncClient() as client:
        bearer = await client.get(url, headers={"Authorization": f"Bearer {GITEA_TOKEN}"})
        wrong = await client.get(url, headers={"Authorization": "token not-the-token"})
        assert gitea.violations == []  # a wrong token is the user's mistake, not a client bug
        missing = await client.get(url)
        basic = await client.get(url, headers={"Authorization": "Basic bWU6cHc="})

    assert bearer.status_code == 200  # Gitea takes "token" and "Bearer"
    assert (wrong.status_code, missing.status_code, basic.status_code) == (401, 401, 401)
    assert set(wrong.json()) == {"message", "url"}  # Gitea's error shape
    assert gitea.violations == [
        "GET /api/v1/repos/me/web: no Authorization header",
        "GET /api/v1/repos/me/web: unknown auth scheme",
    ]


async def test_gitea_other_repositories_are_not_found(gitea: FakeGitea) -> None:
    headers = {"Authorization": f"token {GITEA_TOKEN}"}
    async with httpx.AsyncClient(headers=headers) as client:
        response = await client.get(f"{gitea.base_url}/api/v1/repos/me/other")

    assert response.status_code == 404
    assert response.json()["message"] == "The target couldn't be found."
    gitea.assert_clean()


async def test_gitea_needs_the_branches_in_its_git_remote(remote: Path) -> None:
    headers = {"Authorization": f"token {GITEA_TOKEN}"}
    async with FakeGitea(git_remote=remote) as gitea, httpx.AsyncClient(headers=headers) as client:
        url = f"{gitea.base_url}/api/v1/repos/me/web/pulls"
        missing = await client.post(url, json={**NEW_PR, "head": "agent/WEB-9"})
        same = await client.post(url, json={**NEW_PR, "head": "main"})
        created = await client.post(url, json=NEW_PR)

    assert missing.status_code == 404
    assert same.status_code == 422
    assert "no changes between the head and the base" in same.json()["message"]
    assert created.status_code == 201
    assert list(gitea.pulls) == [1]
    gitea.assert_clean()


async def test_gitea_failure_injection(gitea: FakeGitea, gitea_api: httpx.AsyncClient) -> None:
    gitea.fail_next(502)
    gitea.fail_next(503, committed=True, retry_after=7)
    refused = await gitea_api.post("/pulls", json=NEW_PR)
    lost = await gitea_api.post("/pulls", json=NEW_PR)
    assert (refused.status_code, lost.status_code) == (502, 503)
    assert lost.headers["Retry-After"] == "7"
    assert list(gitea.pulls) == [1]  # only the committed one took effect

    gitea.delay_next(0.3)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await gitea_api.patch("/pulls/1", json={"body": "slow"}, timeout=0.1)
    await asyncio.sleep(0)
    assert gitea.pulls[1]["body"] == "slow"  # took effect; only the answer was late
    assert time.monotonic() - started < 0.3
    gitea.assert_clean()


async def test_forgejo_is_gitea_with_its_own_label() -> None:
    async with FakeForgejo() as forgejo:
        target = forgejo.target()

    assert (target.kind, target.base_url) == ("forgejo", forgejo.base_url)
    assert forgejo.spec is gitea_spec()


def test_replies_are_checked_against_the_response_schemas() -> None:
    spec: ApiSpec = gitea_spec()
    op, _ = spec.route("GET", ["repos", "me", "web", "pulls", "1"])

    assert spec.check_reply(op, 200, {"number": 1, "title": "ok"}) == []
    assert spec.check_reply(op, 200, {"number": "1", "colour": "red"}) == [
        "fake bug: reply.number: expected integer, got '1'",
        "fake bug: reply: unknown property 'colour'",
    ]
    assert spec.check_reply(op, 201, {}) == [
        "fake bug: repoGetPullRequest answered 201, which is not described"
    ]


# --- GitHub ---


async def test_github_answers_pull_request_calls_like_github(
    github: FakeGitHub, github_api: httpx.AsyncClient
) -> None:
    created = await github_api.post("/pulls", json=NEW_PR)
    again = await github_api.post("/pulls", json=NEW_PR)
    listed = await github_api.get("/pulls", params={"state": "open", "head": "me:agent/WEB-1"})
    others = await github_api.get("/pulls", params={"head": "me:agent/WEB-2"})
    updated = await github_api.patch("/pulls/1", json={"body": "Redone.", "state": "open"})
    commented = await github_api.post("/issues/1/comments", json={"body": "Merged soon"})
    comments = await github_api.get("/issues/1/comments", params={"per_page": 100})
    repo = await github_api.get("")

    assert (created.status_code, created.json()["number"]) == (201, 1)
    assert created.headers["Location"].endswith("/repos/me/web/pulls/1")
    assert again.status_code == 422
    assert again.json()["message"] == "Validation Failed"
    assert (
        again.json()["errors"][0]["message"] == "A pull request already exists for me:agent/WEB-1."
    )
    assert [pr["number"] for pr in listed.json()] == [1]
    assert others.json() == []
    assert updated.status_code == 200
    assert github.pulls[1]["body"] == "Redone."
    assert commented.status_code == 201
    assert [c["body"] for c in comments.json()] == ["Merged soon"]
    assert repo.json()["permissions"]["push"] is True
    assert github.requests[0].path == f"{github.prefix}/repos/me/web/pulls"
    github.assert_clean()


async def test_github_pages_with_link_headers(
    github: FakeGitHub, github_api: httpx.AsyncClient
) -> None:
    for number in range(1, 151):
        github.add_pull(f"agent/T-{number}")
    first = await github_api.get("/pulls", params={"per_page": 100})
    second = await github_api.get("/pulls", params={"per_page": 100, "page": 2})

    assert (len(first.json()), len(second.json())) == (100, 50)
    assert first.json()[0]["number"] == 150  # newest first, as GitHub sorts by default
    assert 'page=2>; rel="next"' in first.headers["Link"]
    assert 'rel="next"' not in second.headers["Link"]
    github.assert_clean()


@pytest.mark.parametrize(
    ("method", "path", "body", "problem"),
    [
        ("post", "/pulls", {**NEW_PR, "labels": ["x"]}, "unknown property 'labels'"),
        ("post", "/pulls", {"title": "t", "base": "main"}, "missing required property 'head'"),
        ("post", "/pulls", {"head": "agent/WEB-1", "base": "main"}, "no title"),
        ("patch", "/pulls/1", {"state": "merged"}, "'merged' is not one of"),
        ("get", "/pulls?head=agent/WEB-1", None, "names no owner"),
        ("get", "/pulls?limit=5", None, "unknown query parameter 'limit'"),
    ],
)  # fmt: skip
async def test_github_rejects_requests_the_description_does_not_allow(
    *, github: FakeGitHub, github_api: httpx.AsyncClient, method: str, path: str, body: Any,
    problem: str,
) -> None:  # fmt: skip
    github.add_pull("agent/WEB-0")
    response = await github_api.request(method, path, json=body)

    assert response.status_code == 422
    assert len(github.violations) == 1
    assert problem in github.violations[0]


async def test_github_records_unknown_paths_and_api_versions(github: FakeGitHub) -> None:
    headers = {"Authorization": f"token {GITHUB_TOKEN}"}  # GitHub takes "token" too
    async with httpx.AsyncClient(base_url=github.base_url, headers=headers) as client:
        fine = await client.get("/repos/me/web")
        unknown = await client.delete("/repos/me/web/pulls/1")
        version = await client.get("/repos/me/web", headers={"X-GitHub-Api-Version": "1999-01-01"})

    assert (fine.status_code, unknown.status_code, version.status_code) == (200, 405, 400)
    assert "DELETE is not allowed" in github.violations[0]
    assert "X-GitHub-Api-Version '1999-01-01'" in github.violations[1]
    assert len(github.violations) == 2


async def test_github_enterprise_serves_only_under_api_v3() -> None:
    headers = {"Authorization": f"Bearer {GITHUB_TOKEN}"}
    async with FakeGitHub(enterprise=True) as github, httpx.AsyncClient(headers=headers) as client:
        inside = await client.get(f"{github.root_url}/api/v3/repos/me/web")
        outside = await client.get(f"{github.root_url}/repos/me/web")

    assert github.base_url.endswith("/api/v3")
    assert (inside.status_code, outside.status_code) == (200, 404)
    assert github.violations == ["GET /repos/me/web: not under the API base path '/api/v3'"]


async def test_github_auth(github: FakeGitHub) -> None:
    url = f"{github.base_url}/repos/me/web"
    async with httpx.AsyncClient() as client:
        wrong = await client.get(url, headers={"Authorization": "Bearer ghp_wrong"})
        assert github.violations == []
        missing = await client.get(url)

    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong.json() == {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                            "status": "401"}  # fmt: skip
    assert github.violations == [f"GET {github.prefix}/repos/me/web: no Authorization header"]


async def test_github_needs_the_branches_in_its_git_remote(remote: Path) -> None:
    headers = {"Authorization": f"Bearer {GITHUB_TOKEN}"}
    async with (
        FakeGitHub(git_remote=remote) as github,
        httpx.AsyncClient(headers=headers) as client,
    ):
        url = f"{github.base_url}/repos/me/web/pulls"
        missing = await client.post(url, json={**NEW_PR, "head": "agent/WEB-9"})
        created = await client.post(url, json=NEW_PR)

    assert missing.status_code == 422
    assert missing.json()["errors"] == [
        {"resource": "PullRequest", "field": "head", "code": "invalid"}
    ]
    assert created.status_code == 201
    github.assert_clean()


def test_github_extract_names_its_source() -> None:
    spec = github_spec()
    source = spec.root["x-source"]

    assert source["repository"] == "https://github.com/github/rest-api-description"
    assert len(source["commit"]) == 40
    assert {op.id for op in spec.operations} == {
        "repos/get", "pulls/list", "pulls/create", "pulls/get", "pulls/update",
        "issues/list-comments", "issues/create-comment",
    }  # fmt: skip


async def test_a_fake_also_runs_under_aiohttp_server(aiohttp_server: AiohttpServer) -> None:
    gitea = FakeGitea()
    server = await aiohttp_server(gitea.make_app(), host="127.0.0.1")
    gitea.root_url = str(server.make_url("")).rstrip("/")
    forge = make_forge(gitea.target())
    published = await forge.publish(head="agent/WEB-1", base="main", title="T", body="B")
    await forge.aclose()

    assert published.pr.url == f"{gitea.root_url}/me/web/pulls/1"
    gitea.assert_clean()
