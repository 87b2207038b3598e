"""Logging helpers: one format everywhere, with time and place (ESPnet style)."""

from __future__ import annotations

import logging
import os
import shlex
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


def setup_training_logging(log_file: Path) -> bool:
    """Logging of one training process: under torchrun only rank 0 (``RANK``) logs progress, to stderr and
    ``log_file``; the other ranks show their warnings and errors only, marked with their rank. Returns
    whether this process is rank 0."""
    rank = os.environ.get("RANK", "0")
    if rank == "0":
        setup_logging(log_file)
        return True
    logging.basicConfig(level=logging.WARNING, format=f"[rank {rank}] {FORMAT}",
                        handlers=[logging.StreamHandler(sys.stderr)], force=True)
    return False


def log_command_line() -> None:
    """Echo the command line, as ESPnet's tools do at start, quoted so that it pastes back as it was run."""
    logging.info("command: %s", shlex.join(sys.argv))
