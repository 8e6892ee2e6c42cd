"""Vector-env building blocks for training across tasks: layout-3 observations over any vector env,
and one vector env made of groups of batched envs.

* `RelativeObservationVecEnv`: layout-3 observations (`metacurr.envs.relative_observation`) from any
  vector env of layout-2 observations, the batched env included (it keeps no run history itself).
* `GroupedVecEnv`: several vector envs side by side as one. `grouped_batched_env` builds one
  `BatchedRebalanceVecEnv` per (family, architecture, stage count) of a task distribution, so PPO trains
  on all of them at once while each group still runs as one batched program (a batched env trains a
  single triple). The groups step one after the other in this process, or, with ``processes=True``,
  each in its own worker process (`ShardedBatchedVecEnv` with one shard): `GroupedVecEnv` sends every
  group its actions before it waits for any, so the groups step in parallel across cores.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from metacurr.envs.batched import BatchedRebalanceVecEnv
from metacurr.envs.relative_observation import RelativeTracker
from metacurr.envs.task_distribution import TaskDistribution
from metacurr.errors import ConfigError


class RelativeObservationVecEnv(VecEnvWrapper):
    """Turns a vector env of layout-2 observations into layout-3 ones (one `RelativeTracker` per env).

    Args:
        venv: a vector env whose observations follow ``v2_spec`` (no hidden features).
        v2_spec: its layout-2 `ObservationSpec`.
        v3_spec: the layout-3 spec to emit (same ``max_stages``; its ``hidden`` features read 0).
    """

    def __init__(self, venv, v2_spec, v3_spec):
        super().__init__(venv, observation_space=spaces.Box(-v3_spec.clip, v3_spec.clip, (v3_spec.size,), np.float32))
        self.v2_spec, self.v3_spec = v2_spec, v3_spec
        self.trackers = [RelativeTracker(v3_spec.window) for _ in range(venv.num_envs)]
        self.feature_names = v3_spec.feature_names()

    def _convert(self, i: int, row: np.ndarray) -> np.ndarray:
        stage, glob = self.v2_spec.unpad(row)
        return self.v3_spec.pad(*self.trackers[i].features(stage, glob))

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        for t in self.trackers:
            t.reset()
        return np.stack([self._convert(i, o) for i, o in enumerate(obs)])

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        out = []
        for i, o in enumerate(obs):
            if dones[i]:
                term = infos[i].get("terminal_observation")
                if term is not None:
                    infos[i]["terminal_observation"] = self._convert(i, term)
                self.trackers[i].reset()
            out.append(self._convert(i, o))
        return np.stack(out), rewards, dones, infos


class GroupedVecEnv(VecEnv):
    """Vector envs side by side as one: slots are numbered group after group.

    Args:
        envs: vector envs with equal observation and action spaces.
    """

    def __init__(self, envs: list[VecEnv]):
        if not envs:
            raise ConfigError("a grouped vector env needs at least one group")
        for e in envs[1:]:
            if e.observation_space != envs[0].observation_space or e.action_space != envs[0].action_space:
                raise ConfigError("the groups of a grouped vector env must share observation and action spaces")
        self.envs = envs
        self.offsets = np.cumsum([0] + [e.num_envs for e in envs])
        super().__init__(int(self.offsets[-1]), envs[0].observation_space, envs[0].action_space)

    def _slices(self):
        return [(e, slice(int(a), int(b))) for e, a, b in zip(self.envs, self.offsets[:-1], self.offsets[1:])]

    def seed(self, seed: int | None = None):
        if seed is None:
            return [None] * self.num_envs
        out = []
        for e, sl in self._slices():
            out += list(e.seed(seed + sl.start))
        return out

    def reset(self):
        return np.concatenate([e.reset() for e in self.envs])

    def step_async(self, actions: np.ndarray) -> None:
        for e, sl in self._slices():
            e.step_async(actions[sl])

    def step_wait(self):
        obs, rew, done, infos = [], [], [], []
        for e in self.envs:
            o, r, d, i = e.step_wait()
            obs.append(o)
            rew.append(r)
            done.append(d)
            infos += list(i)
        return np.concatenate(obs), np.concatenate(rew), np.concatenate(done), infos

    def close(self) -> None:
        for e in self.envs:
            e.close()

    def _split(self, indices):
        idx = range(self.num_envs) if indices is None else ([indices] if isinstance(indices, int) else list(indices))
        for e, sl in self._slices():
            local = [i - sl.start for i in idx if sl.start <= i < sl.stop]
            if local:
                yield e, local

    def get_attr(self, attr_name: str, indices=None) -> list:
        return [v for e, loc in self._split(indices) for v in e.get_attr(attr_name, loc)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        for e, loc in self._split(indices):
            e.set_attr(attr_name, value, loc)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list:
        return [v for e, loc in self._split(indices) for v in e.env_method(method_name, *args, indices=loc, **kwargs)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [v for e, loc in self._split(indices) for v in e.env_is_wrapped(wrapper_class, loc)]


def task_groups(dist: TaskDistribution) -> list[TaskDistribution]:
    """The distribution split by (family, architecture, stage count): one sub-distribution per triple."""
    groups = []
    for fam in sorted(dist.families):
        entry = dist.families[fam]
        for arch in entry["archs"]:
            for n in dist.n_stages:
                groups.append(replace(dist, name=f"{dist.name}/{fam}:{arch}:{n}",
                                      families={fam: {**entry, "archs": [arch]}}, n_stages=(n,)))
    return groups


def grouped_batched_env(n_envs: int, distribution: TaskDistribution, processes: bool = False, **env_kwargs) -> GroupedVecEnv:
    """One batched env per (family, arch, stage count) of ``distribution``, ``n_envs`` slots split evenly.

    ``n_envs`` must be a multiple of the number of triples; ``processes``: each group in its own worker
    process (slot i is the same run either way); ``env_kwargs`` as for `BatchedRebalanceVecEnv`.
    """
    groups = task_groups(distribution)
    if n_envs % len(groups):
        raise ConfigError(f"n_envs = {n_envs} must be a multiple of the {len(groups)} (family, arch, stage count) groups "
                          f"of distribution {distribution.name!r}")
    k = n_envs // len(groups)
    if processes:
        # Imported here: the in-process grouped env never spawns workers.
        from metacurr.envs.sharded import ShardedBatchedVecEnv

        envs: list[VecEnv] = []
        try:
            for g in groups:
                envs.append(ShardedBatchedVecEnv(k, processes=1, distribution=g, **env_kwargs))
        except BaseException:
            for e in envs:  # no worker outlives a group that failed to start
                e.close()
            raise
        return GroupedVecEnv(envs)
    return GroupedVecEnv([BatchedRebalanceVecEnv(k, distribution=g, threads=1, **env_kwargs) for g in groups])
