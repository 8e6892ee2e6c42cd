"""`BatchedEngine`: N inner training runs stepped as stacked torch programs, without Gymnasium.

What `InnerRun` is for one run, the engine is for N: ``start`` builds every run from its seed
(`seeded_parts`, the same recipe), ``restart`` replaces some runs by fresh ones, ``step(weights)``
trains k inner steps of every run with its (S,) weights, reads the monitors, stamps the weights into
the states and tests divergence per run. States are kept as arrays, ``stage`` (N, S, len(STAGE_FEATURES))
and ``glob`` (N, len(GLOBAL_FEATURES)), row i being run i's `LearningState` (`state(i)`).

Runs are split into groups (`RunGroup`), one per worker thread; each group is one torch program over its
stacked runs. Runs can share a group only if they have the same **group key** (`group_key`):
architecture, stage count and curriculum shape (stage sizes, input shape, class count, val size, layout),
since their parameters and batches are stacked tensor by tensor. The budget and optimiser come from
the task's base settings, equal for every run. Today one engine holds one key (``key``): the first
``start`` fixes it and every run must match it (a `ConfigError` otherwise).

Mixed architectures or stage counts in one worker would keep one `RunGroup` per key instead of one
per thread: ``start`` / ``restart`` would put each run in the group of its key (building a group the
first time a key appears, loading into a free position after), ``step`` would step the groups one after
another and scatter their rows into ``stage`` / ``glob``, whose stage dimension would be padded to the
largest stage count (the observation layout is padded already). Nothing in `RunGroup` assumes one key
per engine; the engine's bookkeeping (``key``, the one ``shape`` check, the (N, S) arrays) does.

Devices: everything follows ``device``; generators stay on the CPU, as in `InnerRun`. Threads: with
``threads`` > 1 the groups are stepped by worker threads, each with one intra-op torch thread.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from metacurr.batched.forwards import attention_backend
from metacurr.batched.group import RunGroup, RunState
from metacurr.config import MonitorConfig, TaskSpec
from metacurr.errors import ConfigError
from metacurr.inner_run import seeded_parts
from metacurr.monitors.learning_monitor import assemble_batch
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState
from metacurr.tasks.curriculum import Curriculum


def curriculum_shape(cur: Curriculum, cfg: MonitorConfig) -> tuple:
    """What stacking needs equal across runs: stage sizes, input shape, classes, val size, layout."""
    return (
        tuple(len(y) for _, y in cur.stages), tuple(cur.input_shape), cur.n_classes, min(cfg.val_size, len(cur.val[1])),
        cur.layout,
    )  # fmt: skip


def group_key(spec: TaskSpec, cur: Curriculum, cfg: MonitorConfig) -> tuple:
    """Runs with equal keys can be stacked into one `RunGroup`: (arch, n_stages, curriculum shape)."""
    return (spec.arch, spec.n_stages, curriculum_shape(cur, cfg))


def default_threads(n_runs: int, device: torch.device) -> int:
    """Worker threads for ``n_runs`` runs: the cores available, at most n_runs // 4; 1 on an accelerator."""
    if device.type != "cpu":
        return 1  # an accelerator wants one big batch
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_runs // 4))


