"""Whether a process still runs: the lock of an experiment and the temporary folders of an interrupted run
are taken as abandoned only when the process that made them is gone."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine (one of another user's counts: it cannot be
    signalled, but it runs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True
