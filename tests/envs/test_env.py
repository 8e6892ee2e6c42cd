import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check
from stable_baselines3.common.env_checker import check_env as sb3_check

import metacurr  # noqa: F401  (registers the env)
from metacurr.envs.rebalance import RebalanceEnv
from metacurr.errors import ConfigError

TINY = {"control_steps": 3, "inner_steps": 2}


def tiny_env(**kw):
    return gym.make("metacurr/Rebalance-v0", **{**TINY, **kw})


def test_registered_and_default_constructible():
    env = gym.make("metacurr/Rebalance-v0")
    assert isinstance(env.unwrapped, RebalanceEnv)
    assert env.unwrapped.feature_names[0] == "progress" and len(env.unwrapped.feature_names) == env.observation_space.shape[0]


def test_both_env_checkers_pass():
    env = tiny_env()
    gym_check(env.unwrapped, skip_render_check=True)
    sb3_check(env.unwrapped)


def _episode(seed, actions_seed=0, **kw):
    env = tiny_env(**kw)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(actions_seed)
    out, rewards = [obs], []
    while True:
        obs, r, term, trunc, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        out.append(obs)
        rewards.append(r)
        if term or trunc:
            return out, rewards, info, env


def test_same_seed_same_actions_identical():
    a, ra, _, _ = _episode(5)
    b, rb, _, _ = _episode(5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and ra == rb
    c, _, _, _ = _episode(6)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_return_equals_end_to_end_improvement_and_truncation():
    env = tiny_env()
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    rewards, flags = [], []
    for _ in range(TINY["control_steps"]):
        _, r, term, trunc, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        rewards.append(r)
        flags.append((term, trunc))
    assert flags == [(False, False)] * (TINY["control_steps"] - 1) + [(False, True)]  # the budget truncates
    assert np.isclose(sum(rewards), info["episode_improvement"], atol=1e-6)
    assert not info["diverged"]


def test_reset_options_task_and_held_out_seed():
    env = tiny_env(max_stages=4)
    env.reset(seed=0, options={"task": {"family": "digits", "arch": "mlp", "n_stages": 4, "seed": 10_003}})
    assert env.unwrapped.task_spec.family == "digits" and env.unwrapped.task_spec.seed == 10_003
    assert env.unwrapped.run.n_stages == 4
    with pytest.raises(ConfigError, match="unknown reset option"):
        env.reset(options={"bogus": 1})


def test_max_stages_padding_and_mask():
    env, other = tiny_env(max_stages=5), tiny_env(max_stages=5)
    obs, info = env.reset(seed=0)
    other.reset(seed=0)
    names = env.unwrapped.feature_names
    mask = obs[[names.index(f"stage{s}/mask") for s in range(5)]]
    assert mask.tolist() == [1, 1, 1, 0, 0] and env.action_space.shape == (5,)
    # padded entries ignored: the same first three entries give the same step, whatever the padding holds
    a, r, *_, i = env.step(np.array([1, -1, 0, 1, 1], dtype=np.float32))
    b, q, *_, j = other.step(np.array([1, -1, 0, -1, 0.3], dtype=np.float32))
    assert np.array_equal(a, b) and r == q and np.array_equal(i["weights"], j["weights"])
    assert i["weights"][3:].tolist() == [0, 0] and a.shape == env.observation_space.shape


def test_hidden_features_are_zero_and_the_rest_unchanged():
    full, blind = tiny_env(), tiny_env(hide_features=["grad_align", "val_acc"])
    names = full.unwrapped.feature_names
    a, _ = full.reset(seed=4)
    b, _ = blind.reset(seed=4)
    for _ in range(2):
        act = np.array([0.5, -0.5, 0.0], dtype=np.float32)
        a, *_ = full.step(act)
        b, *_ = blind.step(act)
    hidden = [i for i, n in enumerate(names) if n == "val_acc" or n.endswith("/grad_align")]
    assert len(hidden) == 1 + 3 and np.all(b[hidden] == 0) and np.any(a[hidden] != 0)
    rest = np.setdiff1d(np.arange(len(names)), hidden)
    np.testing.assert_array_equal(a[rest], b[rest])  # hiding changes what the policy sees, not the run
    with pytest.raises(ConfigError, match="unknown observation feature 'align' to hide; valid choices: progress"):
        RebalanceEnv(**TINY, hide_features=["align"])


def test_divergence_terminates_with_penalty_not_exception():
    env = RebalanceEnv(task={"family": "mnist1d", "lr": 1e6, "optimizer": "sgd", "control_steps": 6, "inner_steps": 5},
                       divergence_penalty=2.0)
    env.reset(seed=0)
    for _ in range(6):
        obs, r, term, trunc, info = env.step(np.ones(3, dtype=np.float32))
        assert np.all(np.isfinite(obs))
        if term:
            assert info["diverged"] and r == -2.0 and not trunc  # a divergence ends it: terminated, not truncated
            assert info["episode_improvement"] is None
            break
        assert not trunc
    else:
        pytest.fail("an lr of 1e6 should diverge")


def test_gymnasium_vector_envs():
    for cls in (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv):
        venv = cls([lambda: tiny_env() for _ in range(2)])
        obs, _ = venv.reset(seed=1)
        obs, r, term, trunc, info = venv.step(venv.action_space.sample())
        assert obs.shape == (2, venv.single_observation_space.shape[0]) and r.shape == (2,)
        venv.close()


def test_sb3_vec_envs():
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    for cls, kw in ((DummyVecEnv, {}), (SubprocVecEnv, {"start_method": "spawn"})):
        venv = cls([lambda: RebalanceEnv(**TINY) for _ in range(2)], **kw)
        venv.seed(3)
        obs = venv.reset()
        for _ in range(TINY["control_steps"]):
            obs, r, done, info = venv.step(np.zeros((2, 3), dtype=np.float32))
        assert done.all() and "terminal_observation" in info[0]
        venv.close()


def test_bad_env_arguments():
    with pytest.raises(ConfigError, match="unknown reward"):
        RebalanceEnv(reward="shift_acc")
    with pytest.raises(ConfigError, match="unknown task distribution"):
        RebalanceEnv(distribution="nope")
    with pytest.raises(ConfigError, match="at most 2"):
        RebalanceEnv(task={"family": "mnist1d", "n_stages": 3}, max_stages=2)