class BatchedEngine:
    """N inner runs of one group key, trained as stacked torch programs.

    Args:
        n: number of runs.
        monitor_cfg: monitor settings.
        device: torch device.
        threads: groups / worker threads (1 <= threads <= n).
        compile: step and measure through ``torch.compile``d functions (`metacurr.batched.compiled`).
    """

    def __init__(self, n: int, monitor_cfg: MonitorConfig, device: torch.device, threads: int, compile: bool = False):
        self.n = n
        self.monitor_cfg = monitor_cfg
        self.device = device
        self.runs: list[RunState | None] = [None] * n
        bounds = np.linspace(0, n, threads + 1).round().astype(int)
        self._spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        self.groups: list[RunGroup] = []
        self.compile = compile
        self._where: dict[int, tuple[int, int]] = {}
        self._workers = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="metacurr-batched") if threads > 1 else None
        self.key: tuple | None = None
        self.shape: tuple | None = None
        self.slot_offset = 0  # the first run's index in a larger batch split over processes (error messages)
        self.weights: np.ndarray | None = None  # (N, S) the weights in force
        self.t = np.zeros(n, dtype=np.int64)  # control steps done
        self.diverged = np.zeros(n, dtype=bool)
        self.stage: np.ndarray | None = None
        self.glob: np.ndarray | None = None

    def _map(self, fn, items: list) -> list:
        """fn over the groups' items, one worker thread per group."""
        with attention_backend(self.key[0] if self.key else ""):
            if self._workers is None:
                return [fn(*it) for it in items]
            return list(self._workers.map(lambda it: fn(*it), items))

    def _check(self, i: int, spec: TaskSpec, cur: Curriculum) -> None:
        got = curriculum_shape(cur, self.monitor_cfg)
        if got != self.shape:
            raise ConfigError(
                f"slot {i + self.slot_offset}: curriculum {got} differs from the batch's {self.shape}; the batched env needs "
                "equal stage sizes, input shape, class count and val size in every run"
            )

    def _fresh(self, i: int, spec: TaskSpec, order: torch.Generator) -> None:
        if self.runs[i] is None:
            self.runs[i] = RunState(spec, order)
        else:  # the group holds the same object
            self.runs[i].spec, self.runs[i].order, self.runs[i].steps_done = spec, order, 0
        self.t[i] = 0
        self.diverged[i] = False

    def start(self, specs: list[TaskSpec], curricula: list[Curriculum]) -> None:
        """Build every run afresh (this fixes the group key) and measure the initial states."""
        self.shape = curriculum_shape(curricula[0], self.monitor_cfg)
        self.key = group_key(specs[0], curricula[0], self.monitor_cfg)
        for i, (sp, c) in enumerate(zip(specs, curricula)):
            self._check(i, sp, c)
        # Seeded here, not in the worker threads: build_model forks torch's global RNG.
        parts = [seeded_parts(sp, c, self.device) for sp, c in zip(specs, curricula)]
        for i, (sp, p) in enumerate(zip(specs, parts)):
            self._fresh(i, sp, p.order)
        self.groups = [RunGroup(self.runs[a:b], self.monitor_cfg, self.device, self.compile) for a, b in self._spans]
        self._where = {i: (gi, i - a) for gi, (a, b) in enumerate(self._spans) for i in range(a, b)}

        def build(gi: int):
            a, b = self._spans[gi]
            self.groups[gi].build(curricula[a:b], parts[a:b], self.shape)
            return self.groups[gi].measure()

        packed = np.concatenate(self._map(build, [(gi,) for gi in range(len(self.groups))]))
        s = self.key[1]
        self.weights = np.full((self.n, s), 1.0 / s)
        self.stage = np.zeros((self.n, s, len(STAGE_FEATURES)))
        self.glob = np.zeros((self.n, len(GLOBAL_FEATURES)))
        self._initial(list(range(self.n)), packed)

    def restart(self, runs: list[int], specs: list[TaskSpec], curricula: list[Curriculum]) -> None:
        """Replace ``runs`` by fresh runs of ``specs`` (same group key) and measure their initial states."""
        for i, sp, c in zip(runs, specs, curricula):
            self._check(i, sp, c)
        todo: dict[int, list[int]] = {}
        for i, sp, c in zip(runs, specs, curricula):  # in this thread: build_model forks torch's global RNG
            gi, j = self._where[i]
            parts = seeded_parts(sp, c, self.device)
            self.groups[gi].load(j, c, parts)
            self._fresh(i, sp, parts.order)
            self.weights[i] = 1.0 / self.key[1]
            todo.setdefault(gi, []).append(j)
        items = [(self.groups[gi], local) for gi, local in todo.items()]

        def measure(grp: RunGroup, local: list[int]):
            return grp.measure(None if len(local) == grp.n else local)

        for (gi, local), packed in zip(todo.items(), self._map(measure, items)):
            self._initial([self._spans[gi][0] + j for j in local], packed)

    def _initial(self, runs: list[int], packed: np.ndarray) -> None:
        """First states of freshly started ``runs`` (as `InnerRun.reset` makes them)."""
        s = self.key[1]
        stage, glob = assemble_batch(packed, s, None, None, np.zeros(len(runs)), self.weights[runs],
                                     np.full((len(runs), s), np.nan), np.zeros(len(runs)))  # fmt: skip
        stage[:, :, 1] = stage[:, :, 2]  # train_loss starts as the probe loss
        self.stage[runs] = stage
        self.glob[runs] = glob

    def step(self, weights: np.ndarray) -> np.ndarray:
        """One control step of every run with (N, S) ``weights``; returns the (N,) divergence flags
        (`InnerTrainer.run`'s and `InnerRun.step`'s test, per run)."""
        s = self.key[1]
        self.weights = weights
        outs = self._map(lambda grp, a, b: grp.step(weights[a:b]), [(g, a, b) for g, (a, b) in zip(self.groups, self._spans)])
        stats = np.concatenate([o[0] for o in outs])
        packed = np.concatenate([o[1] for o in outs])
        # A stage with weight 0 has no mini-batch loss in InnerTrainer: NaN, then the previous value.
        train_loss = np.where(weights > 0, stats[:, :s], np.nan)
        gnorm, pabs = stats[:, s], stats[:, s + 1]
        finite = np.isfinite(np.where(weights > 0, train_loss, 0.0)).all(1) & np.isfinite(gnorm) & (gnorm < 1e8)
        self.diverged = ~finite | ~np.isfinite(pabs)
        self.t += 1
        cs = np.array([r.spec.control_steps for r in self.runs])
        tl = np.where(np.isnan(train_loss), self.stage[:, :, 1], train_loss)
        self.stage, self.glob = assemble_batch(packed, s, self.stage, self.glob[:, 1], self.t / cs, weights, tl, gnorm)
        return self.diverged

    def state(self, i: int) -> LearningState | None:
        """Run i's current `LearningState` (built from the arrays; None before `start`)."""
        if self.stage is None or self.runs[i] is None:
            return None
        st = self.stage[i]
        return LearningState(
            step=int(self.t[i]), n_stages=self.runs[i].spec.n_stages,
            stage={k: st[:, j].copy() for j, k in enumerate(STAGE_FEATURES)},
            glob={k: float(self.glob[i, j]) for j, k in enumerate(GLOBAL_FEATURES)},
        )  # fmt: skip

    def run_params(self, i: int) -> dict[str, torch.Tensor]:
        """The parameters of run i's model (a detached copy), by `state_dict` name."""
        gi, j = self._where[i]
        return {k: v[j].detach().clone() for k, v in self.groups[gi].params.items()}

    @property
    def train_seconds(self) -> float:
        """Thread time spent training (summed over worker threads)."""
        return sum(g.train_seconds for g in self.groups)

    @property
    def monitor_seconds(self) -> float:
        """Thread time spent in the monitors (summed over worker threads)."""
        return sum(g.monitor_seconds for g in self.groups)

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=True)
            self._workers = None
