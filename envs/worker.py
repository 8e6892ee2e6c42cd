"""Set-up of the worker processes metacurr spawns for vector envs (``SubprocVecEnv`` and
`ShardedBatchedVecEnv` workers): one torch thread, Ctrl-C left to the parent, and glibc's
allocator told to keep freed memory.

Why the allocator: a batched shard frees and re-allocates buffers of a few MB every control step (the
MLP task's probe features are 3.7 MB, its gathered batches 2.4 MB). glibc serves such sizes with
``mmap`` (or trims them off the heap when freed), so every control step faulted them in again, with
the kernel zeroing each page: with two shards on 2 cores that cost ~10% of the batched env's rate for
the MLP task and about half of it for the CNN (``benchmarks/README.md``). Fixing both thresholds keeps those buffers on the heap and
the heap's top mapped; a worker then holds its peak memory plus at most ``TRIM_THRESHOLD``.
Setting only one of them is worse than neither (glibc then stops adapting the other: measured
slower both ways), so both are set, or none where ``mallopt`` is missing (not glibc).
``METACURR_GLIBC_DEFAULTS`` set to anything but empty or ``0`` leaves glibc's defaults (to compare, or to save the
retained memory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

import torch

__all__ = ["guard_forked_torch", "init_worker_process", "keep_freed_memory"]

#: The process that imported this module; a different pid means this is a fork of it.
_IMPORT_PID = os.getpid()


def guard_forked_torch() -> None:
    """In a child forked from the process that imported metacurr, run torch on one thread.

    A fork copies torch's intra-op thread pool (OpenMP) in a state that cannot start its threads again:
    after any multi-threaded torch op in the parent, the child's first parallel op (``torch.randperm``
    in the probe-set draw at reset, a large matmul) waits forever -- Gymnasium's ``AsyncVectorEnv``
    forks by default. One thread never enters the pool. Env workers run one thread anyway
    (`init_worker_process`), so the numbers are those of every other worker. Cheap enough to call on
    every reset: one ``getpid``.
    """
    global _IMPORT_PID
    pid = os.getpid()
    if pid != _IMPORT_PID:
        torch.set_num_threads(1)
        _IMPORT_PID = pid  # once per process

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Allocations below this come from the heap (glibc's largest dynamic threshold on 64-bit).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the heap's top kept mapped up to this size.
TRIM_THRESHOLD = 64 << 20


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process (see the module docstring). Returns
    whether it did (False where the C library has no ``mallopt``). Process-wide: metacurr calls it
    only in worker processes it spawned itself."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def init_worker_process() -> None:
    """Run first in every env worker process: one torch thread (the processes are the parallelism),
    SIGINT ignored (Ctrl-C reaches the whole process group; the parent checkpoints, then closes its
    envs, so a worker must not die mid-step first), and `keep_freed_memory` (unless
    ``METACURR_GLIBC_DEFAULTS`` is set)."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("METACURR_GLIBC_DEFAULTS", "") in ("", "0"):
        keep_freed_memory()
