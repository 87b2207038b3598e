"""Logging helpers: one format everywhere, with time and place (ESPnet style)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def setup_logging(log_file: Optional[Path] = None, level: int = logging.INFO) -> None:
    """Log to stderr and, if given, append to ``log_file`` as well."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a", encoding="utf-8"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)


def log_command_line() -> None:
    """Echo the command line, as ESPnet's tools do at start."""
    logging.info("command: %s", " ".join(sys.argv))
