"""A fake GitHub (or GitHub Enterprise Server) REST API on 127.0.0.1.

Requests are checked against tests/fakes/github_pulls.json: the operations DevServer uses,
extracted from GitHub's official OpenAPI description (github/rest-api-description; the file
names its source and commit). Unknown paths and methods, undeclared query parameters or
body properties, wrong types or enum values and missing required properties are answered
404/405/422 and recorded in `violations`, as are a missing Authorization header, an unknown
auth scheme and an unsupported X-GitHub-Api-Version. Beyond the description, the fake
enforces what GitHub's server does: a title to create a pull request, and `head` as
owner:branch when filtering the list. Response bodies are not checked (the extract keeps
only the status codes).

    async with FakeGitHub(enterprise=True) as github:   # API under /api/v3
        forge = make_forge(github.target())

Behaviour: `Authorization: Bearer <token>` (or `token <token>`); a second open pull request
for the same head and base is refused with 422 and GitHub's body shape; a missing branch in
`git_remote` gives 422 with field head/base "invalid"; updates answer 200.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.forge_spec import JSON, Answer, ApiSpec, Call, FakeForge, Operation, Recorded
from tests.fakes.gitea import link_header, now
from worker.forges.base import ForgeTarget

GITHUB_SPEC = Path(__file__).with_name("github_pulls.json")
TEST_TOKEN = "ghp_fakeTestToken0123456789"  # noqa: S105  # not a secret: the fake's own token
API_VERSION = "2022-11-28"
DOCS = "https://docs.github.com/rest"
Reply = tuple[int, JSON, dict[str, str]]


def load_openapi(raw: JSON) -> ApiSpec:
    """An OpenAPI 3 description whose parameters are inlined (as in github_pulls.json)."""
    operations: list[Operation] = []
    for template, item in raw["paths"].items():
        for method, op in item.items():
            params = {
                p["name"]: {
                    "in": p["in"],
                    "required": p.get("required", False),
                    "schema": p.get("schema", {}),
                }
                for p in op.get("parameters", [])
            }
            content = (op.get("requestBody") or {}).get("content", {})
            body = content.get("application/json", {}).get("schema")
            responses: dict[int, JSON] = {int(code): None for code in op.get("responses", {})}
            operations.append(
                Operation(op["operationId"], method.upper(), template, params, body, responses)
            )
    return ApiSpec(tuple(operations), raw)


@functools.cache
def github_spec() -> ApiSpec:
    return load_openapi(json.loads(GITHUB_SPEC.read_text(encoding="utf-8")))


def validation_failed(*errors: JSON, violation: str | None = None) -> Answer:
    """GitHub's 422: {"message": "Validation Failed", "errors": [...], ...}."""
    docs = f"{DOCS}/pulls/pulls#create-a-pull-request"
    body = {"message": "Validation Failed", "errors": list(errors), "documentation_url": docs}
    return Answer(422, "Validation Failed", violation=violation, body=body | {"status": "422"})


def custom(message: str) -> JSON:
    return {"resource": "PullRequest", "code": "custom", "message": message}


