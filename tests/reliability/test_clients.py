"""Outside clients: Gymnasium's async vector env after multi-threaded torch work, ``render_mode``, plain SB3
loading of the shipped policy, and divergence from an absurd learning rate being data."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import metacurr

#: Run in a fresh interpreter: the parent uses 2 torch threads (conftest's 1 would hide the hang), runs
#: multi-threaded ops, then forks Gymnasium's AsyncVectorEnv workers (the default context on Linux).
ASYNC_SCRIPT = textwrap.dedent("""
    import json, gymnasium as gym, numpy as np, torch, metacurr  # noqa: F401
    torch.set_num_threads(2)
    torch.nn.Linear(256, 256)(torch.randn(512, 256))
    torch.randperm(100_000)
    kw = dict(task="mnist1d", control_steps=2, inner_steps=1)
    env = gym.make_vec("metacurr/Rebalance-v0", num_envs=2, vectorization_mode="async", **kw)
    obs, _ = env.reset(seed=0)
    obs2, r, *_ = env.step(np.zeros((2, 3), np.float32))
    env.close()
    torch.set_num_threads(1)  # the sync reference runs on one thread, like every env worker
    ref = gym.make_vec("metacurr/Rebalance-v0", num_envs=2, vectorization_mode="sync", **kw)
    robs, _ = ref.reset(seed=0)
    robs2, rr, *_ = ref.step(np.zeros((2, 3), np.float32))
    print(json.dumps({"same": bool(np.array_equal(obs, robs) and np.array_equal(obs2, robs2) and np.array_equal(r, rr))}))
""")


def test_async_vector_env_after_threaded_torch_work_does_not_hang():
    try:
        r = subprocess.run([sys.executable, "-c", ASYNC_SCRIPT], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("AsyncVectorEnv (fork) hung after multi-threaded torch work in the parent")
    assert r.returncode == 0, r.stderr[-800:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"same": True}  # same numbers as the sync env


def test_render_mode_none_is_accepted():
    import gymnasium as gym

    env = gym.make("metacurr/Rebalance-v0", task="mnist1d", control_steps=1, inner_steps=1, render_mode=None)
    assert env.unwrapped.render_mode is None
    env.reset(seed=0)


def test_plain_sb3_load_of_the_shipped_policy_acts_like_the_controller():
    from stable_baselines3 import PPO

    from metacurr.agents.policy_controller import default_bundle_path, load_policy_controller

    ctrl = load_policy_controller("policy:default")
    model = PPO.load(default_bundle_path() / "model.zip", device="cpu")
    obs = np.random.default_rng(0).normal(size=(4, ctrl.obs_spec.size))
    sb3, _ = model.predict(ctrl.normalize_obs(obs), deterministic=True)
    np.testing.assert_allclose(sb3, np.stack([ctrl.act(o) for o in obs]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("optimizer,lr", [("adam", 1e38), ("adamw", 1e38), ("sgd", 1e39), ("adam", 1e300)])
def test_overflowing_lr_is_a_diverged_run_not_an_exception(optimizer, lr):
    s = metacurr.train(control_steps=2, inner_steps=2, optimizer=optimizer, lr=lr)
    assert s["diverged"] is True


def test_overflowing_lr_in_the_env_ends_the_episode_with_the_flag():
    import gymnasium as gym

    env = gym.make("metacurr/Rebalance-v0", task={"family": "mnist1d", "lr": 1e38}, control_steps=3, inner_steps=2)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(3, np.float32))
    assert terminated and info["diverged"] and reward == -1.0


def test_overflowing_lr_in_the_batched_env_is_a_diverged_slot():
    from metacurr.envs.batched import BatchedRebalanceVecEnv

    for opt in ("sgd", "adam"):
        venv = BatchedRebalanceVecEnv(n_envs=2, task={"family": "mnist1d", "lr": 1e39, "optimizer": opt},
                                      control_steps=2, inner_steps=2)
        venv.reset()
        _, rewards, dones, infos = venv.step(np.zeros((2, 3), np.float32))
        assert dones.all() and all(i["diverged"] for i in infos)
        venv.close()
