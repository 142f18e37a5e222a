"""Where the shared specs live: `shared/specs` in the folder next to the repository (or
any folder above it), or under $DEVSERVER_SHARED when the checkout lives elsewhere."""

from __future__ import annotations

import os
from pathlib import Path


def spec_path(relative: str) -> Path:
    """`relative` under shared/specs, e.g. "telegram-bot-api/api.json"."""
    if root := os.environ.get("DEVSERVER_SHARED"):
        return Path(root) / "specs" / relative
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / "specs" / relative
        if candidate.exists():
            return candidate
    return here.parents[2] / "shared" / "specs" / relative
