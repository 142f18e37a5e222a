"""The agent's git identity (worker/agents/environment.py), read back by git itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from worker.agents.environment import set_identity

NAMES = [
    ("DevServer Agent", "agent@devserver.invalid"),
    ('Zoë "the bot" O\'Brien', "zoe+bot@example.invalid"),
    ("back\\slash; # not a comment", "x@example.invalid"),
    ("tab\there", "tab@example.invalid"),
]


def read_back(home: Path, key: str) -> str:
    done = subprocess.run(
        ["git", "config", "--file", str(home / ".gitconfig"), "--get", key],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.removesuffix("\n")


@pytest.mark.parametrize(("name", "email"), NAMES)
async def test_a_new_homes_identity_reads_back_exactly(
    tmp_path: Path, name: str, email: str
) -> None:
    await set_identity(tmp_path / "home", name, email)
    assert read_back(tmp_path / "home", "user.name") == name
    assert read_back(tmp_path / "home", "user.email") == email
    assert read_back(tmp_path / "home", "commit.gpgsign") == "false"


async def test_an_existing_config_keeps_its_other_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Old\n[safe]\n\tdirectory = *\n")
    await set_identity(home, "New Name", "new@example.invalid")
    assert read_back(home, "user.name") == "New Name"
    assert read_back(home, "user.email") == "new@example.invalid"
    assert read_back(home, "safe.directory") == "*"
