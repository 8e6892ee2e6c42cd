"""`BatchedRebalanceVecEnv`: N `RebalanceEnv` episodes trained as one batched torch program.

An SB3 `VecEnv` over the batched engine (`metacurr.batched.BatchedEngine`): its N slots are N
independent inner runs of **one** task family, architecture and stage count, whose models are stacked
and stepped together. This module holds only what makes it an environment: task sampling per slot
(`RebalanceEnv.sample_task`, from each slot's own ``np_random``), the action -> weight mapping for N runs
(`WeightMapping.apply_rows`), observations, rewards, infos and SB3's auto-reset.

Every slot is what a `RebalanceEnv` would be with the same seed: its own ``np_random`` (SB3 ``seed(s)``
gives slot i the seed ``s + i``, as `DummyVecEnv` does), curriculum, model initialisation, mini-batch
order, probe subsets (`metacurr.inner_run.seeded_parts`), stage weights, step counts, learning-rate
schedule and optimiser state. So slot i reproduces ``RebalanceEnv`` with the same task seed and actions,
up to float rounding of the batched kernels (``tests/envs/test_batched.py`` checks observations and
rewards at rtol 1e-4), **provided every stage weight is > 0** (`InnerTrainer` skips zero-weight stages;
the engine draws every stage and multiplies its loss by its weight); the mapping's floor keeps every
weight > 0.

One architecture per batch: the first task sampled by slot 0 at an explicit ``reset()`` fixes
(family, arch, n_stages); every slot then samples the task distribution restricted to that triple
(difficulty parameters and seeds still vary). A task given explicitly (``options={"task": ...}``) that
differs in family, arch or stage count is a ``ConfigError``, as are curricula whose stage sizes differ
between runs, and ``norm: true`` (batch normalisation keeps running statistics in buffers, which the
batched forward does not carry; use `RebalanceEnv`). Models without batch norm and with dropout 0
compute the same function in train and eval mode, so the probes run in train mode (this keeps
``nn.TransformerEncoderLayer`` off its inference fast path, which has no vmap rule).

Divergence is per run: a run whose loss or parameters become non-finite terminates its episode with
the divergence penalty and is reset on its own (SB3 auto-reset, with ``info["terminal_observation"]``).
Every operation on the stacked tensors is per run, so one run's NaNs never reach another.

Devices, threads and ``compile=True``: see `metacurr.batched` (measured: faster with compile for MLP,
GRU and transformer tasks, slower for the CNN, ``benchmarks/README.md``; a new task shape compiles once,
``benchmarks/results/compile-time-2026-11-25.txt``). `metacurr.envs.sharded.ShardedBatchedVecEnv`
splits the runs over processes. `BatchedRebalanceVectorEnv` adapts the env to ``gymnasium.vector``.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import time
from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env import VecEnv

from metacurr.batched import BatchedEngine, CurriculumPrefetch, default_threads
from metacurr.batched.compiled import UNROLL
from metacurr.config import TaskSpec
from metacurr.envs.rebalance import RebalanceEnv, step_info
from metacurr.envs.task_distribution import TaskDistribution, task_key
from metacurr.errors import ConfigError
from metacurr.optim import StackedOptimizer, fused_update
from metacurr.validation import check_action_range
from metacurr.weights import map_weights, normalize

__all__ = ["BatchedRebalanceVecEnv", "BatchedRebalanceVectorEnv", "StackedOptimizer", "UNROLL", "fused_update", "map_weights"]


class _Slot:
    """One slot as a `RebalanceEnv` would expose it: the object `get_attr` / `set_attr` / `env_method` address."""

    render_mode = None

    def __init__(self, owner: BatchedRebalanceVecEnv, index: int):
        self.owner, self.index = owner, index
        self.np_random: np.random.Generator | None = None

    def __getattr__(self, name: str):  # observation_space, action_space, obs_spec, feature_names, mapping
        if name in ("observation_space", "action_space", "obs_spec", "feature_names", "mapping"):
            return getattr(self.owner, name)
        raise AttributeError(name)

    @property
    def task_spec(self) -> TaskSpec | None:
        run = self.owner.engine.runs[self.index]
        return None if run is None else run.spec

    @property
    def n_stages(self) -> int:
        return self.task_spec.n_stages

    @property
    def weights(self) -> np.ndarray | None:
        w = self.owner.engine.weights
        return None if w is None else w[self.index]

    @property
    def state(self):
        """The run's current `LearningState`."""
        return self.owner.engine.state(self.index)

    def current_weights(self) -> np.ndarray | None:
        return normalize(self.weights) if self.weights is not None else None

    def seed_rng(self, seed: int | None) -> None:
        if seed is not None or self.np_random is None:
            self.np_random, _ = seeding.np_random(seed)


