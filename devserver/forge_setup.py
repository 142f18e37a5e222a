"""`devserver repo add --forge …`: where a repo's PRs go, filled in from the source URL and
checked against the forge before the repo is saved (so a wrong token shows up now, not at the
end of a task)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from worker.forges.access import DEFAULT_TOKEN_ENV
from worker.forges.base import ForgeError, ForgeTarget, api_base, make_forge, parse_remote


class ForgeSetupError(Exception):
    """Bad or unreachable forge settings; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class ForgeSetup:
    kind: str
    base_url: str | None = None
    owner: str | None = None
    name: str | None = None
    token_env: str | None = None
    token: str | None = None

    def target(self) -> ForgeTarget:
        if not (self.base_url and self.owner and self.name and self.token):
            raise ForgeSetupError("the forge needs an address, a repository and a token")
        return ForgeTarget(kind=self.kind, base_url=api_base(self.kind, self.base_url),
                           owner=self.owner, name=self.name, token=self.token)  # fmt: skip


def add_forge_arguments(parser: argparse.ArgumentParser) -> None:
    forge = parser.add_argument_group("delivery (flows pr and direct)")
    forge.add_argument("--forge", choices=("local", "gitea", "forgejo", "github"),
                       default="local", help="where PRs are opened; local: the pushed branch "
                       "is the deliverable (default)")  # fmt: skip
    forge.add_argument(
        "--forge-url", metavar="URL", help="the forge's web address (default: from the source URL)"
    )
    forge.add_argument(
        "--forge-repo",
        metavar="OWNER/NAME",
        help="the repository on the forge (default: from the source URL)",
    )
    forge.add_argument("--token-env", metavar="NAME", help="the worker's environment variable "
                       "holding the forge token (default GITEA_TOKEN, FORGEJO_TOKEN or "
                       "GITHUB_TOKEN)")  # fmt: skip
    forge.add_argument(
        "--no-check", action="store_true", help="do not check the forge address and token now"
    )
    parser.add_argument(
        "--allow-binary",
        action="store_true",
        help="let changes add binary files (the preflight blocks them otherwise)",
    )


def forge_settings(args: argparse.Namespace, source: str, environ: Mapping[str, str]) -> ForgeSetup:
    """The forge of `repo add` from its options, the rest guessed from the source URL."""
    if args.forge == "local":
        if args.forge_url or args.forge_repo or args.token_env:
            raise ForgeSetupError("--forge-url, --forge-repo and --token-env need --forge "
                                  "gitea, forgejo or github")  # fmt: skip
        return ForgeSetup("local")
    guessed = parse_remote(source)
    base_url = (args.forge_url or (guessed[0] if guessed else "")).rstrip("/")
    if args.forge_repo:
        owner, _, name = args.forge_repo.partition("/")
        if not owner or not name or "/" in name:
            raise ForgeSetupError(f"--forge-repo must be OWNER/NAME, not {args.forge_repo!r}")
    elif guessed:
        owner, name = guessed[1], guessed[2]
    else:
        raise ForgeSetupError(f"cannot tell the forge repository from {source!r}: give "
                              "--forge-url and --forge-repo OWNER/NAME")  # fmt: skip
    if not base_url.startswith(("https://", "http://")):
        raise ForgeSetupError("--forge-url must be the forge's http(s) address, e.g. "
                              "https://git.example.com")  # fmt: skip
    token_env = args.token_env or DEFAULT_TOKEN_ENV[args.forge]
    if not token_env.isupper() or not token_env.endswith("_TOKEN"):
        raise ForgeSetupError(f"--token-env {token_env!r}: use an upper-case name ending in "
                              "_TOKEN (such values are kept out of logs)")  # fmt: skip
    token = environ.get(token_env, "").strip() or None
    return ForgeSetup(args.forge, base_url, owner, name, token_env, token)


async def check_forge(forge: ForgeSetup, *, no_check: bool) -> None:
    """Ask the forge whether the token may push; print what it said."""
    if forge.kind == "local" or no_check:
        return
    if forge.token is None:
        print(f"warning: {forge.token_env} is not set here; the worker needs it for the pr "  # noqa: T201
              "and direct flows", file=sys.stderr)  # fmt: skip
        return
    client = make_forge(forge.target())
    try:
        said = await client.check()
    except ForgeError as exc:
        raise ForgeSetupError(f"{exc} (add --no-check to register it anyway)") from exc
    finally:
        await client.aclose()
    print(f"forge: {said}")  # noqa: T201  # CLI output
