"""Env worker processes: one torch thread, SIGINT ignored, and glibc keeping freed buffers mapped."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys

import pytest


def _has_mallinfo2() -> bool:
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2  # noqa: B018
    except (OSError, AttributeError):
        return False
    return True


# Runs in a fresh interpreter: allocate a 4 MB tensor, report how glibc served it (mmapped bytes while
# it lives) and how much heap stays mapped once it is freed.
_PROBE = r"""
import ctypes, ctypes.util, json, signal, sys
import torch

class MallInfo2(ctypes.Structure):
    _fields_ = [(k, ctypes.c_size_t) for k in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2
# Start from a foreground process's SIGINT handler: a child inherits an ignored SIGINT (pytest run as a
# background job `&` ignores it), and Python keeps it ignored, so the control would read "ignored" too.
signal.signal(signal.SIGINT, signal.default_int_handler)
if sys.argv[1] == "worker":
    from metacurr.envs.worker import init_worker_process
    init_worker_process()
elif sys.argv[1] == "subproc_factory":  # what SubprocVecEnv runs first in each worker
    from metacurr.agents.train import _make_env
    _make_env({"task": {"family": "mnist1d", "arch": "mlp", "n_stages": 2}, "control_steps": 2}, True)
t = torch.empty(1 << 20)  # 4 MB
t.fill_(1.0)
live = libc.mallinfo2()
del t
freed = libc.mallinfo2()
print(json.dumps({"mmapped_live": live.hblkhd, "heap_after_free": freed.arena, "threads": torch.get_num_threads(),
                  "sigint_ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN}))
"""


def _probe(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != "METACURR_GLIBC_DEFAULTS"} | env
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, timeout=120, env=environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_mallinfo2(), reason="glibc (mallinfo2) only")
def test_worker_processes_keep_multi_megabyte_buffers_on_the_heap():
    plain, worker = _probe("plain"), _probe("worker")
    mb4 = 4 << 20
    # Control: glibc's defaults serve 4 MB with mmap (faulted in again on every allocation).
    assert plain["mmapped_live"] >= mb4
    # A worker serves it from the heap and keeps the heap mapped after the free, for the next step.
    assert worker["mmapped_live"] < mb4
    assert worker["heap_after_free"] >= mb4
    assert worker["threads"] == 1 and worker["sigint_ignored"]
    assert not plain["sigint_ignored"]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_mallinfo2(), reason="glibc (mallinfo2) only")
def test_glibc_defaults_can_be_kept_in_workers():
    worker = _probe("worker", METACURR_GLIBC_DEFAULTS="1")
    assert worker["mmapped_live"] >= 4 << 20  # served by mmap, as glibc does by default
    assert worker["threads"] == 1 and worker["sigint_ignored"]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _has_mallinfo2(), reason="glibc (mallinfo2) only")
def test_subproc_env_factory_sets_up_its_worker():
    worker = _probe("subproc_factory")
    assert worker["mmapped_live"] < 4 << 20 and worker["heap_after_free"] >= 4 << 20
    assert worker["threads"] == 1 and worker["sigint_ignored"]
