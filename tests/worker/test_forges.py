"""The forge clients against the fake Gitea, Forgejo, GitHub and GitHub Enterprise servers."""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.fakes.gitea import FakeForgejo, FakeGitea
from tests.fakes.github import FakeGitHub
from tests.gitrepos import git, git_env, make_repo
from worker.forges.base import (
    Forge,
    ForgeError,
    ForgeTarget,
    RetryPolicy,
    api_base,
    make_forge,
    parse_remote,
    push_credentials,
)

Fake = FakeGitea | FakeGitHub
FAST = RetryPolicy(first_delay=0.01, request_timeout=0.2, max_delay=0.3)
SECRET = "s3cr3t-token-that-must-never-show"  # noqa: S105  # a token to look for in messages
CREATE = {
    "gitea": "repoCreatePullRequest",
    "forgejo": "repoCreatePullRequest",
    "github": "pulls/create",
}
LIST = {"gitea": "repoListPullRequests", "forgejo": "repoListPullRequests", "github": "pulls/list"}
COMMENT = {"gitea": "issueCreateComment", "forgejo": "issueCreateComment",
           "github": "issues/create-comment"}  # fmt: skip


@pytest.fixture(
    params=[FakeGitea, FakeForgejo, FakeGitHub, functools.partial(FakeGitHub, enterprise=True)],
    ids=["gitea", "forgejo", "github", "enterprise"],
)
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[Fake]:
    async with request.param() as server:
        yield server
        server.assert_clean()  # every test ends with no request the API description forbids


@pytest.fixture
async def forge(fake: Fake) -> AsyncIterator[Forge]:
    client = make_forge(fake.target(), retry=FAST)
    yield client
    await client.aclose()


async def error_of(
    target: ForgeTarget, action: Callable[[Forge], Awaitable[object]], retry: RetryPolicy = FAST
) -> ForgeError:
    """The ForgeError that `action` raises, run with a fresh client for `target`."""
    async with contextlib.aclosing(make_forge(target, retry=retry)) as forge:
        with pytest.raises(ForgeError) as caught:
            await action(forge)
    return caught.value


async def test_publish_creates_then_updates_the_same_pull_request(fake: Fake, forge: Forge) -> None:
    first = await forge.publish(head="agent/WEB-1", base="main", title="Add page", body="v1")
    second = await forge.publish(head="agent/WEB-1", base="main", title="Add page!", body="v2")

    assert first.created is True
    assert (first.pr.number, first.pr.head, first.pr.base) == (1, "agent/WEB-1", "main")
    assert first.pr.url.endswith("/me/web/pull/1") or first.pr.url.endswith("/me/web/pulls/1")
    assert second.created is False
    assert second.pr.number == first.pr.number
    assert second.pr.title == "Add page!"
    assert list(fake.pulls) == [1]  # no second pull request
    assert fake.pulls[1]["body"] == "v2"
    assert [r.json["body"] for r in fake.requests_for(CREATE[fake.flavour])] == ["v1", "v2"]


async def test_publish_minds_pull_requests_opened_earlier(fake: Fake, forge: Forge) -> None:
    fake.add_pull("agent/WEB-7", title="old", body="old body")  # 409 (Gitea) / 422 (GitHub)
    fake.add_pull("agent/WEB-7", base="release", title="other base")
    fake.add_pull("agent/WEB-8", state="closed")

    updated = await forge.publish(head="agent/WEB-7", base="main", title="new", body="new body")
    reopened = await forge.publish(head="agent/WEB-8", base="main", title="again", body="b")

    assert (updated.created, updated.pr.number, updated.pr.title) == (False, 1, "new")
    assert fake.pulls[1]["body"] == "new body"
    assert fake.pulls[2]["title"] == "other base"
    assert (reopened.created, reopened.pr.number) == (True, 4)  # the closed one stays closed


@pytest.mark.parametrize("loss", ["timeout", "bad gateway"])
async def test_a_create_whose_answer_was_lost_is_not_made_twice(
    fake: Fake, forge: Forge, loss: str
) -> None:
    if loss == "timeout":  # the create takes effect; its answer comes after the client gave up
        fake.delay_next(1.0)
    else:  # a proxy loses the answer of a create that worked
        fake.fail_next(502, committed=True)

    published = await forge.publish(head="agent/WEB-2", base="main", title="T", body="B")

    assert (published.created, published.pr.number) == (True, 1)
    assert list(fake.pulls) == [1]
    assert len(fake.requests_for(CREATE[fake.flavour])) == 1


