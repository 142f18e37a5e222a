"""A fake Gitea (or Forgejo) API on 127.0.0.1, checked against Gitea's own swagger.

Every request is checked against shared/specs/gitea/swagger.v1.gitea-1.25.3.json: the path
and method must exist under /api/v1, query parameters and body properties must be declared,
with their types, and required ones present (plus head, base and title to create a pull
request, which the real server demands though the swagger doesn't mark them). What breaks
the description is answered with 404/405/422 and recorded in `violations`; so is a missing
or unknown Authorization scheme. A wrong token gets a 401 without a violation: that is the
user's mistake, and clients must handle it. The fake's own replies are checked against the
swagger's response schemas too.

    async with FakeGitea(git_remote=bare_repo) as gitea:
        forge = make_forge(gitea.target())
        ...
        assert gitea.pulls[1]["body"] == "..."
        gitea.assert_clean()

Pull requests behave like Gitea's: numbers shared with issues from 1, 409 for a second open
pull request from the same head into the same base, 404 when `git_remote` (a bare repository)
lacks the head or base branch, 422 when head and base are the same, 201 for an edit.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fakes.forge_spec import JSON, Answer, ApiSpec, Call, FakeForge, Operation, resolve
from tests.specs import spec_path
from worker.forges.base import ForgeTarget

GITEA_SPEC = spec_path("gitea/swagger.v1.gitea-1.25.3.json")
TEST_TOKEN = "gitea-test-token-5f0c2a"  # noqa: S105  # not a secret: the fake's own token
DEFAULT_PAGE_SIZE = 30  # Gitea's [api] DEFAULT_PAGING_NUM
Reply = tuple[int, JSON, dict[str, str]]


def load_swagger(
    raw: JSON, *, extra_required: Mapping[str, Iterable[str]], tails: Iterable[str] = ()
) -> ApiSpec:
    """A Swagger 2 description. `extra_required` adds required body properties per
    operationId; `tails` are templates the server routes with a catch-all last parameter."""
    operations: list[Operation] = []
    for template, item in raw["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            params: dict[str, JSON] = {}
            body: JSON = None
            for p in (
                resolve(raw, p) for p in [*item.get("parameters", []), *op.get("parameters", [])]
            ):
                if p["in"] == "body":
                    body = dict(resolve(raw, p.get("schema", {})))
                elif p["in"] in ("path", "query"):
                    schema = {k: v for k, v in p.items() if k not in ("name", "in", "required")}
                    params[p["name"]] = {
                        "in": p["in"],
                        "required": p.get("required", False),
                        "schema": schema,
                    }
            if body is not None and op["operationId"] in extra_required:
                more = extra_required[op["operationId"]]
                body["required"] = sorted({*body.get("required", []), *more})
            responses = {
                int(code): resolve(raw, answer).get("schema")
                for code, answer in op.get("responses", {}).items()
                if code.isdigit()
            }
            operations.append(
                Operation(
                    op["operationId"],
                    method.upper(),
                    template,
                    params,
                    body,
                    responses,
                    template in set(tails),
                )
            )
    return ApiSpec(tuple(operations), raw)


@functools.cache
def gitea_spec() -> ApiSpec:
    raw = json.loads(GITEA_SPEC.read_text(encoding="utf-8"))
    return load_swagger(
        raw,
        extra_required={"repoCreatePullRequest": ("head", "base", "title")},
        tails=("/repos/{owner}/{repo}/pulls/{base}/{head}",),  # Gitea: m.Get("/{base}/*", ...)
    )


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def link_header(url: str, query: Mapping[str, str], page: int, pages: int) -> dict[str, str]:
    """A Link header with next/last/first/prev, as Gitea and GitHub send for lists."""

    def at(number: int) -> str:
        params = "&".join(f"{k}={v}" for k, v in {**query, "page": str(number)}.items())
        return f"<{url}?{params}>"

    links = [f'{at(page + 1)}; rel="next"', f'{at(pages)}; rel="last"'] if page < pages else []
    if page > 1:
        links += [f'{at(1)}; rel="first"', f'{at(page - 1)}; rel="prev"']
    return {"Link": ", ".join(links)} if links else {}


class FakeGitea(FakeForge):
    flavour = "gitea"

    def __init__(
        self,
        token: str = TEST_TOKEN,
        *,
        owner: str = "me",
        name: str = "web",
        git_remote: Path | None = None,
        push: bool = True,
        archived: bool = False,
        default_branch: str = "main",
        max_page_size: int = 50,
    ) -> None:
        super().__init__(
            gitea_spec(),
            token=token,
            owner=owner,
            name=name,
            prefix="/api/v1",
            git_remote=git_remote,
        )
        self.push, self.archived, self.default_branch = push, archived, default_branch
        self.max_page_size = max_page_size  # Gitea's [api] MAX_RESPONSE_ITEMS
        self.pulls: dict[int, JSON] = {}  # number -> head, base, title, body, state, ...
        self.issues: set[int] = set()  # numbers of plain issues (they share the numbering)
        self.comments: dict[int, list[JSON]] = {}  # issue or pull number -> comments
        self._last_index = 0

    @property
    def base_url(self) -> str:
        """The forge's web address, what ForgeTarget.base_url takes for Gitea/Forgejo."""
        return self.root_url

    def target(self, *, token: str | None = None) -> ForgeTarget:
        return ForgeTarget(
            kind=self.flavour,
            base_url=self.base_url,
            owner=self.owner,
            name=self.name,
            token=self.token if token is None else token,
        )

    def add_pull(
        self,
        head: str,
        base: str = "main",
        *,
        title: str = "seeded",
        body: str = "",
        state: str = "open",
    ) -> JSON:
        """Store a pull request as if it had been opened before."""
        self._last_index += 1
        number, stamp = self._last_index, now()
        self.pulls[number] = {
            "number": number,
            "head": head,
            "base": base,
            "title": title,
            "body": body,
            "state": state,
            "created_at": stamp,
            "updated_at": stamp,
        }
        return self.pulls[number]

    def add_issue(self) -> int:
        self._last_index += 1
        self.issues.add(self._last_index)
        return self._last_index

    def open_pulls(self) -> list[JSON]:
        return [pr for pr in self.pulls.values() if pr["state"] == "open"]

    def error_body(self, status: int, message: str) -> JSON:
        if status == 404 and message == "Not Found":
            message = "The target couldn't be found."
        return {"message": message, "url": f"{self.root_url}/api/swagger"}

    # --- JSON as Gitea answers ---

    def _html(self, path: str = "") -> str:
        return f"{self.root_url}/{self.owner}/{self.name}{path}"

    def _pull_json(self, pr: JSON) -> JSON:
        number = pr["number"]
        url = self._html(f"/pulls/{number}")

        def branch(ref: str) -> JSON:
            return {"label": ref, "ref": ref, "sha": f"{number:040x}", "repo_id": 1}

        return {
            "id": number,
            "number": number,
            "url": url,
            "html_url": url,
            "diff_url": f"{url}.diff",
            "patch_url": f"{url}.patch",
            "title": pr["title"],
            "body": pr["body"],
            "state": pr["state"],
            "draft": False,
            "is_locked": False,
            "mergeable": True,
            "merged": False,
            "comments": len(self.comments.get(number, [])),
            "user": {"id": 1, "login": self.owner},
            "labels": [],
            "assignees": [],
            "head": branch(pr["head"]),
            "base": branch(pr["base"]),
            "created_at": pr["created_at"],
            "updated_at": pr["updated_at"],
        }

    def _comment_json(self, number: int, comment: JSON) -> JSON:
        return {
            "id": comment["id"],
            "body": comment["body"],
            "user": {"id": 1, "login": self.owner},
            "html_url": self._html(f"/issues/{number}#issuecomment-{comment['id']}"),
            "issue_url": self._html(f"/issues/{number}"),
            "created_at": comment["created_at"],
            "updated_at": comment["created_at"],
        }

    def _pull(self, call: Call) -> JSON:
        pr = self.pulls.get(int(call.path_params["index"]))
        if pr is None:
            raise Answer(404, "Not Found")
        return pr

    # --- operations (named op_<operationId>) ---

    async def op_repoGet(self, call: Call) -> Reply:
        permissions = {"admin": False, "push": self.push, "pull": True}
        return (
            200,
            {
                "id": 1,
                "name": self.name,
                "full_name": f"{self.owner}/{self.name}",
                "owner": {"id": 1, "login": self.owner},
                "html_url": self._html(),
                "clone_url": f"{self._html()}.git",
                "default_branch": self.default_branch,
                "archived": self.archived,
                "private": True,
                "empty": False,
                "permissions": permissions,
            },
            {},
        )

    async def op_repoListPullRequests(self, call: Call) -> Reply:
        state, base = call.query.get("state", "open"), call.query.get("base_branch")
        found = [
            pr
            for pr in self.pulls.values()
            if state in ("all", pr["state"]) and base in (None, pr["base"])
        ]
        limit = int(call.query.get("limit", 0)) or DEFAULT_PAGE_SIZE
        limit = min(limit, self.max_page_size)
        page = max(1, int(call.query.get("page", 1)))
        pages = max(1, -(-len(found) // limit))
        query = {k: v for k, v in call.query.items() if k != "page"} | {"limit": str(limit)}
        headers = {"X-Total-Count": str(len(found))} | link_header(call.url, query, page, pages)
        chunk = found[(page - 1) * limit : page * limit]
        return 200, [self._pull_json(pr) for pr in chunk], headers

    async def op_repoCreatePullRequest(self, call: Call) -> Reply:
        head, base = call.body["head"], call.body["base"]
        if ":" in head:  # owner:branch, a fork's branch; the fake knows one repository
            fork, _, head = head.partition(":")
            if fork != self.owner:
                raise Answer(404, "Not Found")
        if head == base:
            message = "Invalid PullRequest: There are no changes between the head and the base"
            raise Answer(422, message)
        if not (await self.branch_exists(head) and await self.branch_exists(base)):
            raise Answer(404, "Not Found")
        for pr in self.open_pulls():
            if (pr["head"], pr["base"]) == (head, base):
                raise Answer(
                    409,
                    f"pull request already exists for these targets [id: "
                    f"{pr['number']}, issue_id: {pr['number']}, head_repo_id: 1, "
                    f"base_repo_id: 1, head_branch: {head}, base_branch: {base}]",
                )
        pr = self.add_pull(head, base, title=call.body["title"], body=call.body.get("body", ""))
        return 201, self._pull_json(pr), {}

    async def op_repoGetPullRequestByBaseHead(self, call: Call) -> Reply:
        head = call.path_params["head"].rpartition(":")[2]
        matching = [
            pr
            for pr in self.pulls.values()
            if (pr["head"], pr["base"]) == (head, call.path_params["base"])
        ]
        if not matching:
            raise Answer(404, "Not Found")
        return 200, self._pull_json(matching[-1]), {}

    async def op_repoGetPullRequest(self, call: Call) -> Reply:
        return 200, self._pull_json(self._pull(call)), {}

    async def op_repoEditPullRequest(self, call: Call) -> Reply:
        pr, changes = self._pull(call), call.body or {}
        if changes.get("state") not in (None, "open", "closed"):
            raise Answer(422, f"invalid state {changes['state']!r}")
        if changes.get("title"):
            pr["title"] = changes["title"]
        for key in ("body", "state", "base"):
            if changes.get(key) is not None:
                pr[key] = changes[key]
        pr["updated_at"] = now()
        return 201, self._pull_json(pr), {}

    async def op_issueGetComments(self, call: Call) -> Reply:
        number = int(call.path_params["index"])
        if number not in self.pulls and number not in self.issues:
            raise Answer(404, "Not Found")
        since = call.query.get("since", "")
        comments = [c for c in self.comments.get(number, []) if c["created_at"] >= since]
        return 200, [self._comment_json(number, c) for c in comments], {}

    async def op_issueCreateComment(self, call: Call) -> Reply:
        number = int(call.path_params["index"])
        if number not in self.pulls and number not in self.issues:
            raise Answer(404, "Not Found")
        every = [c for comments in self.comments.values() for c in comments]
        comment: dict[str, Any] = {
            "id": len(every) + 1,
            "body": call.body["body"],
            "created_at": now(),
        }
        self.comments.setdefault(number, []).append(comment)
        return 201, self._comment_json(number, comment), {}


class FakeForgejo(FakeGitea):
    """Forgejo speaks Gitea's API: the same fake, labelled (and targeted) as forgejo."""

    flavour = "forgejo"