class FakeGitHub(FakeForge):
    flavour = "github"

    def __init__(
        self,
        token: str = TEST_TOKEN,
        *,
        owner: str = "me",
        name: str = "web",
        git_remote: Path | None = None,
        push: bool = True,
        archived: bool = False,
        enterprise: bool = False,
        default_branch: str = "main",
        max_page_size: int = 100,
    ) -> None:
        super().__init__(
            github_spec(),
            token=token,
            owner=owner,
            name=name,
            prefix="/api/v3" if enterprise else "",
            git_remote=git_remote,
        )
        self.push, self.archived, self.default_branch = push, archived, default_branch
        self.max_page_size = max_page_size
        self.pulls: dict[int, JSON] = {}  # number -> head, base, title, body, state, ...
        self.comments: dict[int, list[JSON]] = {}  # pull number -> comments

    @property
    def base_url(self) -> str:
        """The API address, what ForgeTarget.base_url takes for GitHub ("" or /api/v3)."""
        return f"{self.root_url}{self.prefix}"

    def target(self, *, token: str | None = None) -> ForgeTarget:
        return ForgeTarget(
            kind="github",
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
        number, stamp = len(self.pulls) + 1, now()
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

    def open_pulls(self) -> list[JSON]:
        return [pr for pr in self.pulls.values() if pr["state"] == "open"]

    def error_body(self, status: int, message: str) -> JSON:
        if status == 401:
            message = "Bad credentials" if message == "Unauthorized" else message
        return {"message": message, "documentation_url": DOCS, "status": str(status)}

    def _validate(self, request: web.Request, recorded: Recorded, raw: bytes) -> Call:
        call = super()._validate(request, recorded, raw)
        version = request.headers.get("X-GitHub-Api-Version")
        if version not in (None, API_VERSION):
            raise Answer(
                400,
                f"API version {version} is not supported.",
                violation=f"X-GitHub-Api-Version {version!r}",
            )
        return call

    # --- JSON as GitHub answers ---

    def _html(self, path: str = "") -> str:
        return f"{self.root_url}/{self.owner}/{self.name}{path}"

    def _pull_json(self, pr: JSON) -> JSON:
        number = pr["number"]

        def branch(ref: str) -> JSON:
            return {
                "label": f"{self.owner}:{ref}",
                "ref": ref,
                "sha": f"{number:040x}",
                "user": {"login": self.owner, "id": 1},
            }

        return {
            "url": f"{self.base_url}/repos/{self.owner}/{self.name}/pulls/{number}",
            "id": number,
            "node_id": f"PR_{number}",
            "html_url": self._html(f"/pull/{number}"),
            "number": number,
            "state": pr["state"],
            "locked": False,
            "title": pr["title"],
            "body": pr["body"],
            "user": {"login": self.owner, "id": 1},
            "draft": False,
            "merged": False,
            "head": branch(pr["head"]),
            "base": branch(pr["base"]),
            "created_at": pr["created_at"],
            "updated_at": pr["updated_at"],
        }

    def _comment_json(self, number: int, comment: JSON) -> JSON:
        return {
            "id": comment["id"],
            "body": comment["body"],
            "user": {"login": self.owner, "id": 1},
            "html_url": self._html(f"/pull/{number}#issuecomment-{comment['id']}"),
            "created_at": comment["created_at"],
            "updated_at": comment["created_at"],
        }

    def _pull(self, call: Call, key: str = "pull_number") -> JSON:
        pr = self.pulls.get(int(call.path_params[key]))
        if pr is None:
            raise Answer(404, "Not Found")
        return pr

    def _page(self, call: Call, items: list[JSON]) -> tuple[list[JSON], dict[str, str]]:
        per_page = min(int(call.query.get("per_page", 30)), self.max_page_size)
        page = max(1, int(call.query.get("page", 1)))
        pages = max(1, -(-len(items) // per_page))
        query = {k: v for k, v in call.query.items() if k != "page"} | {"per_page": str(per_page)}
        return items[(page - 1) * per_page : page * per_page], link_header(
            call.url, query, page, pages
        )

    # --- operations (named op_<operationId>, "/" and "-" as "_") ---

    async def op_repos_get(self, call: Call) -> Reply:
        permissions = {
            "admin": False,
            "maintain": False,
            "push": self.push,
            "triage": self.push,
            "pull": True,
        }
        return (
            200,
            {
                "id": 1,
                "node_id": "R_1",
                "name": self.name,
                "full_name": f"{self.owner}/{self.name}",
                "owner": {"login": self.owner, "id": 1},
                "private": True,
                "html_url": self._html(),
                "url": f"{self.base_url}/repos/{self.owner}/{self.name}",
                "default_branch": self.default_branch,
                "archived": self.archived,
                "permissions": permissions,
            },
            {},
        )

    async def op_pulls_list(self, call: Call) -> Reply:
        state, head, base = (
            call.query.get("state", "open"),
            call.query.get("head"),
            call.query.get("base"),
        )
        if head is not None and ":" not in head:
            raise Answer(
                422, "head must be user:ref-name", violation=f"head filter {head!r} names no owner"
            )
        owner, _, ref = (head or "").partition(":")
        found = [
            pr
            for pr in sorted(self.pulls.values(), key=lambda pr: -pr["number"])
            if state in ("all", pr["state"])
            and base in (None, pr["base"])
            and (head is None or (owner == self.owner and ref == pr["head"]))
        ]
        chunk, headers = self._page(call, found)
        return 200, [self._pull_json(pr) for pr in chunk], headers

    async def op_pulls_create(self, call: Call) -> Reply:
        body, repo = call.body, f"{self.owner}/{self.name}"
        if "issue" in body or not body.get("title"):  # GitHub needs one of them; we send titles
            missing = {"resource": "PullRequest", "code": "missing_field", "field": "title"}
            violation = "issue conversion is not faked" if "issue" in body else "no title"
            raise validation_failed(missing, violation=violation)
        owner, _, head = body["head"].rpartition(":")
        base = body["base"]
        if owner not in ("", self.owner) or not await self.branch_exists(head):
            raise validation_failed({"resource": "PullRequest", "field": "head", "code": "invalid"})
        if not await self.branch_exists(base):
            raise validation_failed({"resource": "PullRequest", "field": "base", "code": "invalid"})
        if head == base:
            raise validation_failed(custom(f"No commits between {base} and {head}"))
        if any((pr["head"], pr["base"]) == (head, base) for pr in self.open_pulls()):
            raise validation_failed(
                custom(f"A pull request already exists for {self.owner}:{head}.")
            )
        pr = self.add_pull(head, base, title=body["title"], body=body.get("body", ""))
        headers = {"Location": f"{self.base_url}/repos/{repo}/pulls/{pr['number']}"}
        return 201, self._pull_json(pr), headers

    async def op_pulls_get(self, call: Call) -> Reply:
        return 200, self._pull_json(self._pull(call)), {}

    async def op_pulls_update(self, call: Call) -> Reply:
        pr, changes = self._pull(call), call.body or {}
        for key in ("title", "body", "state", "base"):
            if key in changes:
                pr[key] = changes[key]
        pr["updated_at"] = now()
        return 200, self._pull_json(pr), {}

    async def op_issues_list_comments(self, call: Call) -> Reply:
        number = int(self._pull(call, "issue_number")["number"])
        since = call.query.get("since", "")
        found = [c for c in self.comments.get(number, []) if c["updated_at"] >= since]
        chunk, headers = self._page(call, found)
        return 200, [self._comment_json(number, c) for c in chunk], headers

    async def op_issues_create_comment(self, call: Call) -> Reply:
        number = int(self._pull(call, "issue_number")["number"])
        every = [c for comments in self.comments.values() for c in comments]
        stamp = now()
        comment: dict[str, Any] = {
            "id": len(every) + 1,
            "body": call.body["body"],
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.comments.setdefault(number, []).append(comment)
        return 201, self._comment_json(number, comment), {}