async def test_server_errors_are_retried_and_logged_without_the_token(
    fake: Fake, forge: Forge, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next(502, times=2)
    caplog.set_level(logging.DEBUG)

    published = await forge.publish(head="agent/WEB-3", base="main", title="T", body="B")

    assert published.created is True
    assert [r.status for r in fake.requests if r.status >= 500] == [502, 502]
    assert fake.requests_for(CREATE[fake.flavour])[-1].status == 201
    assert list(fake.pulls) == [1]
    retries = [r for r in caplog.records if r.getMessage() == "forge request will be retried"]
    assert [r.__dict__["outcome"] for r in retries] == ["502 Bad Gateway"] * 2
    assert fake.token not in caplog.text
    assert all(fake.token not in str(v) for r in caplog.records for v in r.__dict__.values())


async def test_server_errors_that_go_on_end_in_a_retryable_error(fake: Fake) -> None:
    fake.fail_next(503, times=10)
    policy = RetryPolicy(tries=3, first_delay=0.01)

    error = await error_of(fake.target(), lambda forge: forge.open_pull_requests(), policy)

    assert str(error) == f"{fake.flavour} kept failing (503 Service Unavailable) after 3 tries"
    assert (error.status, error.retryable) == (503, True)
    assert len(fake.requests_for(LIST[fake.flavour])) == 3


async def test_a_silent_forge_times_out_after_every_try(fake: Fake) -> None:
    fake.delay_next(1.0, times=5)
    policy = RetryPolicy(tries=2, first_delay=0.01, request_timeout=0.1)
    started = time.monotonic()

    error = await error_of(fake.target(), lambda forge: forge.check(), policy)

    assert str(error) == f"{fake.flavour} did not answer within 0.1 s (2 tries)"
    assert error.retryable is True
    assert time.monotonic() - started < 1.0


async def test_rate_limits_wait_for_retry_after_up_to_the_cap(fake: Fake, forge: Forge) -> None:
    fake.fail_next(429, retry_after=0.2)
    fake.fail_next(429, retry_after=3600)  # longer than max_delay: waits only the cap
    started = time.monotonic()

    line = await forge.check()

    assert line == f"me/web on {fake.flavour}: token can push"
    assert 0.5 <= time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "headers", [{}, {"Retry-After": "0"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"}]
)  # 429 without a wait, and GitHub's two kinds of 403 rate limit
async def test_github_rate_limits_are_waited_out(headers: dict[str, str]) -> None:
    answers = [httpx.Response(403 if headers else 429, headers=headers, json={"message": "slow"}),
               httpx.Response(200, json={"permissions": {"push": True}})]  # fmt: skip
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    target = ForgeTarget("github", "https://api.github.com", "me", "web", SECRET)
    forge = make_forge(target, retry=FAST, transport=transport)

    assert await forge.check() == "me/web on github: token can push"
    assert answers == []
    await forge.aclose()


async def test_unreachable_forge_is_a_retryable_error() -> None:
    target = ForgeTarget("gitea", "http://127.0.0.1:9", "me", "web", SECRET)  # nothing listens

    error = await error_of(target, lambda forge: forge.check())

    assert str(error).startswith("could not reach gitea at http://127.0.0.1:9/api/v1: ")
    assert str(error).endswith(" (4 tries)")
    assert error.retryable is True


async def test_open_pull_requests_follows_every_page(fake: Fake, forge: Forge) -> None:
    for number in range(1, 131):
        fake.add_pull(f"agent/T-{number}", state="closed" if number % 13 == 0 else "open")

    found = await forge.open_pull_requests()

    assert sorted(pr.number for pr in found) == [n for n in range(1, 131) if n % 13]
    pages = 3 if fake.flavour in ("gitea", "forgejo") else 2  # 50 a page, 100 on GitHub
    assert len(fake.requests_for(LIST[fake.flavour])) == pages


async def test_open_pull_requests_pages_right_under_a_smaller_server_limit() -> None:
    async with FakeGitea(max_page_size=20) as gitea:
        for number in range(1, 46):
            gitea.add_pull(f"agent/T-{number}")
        forge = make_forge(gitea.target(), retry=FAST)
        found = await forge.open_pull_requests()
        await forge.aclose()

    assert len(found) == 45
    assert len(gitea.requests_for("repoListPullRequests")) == 3
    gitea.assert_clean()


async def test_open_pull_requests_stops_at_the_cap(fake: Fake, forge: Forge) -> None:
    for number in range(1, 521):
        fake.add_pull(f"agent/T-{number}")

    assert len(await forge.open_pull_requests()) == 500


async def test_comment_once_even_when_its_answer_is_lost(fake: Fake, forge: Forge) -> None:
    published = await forge.publish(head="agent/WEB-4", base="main", title="T", body="B")

    await forge.comment(published.pr.number, "Verified: all checks passed.")
    fake.delay_next(1.0)  # the comment is made; its answer comes after the client gave up
    await forge.comment(published.pr.number, "Done.")

    assert [c["body"] for c in fake.comments[1]] == ["Verified: all checks passed.", "Done."]
    assert len(fake.requests_for(COMMENT[fake.flavour])) == 2


@pytest.mark.parametrize("make", [FakeGitea, FakeGitHub])
async def test_check_refuses_a_read_only_token(make: type[Fake]) -> None:
    async with make(push=False) as fake:
        error = await error_of(fake.target(), lambda forge: forge.check())

    assert str(error).startswith(f"the token can only read me/web on {fake.flavour}")
    assert error.retryable is False
    assert len(fake.requests) == 1  # not retried
    fake.assert_clean()


async def test_a_wrong_token_is_named_and_never_shown(
    fake: Fake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = fake.target(token=SECRET)

    error = await error_of(
        target, lambda forge: forge.publish(head="agent/WEB-5", base="main", title="T", body="B")
    )

    assert str(error) == (
        f"{fake.flavour} refused the token (401 Unauthorized): check that it is valid and can"
        " write to me/web"
    )
    assert (error.status, error.retryable) == (401, False)
    assert len(fake.requests) == 1  # a refused token is not retried
    assert SECRET not in f"{target!r} {target!s}"
    assert SECRET not in caplog.text


async def test_what_is_missing_is_named(fake: Fake) -> None:
    target = fake.target()
    missing = ForgeTarget(kind=target.kind, base_url=target.base_url, owner="me", name="nope",
                          token=target.token)  # fmt: skip

    no_repo = await error_of(missing, lambda forge: forge.check())
    no_pull = await error_of(target, lambda forge: forge.comment(42, "hello"))

    assert str(no_repo) == (
        f"me/nope not found on {fake.base_url} (404): wrong owner/name, or the token cannot see it"
    )
    assert (no_repo.status, no_repo.retryable) == (404, False)
    assert str(no_pull) == "#42 not found in me/web (404)"


async def test_refusals_quote_the_server_and_name_the_branch(tmp_path: Path) -> None:
    work = make_repo(tmp_path / "work", {"README.md": "# Web\n"})
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(tmp_path / "remote.git"))
    async with FakeGitea(token=SECRET, git_remote=tmp_path / "remote.git") as gitea:
        same = await error_of(
            gitea.target(),
            lambda forge: forge.publish(head="main", base="main", title="T", body=""),
        )
        async with FakeGitHub(git_remote=tmp_path / "remote.git") as github:
            for fake in (gitea, github):
                missing = await error_of(
                    fake.target(),
                    lambda forge: forge.publish(
                        head="agent/WEB-6", base="main", title="T", body=""
                    ),
                )
                assert "agent/WEB-6" in str(missing)
                assert missing.retryable is False
                assert not fake.pulls
                fake.assert_clean()

    assert str(same) == (
        "gitea rejected the pull request from main into main on me/web (422 Unprocessable"
        " Entity): Invalid PullRequest: There are no changes between the head and the base"
    )
    assert SECRET not in str(same)


async def test_github_enterprise_uses_the_api_v3_base_path() -> None:
    async with FakeGitHub(enterprise=True) as github:
        target = github.target()
        forge = make_forge(target, retry=FAST)
        published = await forge.publish(head="agent/WEB-8", base="main", title="T", body="B")
        await forge.aclose()

    assert target.base_url == f"{github.root_url}/api/v3"
    assert published.pr.number == 1
    assert {r.path.split("/repos/")[0] for r in github.requests} == {"/api/v3"}
    assert github.requests[0].headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert github.requests[0].headers["Accept"] == "application/vnd.github+json"
    github.assert_clean()


def test_make_forge_refuses_an_unknown_kind() -> None:
    target = ForgeTarget(kind="gitlab", base_url="https://x", owner="me", name="web", token=SECRET)

    with pytest.raises(ForgeError, match="unknown forge kind 'gitlab'"):
        make_forge(target)


def header_git_sends(url: str, env: dict[str, str]) -> str:
    argv = ["git", "config", "--get-urlmatch", "http.extraHeader", url]
    result = subprocess.run(argv, env={**git_env(), **env}, capture_output=True, check=False)
    return result.stdout.decode().strip()


@pytest.mark.parametrize(
    ("kind", "credentials"),
    [("gitea", f"{SECRET}:x-oauth-basic"), ("forgejo", f"{SECRET}:x-oauth-basic"),
     ("github", f"x-access-token:{SECRET}")],
)  # fmt: skip
def test_push_credentials_put_the_token_in_a_header_only(kind: str, credentials: str) -> None:
    target = ForgeTarget(kind=kind, base_url="https://git.example.com", owner="me", name="web",
                         token=SECRET)  # fmt: skip
    remote = "https://git.example.com:8443/me/web.git"

    env = push_credentials(target, remote)

    assert env["GIT_CONFIG_COUNT"] == "1"
    assert env["GIT_CONFIG_KEY_0"] == "http.https://git.example.com:8443/.extraHeader"
    header = env["GIT_CONFIG_VALUE_0"]
    assert header.startswith("Authorization: Basic ")
    assert base64.b64decode(header.removeprefix("Authorization: Basic ")).decode() == credentials
    assert SECRET not in env["GIT_CONFIG_KEY_0"]
    assert SECRET not in header  # only its base64 form
    # git itself applies the header to this remote, and to no other host
    assert header_git_sends(remote, env) == header
    assert header_git_sends("https://elsewhere.example.com/me/web.git", env) == ""
    # ssh and local remotes keep their own authentication
    others = ("git@git.example.com:me/web.git", "ssh://git@h:2222/me/web.git", "/srv/web.git")
    assert [push_credentials(target, other) for other in (*others, "file:///srv/w.git")] == [{}] * 4


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("https://git.example.com/me/web.git", ("https://git.example.com", "me", "web")),
        ("https://git.example.com/me/web", ("https://git.example.com", "me", "web")),
        ("https://git.example.com/me/web/", ("https://git.example.com", "me", "web")),
        ("http://h:3000/gitea/me/web.git", ("http://h:3000/gitea", "me", "web")),
        ("https://user:pw@git.example.com/me/web.git", ("https://git.example.com", "me", "web")),
        ("git@github.com:me/web.git", ("https://github.com", "me", "web")),
        ("github.com:me/web", ("https://github.com", "me", "web")),
        ("ssh://git@host:2222/me/web.git", ("https://host", "me", "web")),
        ("https://git.example.com/web.git", None),
        ("/srv/git/web.git", None),
        ("file:///srv/git/me/web.git", None),
        ("not a url", None),
    ],
)  # fmt: skip
def test_parse_remote(url: str, parsed: tuple[str, str, str] | None) -> None:
    assert parse_remote(url) == parsed


@pytest.mark.parametrize(
    ("kind", "web", "api"),
    [
        ("github", "https://github.com", "https://api.github.com"),
        ("github", "https://github.com/", "https://api.github.com"),
        ("github", "https://ghe.example.com", "https://ghe.example.com/api/v3"),
        ("gitea", "https://git.example.com/", "https://git.example.com"),
        ("forgejo", "https://h/forgejo", "https://h/forgejo"),
    ],
)  # fmt: skip
def test_api_base(kind: str, web: str, api: str) -> None:
    assert api_base(kind, web) == api