class BatchedRebalanceVecEnv(VecEnv):
    """N `RebalanceEnv` slots of one (family, arch, n_stages), trained by one `BatchedEngine`.

    Args:
        n_envs: number of inner runs N.
        task: a fixed task (TaskSpec, mapping or family name); each slot redraws its seed from its
            ``np_random`` at every reset. Mutually exclusive with ``distribution``.
        distribution, max_stages, control_steps, inner_steps, monitor, mapping, reward,
        divergence_penalty, device, hide_features: as in `RebalanceEnv`.
        threads: CPU worker threads. The N runs are split into this many stacked groups, each stepped
            by its own thread with one intra-op torch thread (torch kernels release the GIL, and the
            threads meet once per control step, instead of an OpenMP barrier after every small op,
            which collapses on a loaded machine). Default: the cores available, at most N // 4; 1 on
            an accelerator. With more than one, the env sets ``torch.set_num_threads(1)`` (process-wide).
        prefetch: build the curricula that auto-resets will need in a background thread while the
            current episodes train (`CurriculumPrefetch`).
        compile: ``torch.compile`` the inner step and the probe pass; needs a C++ compiler (CPU) and
            pays a one-off compile per task shape.
    """

    def __init__(
        self,
        n_envs: int,
        task: Any = None,
        distribution: str | TaskDistribution | None = None,
        max_stages: int | None = None,
        control_steps: int | None = None,
        inner_steps: int | None = None,
        monitor: dict | None = None,
        mapping: dict | None = None,
        reward: str = "val_loss",
        divergence_penalty: float = 1.0,
        device: str = "cpu",
        hide_features: list[str] | tuple[str, ...] = (),
        threads: int | None = None,
        prefetch: bool = True,
        compile: bool = False,
    ):
        if not isinstance(n_envs, int) or isinstance(n_envs, bool) or n_envs < 1:
            raise ConfigError(f"n_envs must be a positive integer, got {n_envs!r}")
        # A template env validates the arguments and owns the spaces, layout, mapping, reward and task sampling.
        self.template = RebalanceEnv(
            task=task, distribution=distribution, max_stages=max_stages, control_steps=control_steps,
            inner_steps=inner_steps, monitor=monitor, mapping=mapping, reward=reward,
            divergence_penalty=divergence_penalty, device=device, hide_features=hide_features,
        )  # fmt: skip
        if self.template.fixed_task is not None and self.template.fixed_task.norm:
            raise ConfigError("the batched env does not support norm: true (batch normalisation); use vec_env: subproc")
        self.device = torch.device(device)
        g = default_threads(n_envs, self.device) if threads is None else int(threads)
        if not 1 <= g <= n_envs:
            raise ConfigError(f"threads must be in [1, n_envs={n_envs}], got {threads!r}")
        self.threads = g
        if g > 1 and torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        self.obs_spec, self.mapping = self.template.obs_spec, self.template.mapping
        self.monitor_cfg, self.feature_names = self.template.monitor_cfg, self.template.feature_names
        self.slots = [_Slot(self, i) for i in range(n_envs)]
        super().__init__(n_envs, self.template.observation_space, self.template.action_space)
        if not isinstance(compile, bool):
            raise ConfigError(f"compile must be true or false, got {compile!r}")
        if compile and self.device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            raise ConfigError("compile: true needs a C++ compiler on PATH (g++, c++ or clang++) for torch.compile on the CPU; "
                              "install one or set compile / train.batched_compile to false")
        self.compile = compile
        self.engine = BatchedEngine(n_envs, self.monitor_cfg, self.device, g, compile)
        self.prefetch = CurriculumPrefetch(self.device, enabled=prefetch)
        self.key: tuple | None = None  # the batch's task key (family, arch, n_stages)
        self.forced_key: tuple | None = None  # a shard of a ShardedBatchedVecEnv: shard 0's slot 0 drew it
        self.actions: np.ndarray | None = None
        self.phi = np.zeros(n_envs)
        self.start_val_loss = np.zeros(n_envs)
        self.reset_seconds = 0.0

    @property
    def groups(self):
        return self.engine.groups

    @property
    def slot_offset(self) -> int:
        return self.engine.slot_offset

    @slot_offset.setter
    def slot_offset(self, value: int) -> None:  # a shard's first global slot (error messages)
        self.engine.slot_offset = value

    # ---- task sampling: RebalanceEnv's, per slot, restricted to the batch's (family, arch, n_stages) ----

    def _sample(self, slot: _Slot, options: dict | None, first: bool) -> TaskSpec:
        restricted = None
        if not first and self.template.distribution is not None:
            fam, arch, n = self.key
            entry = dict(self.template.distribution.families[fam], archs=[arch])
            restricted = dataclasses.replace(self.template.distribution, families={fam: entry}, n_stages=(n,))
        spec = self.template.sample_task(slot.np_random, options, restricted)
        if first:
            self.key = task_key(spec)
        elif task_key(spec) != self.key:
            raise ConfigError(
                f"the batched env trains one (family, arch, n_stages) = {self.key}; slot {slot.index + self.slot_offset} got "
                f"{task_key(spec)}; use vec_env: subproc for mixed batches"
            )
        if spec.norm:
            raise ConfigError("the batched env does not support norm: true (batch normalisation); use vec_env: subproc")
        return spec

    def _peek_next(self, slot: _Slot) -> None:
        """Start building the curriculum the slot's next auto-reset will sample."""
        if not self.prefetch.enabled or slot.np_random is None:
            return
        shadow = _Slot(self, slot.index)
        shadow.np_random = copy.deepcopy(slot.np_random)
        try:
            self.prefetch.want(slot.index, self._sample(shadow, None, first=False))
        except ConfigError:
            return

    # ---- VecEnv API ----

    def reset(self):
        t0 = time.perf_counter()
        for slot, seed in zip(self.slots, self._seeds):
            slot.seed_rng(seed)
        if self.forced_key is not None:
            self.key = self.forced_key
        first = self.forced_key is None
        specs = [self._sample(slot, self._options[i], first=first and i == 0) for i, slot in enumerate(self.slots)]
        self.engine.start(specs, [self.prefetch.get(i, sp) for i, sp in enumerate(specs)])
        obs = self._initial(list(range(self.num_envs)))
        self.reset_infos = [self._info(i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        for slot in self.slots:
            self._peek_next(slot)
        self.reset_seconds += time.perf_counter() - t0
        return obs

    def _initial(self, runs: list[int]) -> np.ndarray:
        e = self.engine
        self.phi[runs] = self.template.potential(e.glob[runs, 1], e.glob[runs, 2])
        self.start_val_loss[runs] = e.glob[runs, 1]
        return self.obs_spec.build_batch(e.stage[runs], e.glob[runs])

    def _info(self, i: int) -> dict:
        e = self.engine
        return step_info(self.obs_spec.max_stages, e.weights[i], e.diverged[i], e.glob[i, 1], e.glob[i, 2], e.t[i])

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = np.asarray(actions)
        check_action_range(self.actions)  # NaN / inf / out of [-1, 1]: one line, before any run moves

    def step_wait(self):
        e = self.engine
        if e.stage is None:
            raise RuntimeError("call reset() before step()")
        s, n = self.key[2], self.num_envs
        acts = np.asarray(self.actions, dtype=np.float64).reshape(n, -1)
        if acts.shape[1] < s:
            raise ConfigError(f"action has {acts.shape[1]} entries for {s} stages")
        diverged = e.step(self.mapping.apply_rows(e.weights, acts[:, :s]))
        obs = self.obs_spec.build_batch(e.stage, e.glob)
        phi = self.template.potential(e.glob[:, 1], e.glob[:, 2])
        rews = np.where(diverged, -self.template.divergence_penalty, phi - self.phi).astype(np.float32)
        self.phi = np.where(diverged, self.phi, phi)
        truncated = ~diverged & (e.t >= np.array([r.spec.control_steps for r in e.runs]))
        dones = diverged | truncated
        infos: list[dict] = []
        for i in range(n):
            info = self._info(i)
            if dones[i]:
                info["episode_improvement"] = None if diverged[i] else float(self.start_val_loss[i] - e.glob[i, 1])
                info["terminal_observation"] = obs[i].copy()
            info["TimeLimit.truncated"] = bool(truncated[i])
            infos.append(info)
        if dones.any():
            self._auto_reset(np.flatnonzero(dones).tolist(), obs)
        return obs, rews, dones, infos

    def _auto_reset(self, runs: list[int], obs: np.ndarray) -> None:
        """SB3 semantics: a finished slot is reset at once; its first observation replaces the last."""
        t0 = time.perf_counter()
        specs = [self._sample(self.slots[i], None, first=False) for i in runs]
        self.engine.restart(runs, specs, [self.prefetch.get(i, sp) for i, sp in zip(runs, specs)])
        obs[runs] = self._initial(runs)
        for i in runs:
            self.reset_infos[i] = self._info(i)
            self._peek_next(self.slots[i])
        self.reset_seconds += time.perf_counter() - t0

    def wait_prefetch(self) -> None:
        """Block until the background curriculum builds started so far are done."""
        self.prefetch.wait()

    def close(self) -> None:
        self.prefetch.close()
        self.engine.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self.slots[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for i in self._get_indices(indices):
            setattr(self.slots[i], attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(self.slots[i], method_name)(*method_args, **method_kwargs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self):
        return [None for _ in range(self.num_envs)]

    @property
    def train_seconds(self) -> float:
        """Thread time spent training (summed over worker threads)."""
        return self.engine.train_seconds

    @property
    def monitor_seconds(self) -> float:
        """Thread time spent in the monitors (summed over worker threads)."""
        return self.engine.monitor_seconds

    @property
    def monitor_time_fraction(self) -> float:
        """Monitor share of the batched program's (train + monitor) time."""
        total = self.train_seconds + self.monitor_seconds
        return self.monitor_seconds / total if total > 0 else 0.0

    def run_params(self, i: int) -> dict[str, torch.Tensor]:
        """The parameters of slot i's model (a detached copy), by `state_dict` name."""
        return self.engine.run_params(i)


from metacurr.envs.batched_vector import BatchedRebalanceVectorEnv  # noqa: E402 - it builds on the class above
