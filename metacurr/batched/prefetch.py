"""`CurriculumPrefetch`: curricula built ahead in a background thread, keyed by the run they are for.

A curriculum depends only on its task (family, stage count, seed, params), so building the one a run
will need next while the current episodes train changes no number; a guess that turns out wrong (the
task drawn differs, e.g. after a reseed) is dropped and the right one built in place.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from metacurr.config import TaskSpec
from metacurr.tasks import build_curriculum
from metacurr.tasks.curriculum import Curriculum


def _cur_key(spec: TaskSpec) -> tuple:
    return (spec.family, spec.n_stages, int(spec.seed), json.dumps(spec.params, sort_keys=True))


class CurriculumPrefetch:
    """Builds curricula for runs ahead of time (``enabled=False``: every build happens in `get`).

    Args:
        device: where `get` returns the curricula.
        enabled: use a background thread.
    """

    def __init__(self, device: torch.device, enabled: bool = True):
        self.device = device
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metacurr-prefetch") if enabled else None
        self._pending: dict[int, tuple[tuple, Future]] = {}

    @property
    def enabled(self) -> bool:
        return self._pool is not None

    def want(self, run: int, spec: TaskSpec) -> None:
        """Start building ``spec``'s curriculum for ``run``'s next start."""
        if self._pool is not None:
            fut = self._pool.submit(build_curriculum, spec.family, spec.n_stages, spec.seed, spec.params)
            self._pending[run] = (_cur_key(spec), fut)

    def get(self, run: int, spec: TaskSpec) -> Curriculum:
        """``spec``'s curriculum on the device (the prefetched one if it was guessed right)."""
        key, fut = self._pending.pop(run, (None, None))
        if fut is not None and key != _cur_key(spec):
            fut.cancel()  # a wrong guess (e.g. after seed()): unused
            fut = None
        cur = fut.result() if fut is not None else build_curriculum(spec.family, spec.n_stages, spec.seed, spec.params)
        return cur.to(self.device) if cur.val[0].device != self.device else cur

    def wait(self) -> None:
        """Block until the builds started so far are done."""
        for _, fut in list(self._pending.values()):
            if not fut.cancelled():
                fut.exception()  # waits; a failed build is rebuilt (and raises) in get

    def close(self) -> None:
        if self._pool is not None:
            for _, f in self._pending.values():
                f.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True)
            self._pool = None
