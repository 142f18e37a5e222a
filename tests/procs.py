"""Test helpers about processes: is a pid really gone?"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def is_gone(pid: int) -> bool:
    """True once `pid` no longer runs. A zombie counts as gone: PID 1 in some containers
    never reaps orphans."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


async def wait_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        await asyncio.sleep(0.05)
    return is_gone(pid)
