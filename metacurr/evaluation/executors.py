"""Where the cells of an evaluation run: the execute step's seam.

`execute` submits jobs (cells and best-static search candidates, each a top-level function of one
JSON-serialisable payload) to a `concurrent.futures.Executor` and waits on the futures; which executor
is the *backend*'s choice. A backend is a callable ``backend(workers) -> context manager yielding an
Executor``. `local_backend` (the default) runs in this process for ``workers=1`` and in a process pool
otherwise; `metacurr.evaluation.ray_backend.ray_backend` runs each job as a Ray task; any other backend
slots in by passing ``backend=`` to `metacurr.evaluate` / `execute`.

Pool workers are processes started by a ``forkserver`` (``spawn`` where that is unavailable; never a
plain fork of this process) with one torch thread each; they never print (their stdout / stderr are
redirected to /dev/null).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import torch

from metacurr.evaluation.orphans import watch_parent

#: ``backend(workers)`` -> a context manager yielding the Executor the cells are submitted to.
Backend = Callable[[int], AbstractContextManager[cf.Executor]]


def _worker_init(owner_pid: int | None = None) -> None:
    if owner_pid is not None:  # end this worker if the evaluation process dies without cleanup (kill -9)
        watch_parent(owner_pid)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the worker
    sys.stdout = sys.stderr = devnull


class _InlineExecutor(cf.Executor):
    """workers=1: run jobs in this process, one torch thread (restored afterwards)."""

    def submit(self, fn, /, *args, **kwargs):
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - surfaced through the future, like a pool
            fut.set_exception(e)
        return fut


@contextlib.contextmanager
def local_backend(workers: int) -> Iterator[cf.Executor]:
    """This process for ``workers=1`` (one torch thread, restored afterwards), else a process pool."""
    if workers == 1:
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield _InlineExecutor()
        finally:
            torch.set_num_threads(n)
        return
    ex = cf.ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_worker_init,
                                initargs=(os.getpid(),))
    try:
        yield ex
    except BaseException:
        # Ctrl-C or an error: drop queued cells instead of running them all before exiting.
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


#: Imported once by the fork server, so workers start without re-importing torch, sklearn, ...
PRELOAD = ["metacurr.run", "metacurr.evaluation.execute", "metacurr.evaluation.incremental", "metacurr.evaluation.orphans",
           "metacurr.tasks.digits", "metacurr.tasks.mnist1d", "metacurr.tasks.sequence", "sklearn.datasets"]


def _mp_context():
    """``forkserver`` where available (fast worker start from a clean, preloaded server; no fork of this
    process's threads), else ``spawn``. Never plain ``fork``: the parent may hold torch threads."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")
