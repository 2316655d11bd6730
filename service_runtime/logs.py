"""Logging set-up shared by the processes: one line per record, to stderr."""

from __future__ import annotations

import logging
import os


def configure_logging(process: str) -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format=f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s",
    )
