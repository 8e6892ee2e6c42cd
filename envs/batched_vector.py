"""`BatchedRebalanceVectorEnv`: `BatchedRebalanceVecEnv` behind the ``gymnasium.vector.VectorEnv`` API."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from metacurr.envs.batched import BatchedRebalanceVecEnv

__all__ = ["BatchedRebalanceVectorEnv"]


class BatchedRebalanceVectorEnv(gym.vector.VectorEnv):
    """`BatchedRebalanceVecEnv` behind the ``gymnasium.vector.VectorEnv`` API.

    Autoreset mode ``SAME_STEP`` (the SB3 semantics the batched env implements): a finished slot is
    reset within the step; its last observation and info are in ``infos["final_obs"]`` /
    ``infos["final_info"]`` (with ``"_final_obs"`` masks). ``terminations`` = divergence,
    ``truncations`` = end of the control budget. ``reset(seed=s)`` seeds slot i with ``s + i``.

    Args:
        num_envs: number of inner runs; every other keyword goes to `BatchedRebalanceVecEnv`.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, **kwargs: Any):
        self.venv = BatchedRebalanceVecEnv(n_envs=num_envs, **kwargs)
        self.num_envs = num_envs
        self.single_observation_space = self.venv.observation_space
        self.single_action_space = self.venv.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.render_mode = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, int):
            self.venv.seed(seed)
        elif seed is not None:
            self.venv._seeds = list(seed)
        if options:
            self.venv.set_options(options)
        obs = self.venv.reset()
        infos: dict = {}
        for i, info in enumerate(self.venv.reset_infos):
            infos = self._add_info(infos, info, i)
        return obs, infos

    def step(self, actions):
        obs, rews, dones, sb3_infos = self.venv.step(np.asarray(actions))
        terminations = np.array([bool(d and i["diverged"]) for d, i in zip(dones, sb3_infos)])
        truncations = dones & ~terminations
        infos: dict = {}
        for i, info in enumerate(sb3_infos):
            info = {k: v for k, v in info.items() if k not in ("TimeLimit.truncated", "terminal_observation")}
            if dones[i]:
                infos = self._add_info(infos, {"final_obs": sb3_infos[i]["terminal_observation"], "final_info": info}, i)
                info = self.venv.reset_infos[i]
            infos = self._add_info(infos, info, i)
        return obs, rews.astype(np.float64), terminations, truncations, infos

    def close_extras(self, **kwargs: Any) -> None:
        self.venv.close()
