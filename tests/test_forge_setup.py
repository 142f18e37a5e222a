"""`devserver repo add --forge …`: the forge guessed from the source URL, and checked
against a fake Gitea before the repo is saved."""

from __future__ import annotations

import argparse

import pytest

from devserver.forge_setup import ForgeSetupError, add_forge_arguments, check_forge, forge_settings
from tests.fakes.gitea import FakeGitea


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_forge_arguments(parser)
    return parser.parse_args(argv)


def test_the_forge_is_read_from_the_clone_url() -> None:
    setup = forge_settings(_args("--forge", "gitea"), "https://git.example.com/me/web.git",
                           {"GITEA_TOKEN": "t0ken-value"})  # fmt: skip
    assert (setup.base_url, setup.owner, setup.name) == ("https://git.example.com", "me", "web")
    assert (setup.token_env, setup.token) == ("GITEA_TOKEN", "t0ken-value")
    github = forge_settings(_args("--forge", "github", "--token-env", "WORK_GH_TOKEN"),
                            "git@github.com:acme/api.git", {"WORK_GH_TOKEN": "x" * 20})  # fmt: skip
    assert (github.base_url, github.owner, github.name) == ("https://github.com", "acme", "api")
    assert github.target().base_url == "https://api.github.com"
    assert "x" * 20 not in repr(github.target())


async def test_the_token_is_checked_against_the_forge(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeGitea() as forge:
        url = f"{forge.root_url}/me/web.git"
        good = forge_settings(_args("--forge", "gitea"), url, {"GITEA_TOKEN": forge.token})
        await check_forge(good, no_check=False)
        assert "me/web" in capsys.readouterr().out
        bad = forge_settings(_args("--forge", "gitea"), url, {"GITEA_TOKEN": "wrong-token-123"})
        with pytest.raises(ForgeSetupError) as info:
            await check_forge(bad, no_check=False)
        assert "401" in str(info.value)
        assert "--no-check" in str(info.value)
        assert "wrong-token-123" not in str(info.value)
        requests = len(forge.requests)
        await check_forge(bad, no_check=True)  # asked not to: no request
        assert len(forge.requests) == requests
        forge.assert_clean()


async def test_a_read_only_token_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeGitea(push=False) as forge:
        setup = forge_settings(_args("--forge", "gitea"), f"{forge.root_url}/me/web.git",
                               {"GITEA_TOKEN": forge.token})  # fmt: skip
        with pytest.raises(ForgeSetupError) as info:
            await check_forge(setup, no_check=False)
    assert "read" in str(info.value)
    assert capsys.readouterr().out == ""
