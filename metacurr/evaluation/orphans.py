"""Worker processes that do not outlive the process that owns their pool.

A ``ProcessPoolExecutor`` worker waits on its call queue, and every worker holds both ends of that
queue's pipe, so when the owning process dies without cleanup (``kill -9``, the OOM killer, an
unhandled SIGTERM) the workers never see end-of-file and wait forever -- and with a ``forkserver`` they
also keep the fork server and the resource tracker alive. `watch_parent` runs a daemon thread in each
worker that ends the worker shortly after the owner is gone (the owner is a pid, not the worker's
parent: forkserver workers are children of the fork server).
"""

from __future__ import annotations

import os
import threading
import time

#: Seconds between checks; orphaned workers exit within about this long.
INTERVAL_S = 0.5
#: Exit status of a worker that ended because its owner died.
ORPHAN_EXIT_CODE = 3


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) from /proc/PID/stat; None where /proc is unavailable or the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def is_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` is running: not gone, not a zombie and (given ``start``) not a reused pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    st = _stat(pid)
    if st is None:
        return not os.path.exists("/proc/self/stat")  # no /proc here: trust kill(0); else it just died
    state, started = st
    return state not in ("Z", "X") and (start is None or started == start)


def watch_parent(pid: int, interval: float = INTERVAL_S) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit``) once process ``pid`` has died."""
    st = _stat(pid)
    start = st[1] if st is not None else None

    def loop() -> None:
        while True:
            time.sleep(interval)
            if not is_alive(pid, start):
                os._exit(ORPHAN_EXIT_CODE)

    t = threading.Thread(target=loop, name="metacurr-owner-watch", daemon=True)
    t.start()
    return t
