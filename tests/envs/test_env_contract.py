"""RebalanceEnv's step contract as the README states it: the episode end is a truncation (not a
termination), the reward is the change of the val objective and nothing else (the shift set never enters
it), and every task seed the env draws is a training seed (below the evaluation range)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metacurr.envs.batched import BatchedRebalanceVecEnv
from metacurr.envs.rebalance import RebalanceEnv
from metacurr.envs.task_distribution import get_distribution
from metacurr.errors import ConfigError
from metacurr.seeds import EVAL_SEED_BASE, TRAIN_SEED_MAX

TASK = {"family": "mnist1d", "arch": "mlp"}
TINY = {"control_steps": 3, "inner_steps": 1}
ACTIONS = [np.array([0.8, -0.3, 0.1], dtype=np.float32), np.array([-1.0, 1.0, 0.0], dtype=np.float32),
           np.array([0.2, 0.2, -0.9], dtype=np.float32)]


def test_episode_end_is_truncated_not_terminated():
    env = RebalanceEnv(task=TASK, **TINY)
    _, info = env.reset(seed=0)
    assert info["weights"].tolist() == pytest.approx([1 / 3] * 3, abs=1e-7)  # episodes start uniform
    assert info["control_step"] == 0 and info["n_stages"] == 3 and info["diverged"] is False
    flags = [env.step(a)[2:4] for a in ACTIONS]
    assert flags == [(False, False), (False, False), (False, True)]
    with pytest.raises(RuntimeError, match="the run is over"):
        env.step(ACTIONS[0])


def test_batched_episode_end_is_a_time_limit_truncation():
    env = BatchedRebalanceVecEnv(n_envs=2, task=TASK, prefetch=False, **TINY)
    env.seed(0)
    env.reset()
    try:
        for t, a in enumerate(ACTIONS):
            _, _, dones, infos = env.step(np.stack([a, a]))
            last = t == len(ACTIONS) - 1
            assert dones.tolist() == [last, last]
            assert [i["TimeLimit.truncated"] for i in infos] == [last, last]
    finally:
        env.close()


@pytest.mark.parametrize("reward", ["val_loss", "val_acc"])
def test_reward_is_the_change_of_the_val_objective(reward):
    env = RebalanceEnv(task=TASK, reward=reward, **TINY)
    _, info = env.reset(seed=1)
    key, sign = ("val_loss", -1.0) if reward == "val_loss" else ("val_acc", 1.0)
    prev = info[key]
    for a in ACTIONS:
        _, r, _, _, info = env.step(a)
        assert r == pytest.approx(sign * (info[key] - prev), abs=1e-12)
        prev = info[key]


def _rewards(poison_shift: bool) -> list[float]:
    env = RebalanceEnv(task=TASK, **TINY)
    env.reset(seed=2)
    if poison_shift:
        x, y = env.unwrapped.run.curriculum.shift
        x.fill_(float("nan"))  # any use of the shift set in the reward would now give NaN
        y.zero_()
    return [env.step(a)[1] for a in ACTIONS]


def test_shift_set_never_enters_the_reward():
    clean, poisoned = _rewards(False), _rewards(True)
    assert all(np.isfinite(poisoned)) and poisoned == clean


def test_tasks_differing_only_in_their_shift_set_get_the_same_rewards():
    """mnist1d's ``shift_factor`` and ``n_shift`` change the shift set and nothing else."""
    out = []
    for params in ({}, {"shift_factor": 3.0, "n_shift": 64}):
        env = RebalanceEnv(task={**TASK, "params": params}, fixed_seed=True, **TINY)
        _, info = env.reset(seed=0)
        cur = env.unwrapped.run.curriculum
        out.append((cur, [info["val_loss"]] + [env.step(a)[1] for a in ACTIONS]))
    (a, ra), (b, rb) = out
    assert torch.equal(a.val[0], b.val[0]) and all(torch.equal(x[0], y[0]) for x, y in zip(a.stages, b.stages))
    assert len(a.shift[1]) != len(b.shift[1])  # only the shift sets differ ...
    assert ra == rb  # ... and the rewards do not


class TopOfRange:
    """A numpy Generator whose ``integers`` always returns the largest allowed value (or, with
    ``top=False``, the smallest): the range's edge."""

    def __init__(self, seed: int = 0, top: bool = True):
        self._rng = np.random.default_rng(seed)
        self.top = top

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        if high is None:
            low, high = 0, low
        v = (int(high) if endpoint else int(high) - 1) if self.top else int(low)
        return v if size is None else np.full(size, v, dtype=dtype)

    def __getattr__(self, name):
        return getattr(self._rng, name)


def test_env_sampled_task_seeds_stay_below_the_evaluation_range():
    assert TRAIN_SEED_MAX < EVAL_SEED_BASE
    for name in ("default", "default-mlp", "mixed"):
        dist = get_distribution(name)
        assert dist.sample(TopOfRange()).seed == TRAIN_SEED_MAX  # the range's top is a training seed
        rng = np.random.default_rng(0)
        seeds = [dist.sample(rng).seed for _ in range(300)]
        assert 0 <= min(seeds) and max(seeds) <= TRAIN_SEED_MAX and len(set(seeds)) > 250
    # a fixed task without fixed_seed, and a reset option naming a task without a seed, draw it the same way
    env = RebalanceEnv(task=TASK, **TINY)
    env.reset(seed=0)
    env.unwrapped.np_random = TopOfRange()
    env.reset()
    assert env.task_spec.seed == TRAIN_SEED_MAX
    env.reset(options={"task": dict(TASK)})
    assert env.task_spec.seed == TRAIN_SEED_MAX
    env.unwrapped.np_random = TopOfRange(top=False)  # and the bottom of the range is seed 0
    env.reset()
    assert env.task_spec.seed == 0
    env.reset(options={"task": dict(TASK)})
    assert env.task_spec.seed == 0
    with pytest.raises(ConfigError, match="4 stages"):  # more stages than the env's slots: refused at reset
        env.reset(options={"task": {**TASK, "n_stages": 4}})
    env.reset(options={"task": {**TASK, "seed": EVAL_SEED_BASE + 3}})  # a named seed is kept (evaluation)
    assert env.task_spec.seed == EVAL_SEED_BASE + 3
    drawn = []
    for s in range(20):
        env.reset(seed=s)
        drawn.append(env.task_spec.seed)
    assert max(drawn) <= TRAIN_SEED_MAX and len(set(drawn)) == 20
